"""Label sets that cost once: the text embeddings of a label set, carried by a model folder for its default label
set and cached on disk for any other.

SEEM averages 81 prompt templates per label, so COCO's 133 labels are ~10,800 prompts through a 12-layer text
tower: minutes on a CPU, on every new process. The embeddings depend on nothing but the text tower's weights and the
label set's tokens, so both are hashed (SHA-256 of every tensor's bytes, dtype and shape, and of the token ids) and
the embeddings are looked up, in this order:

1. in memory (the model keeps the last few label sets);
2. in the model's folder, `label_embeddings.safetensors`, written by `save_pretrained` for the default label set
   (`set_default_label_set`, or the processors' `set_default_labels(..., model=model)`), used when both hashes
   match; for the default label set a file that does not match is reported with a warning and not used;
3. in the cache folder (`cache_folder()`: `$SEEM_HF_LABEL_EMBEDDINGS_CACHE`, else
   `$HF_HOME/seem_hf/label_embeddings`, i.e. `~/.cache/huggingface/seem_hf/label_embeddings`), one safetensors file
   per (weights, label set) pair;
4. else computed by `get_text_features` and written to the cache folder (`SEEM_HF_LABEL_EMBEDDINGS_CACHE=off`
   turns the disk cache off).

Files are safetensors (no pickle); a file whose hashes do not match what was asked is never used. While a model
trains (training mode, or a trainable text tower under autograd), nothing is cached: the embeddings are computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from seem_hf.caching import cache_home

logger = logging.getLogger(__name__)

LABEL_EMBEDDINGS_NAME = "label_embeddings.safetensors"
CACHE_ENV = "SEEM_HF_LABEL_EMBEDDINGS_CACHE"
_FORMAT = "seem_hf.label_embeddings/1"
_MEMORY_ENTRIES = 4


def cache_folder() -> Path | None:
    """The disk cache of label embeddings: `$SEEM_HF_LABEL_EMBEDDINGS_CACHE` when set (`off` or `0` for none), else
    `seem_hf/label_embeddings` under Hugging Face's cache home (`$HF_HOME`, by default `~/.cache/huggingface`)."""
    return cache_home(CACHE_ENV, "label_embeddings")


def tensors_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)};".encode())
        data = tensor.reshape(-1).contiguous().cpu()
        if data.numel():
            digest.update(data.view(torch.uint8).numpy())
    return digest.hexdigest()


def label_set_fingerprint(kind: str, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> str:
    """SHA-256 of a tokenised label set (and the model type, whose text path reads the tokens)."""
    tensors = {"input_ids": input_ids.long()}
    if attention_mask is not None:
        tensors["attention_mask"] = attention_mask.long()
    return hashlib.sha256(f"{_FORMAT}|{kind}|{tensors_fingerprint(tensors)}".encode()).hexdigest()


def _read(path: Path, text_tower: str, label_set: str) -> tuple[torch.Tensor | None, dict]:
    """The embeddings stored at `path` if its hashes are these (else None), and the file's metadata."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != _FORMAT:
                return None, metadata
            if metadata.get("text_tower") != text_tower or metadata.get("label_set") != label_set:
                return None, metadata
            return handle.get_tensor("embeddings"), metadata
    except (OSError, ValueError, RuntimeError) as error:  # unreadable or not a safetensors file: ignore it
        logger.warning("Ignoring label embeddings file %s: %s", path, error)
        return None, {}


def _write(path: Path, embeddings: torch.Tensor, text_tower: str, label_set: str, labels=None) -> None:
    """Write atomically (a temporary file renamed), so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": _FORMAT, "text_tower": text_tower, "label_set": label_set}
    if labels is not None:
        metadata["labels"] = json.dumps(list(labels))
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        save_file({"embeddings": embeddings.detach().cpu().contiguous()}, temporary, metadata=metadata)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class LabelEmbeddingsMixin:
    """For models with `get_text_features`: `get_label_embeddings` (the same embeddings, computed once per text
    tower and label set, see the module docstring), `set_default_label_set` and a `save_pretrained` that carries
    the default label set's embeddings in the folder.

    Subclasses name the submodules whose weights `get_text_features` reads in `_text_tower_modules`."""

    _text_tower_modules: tuple[str, ...] = ()

    def _text_tower_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for name in self._text_tower_modules:
            tensors.update(self.get_submodule(name).state_dict(prefix=f"{name}.", keep_vars=True))
        return tensors

    def text_tower_fingerprint(self) -> str:
        """SHA-256 of the text tower's weights, recomputed only when a tensor changed (its version counter, storage
        or dtype): an optimizer step, `load_state_dict` or `.to()` all change one."""
        tensors = self._text_tower_tensors()
        state = tuple((name, id(t), t.data_ptr(), t._version, t.dtype) for name, t in sorted(tensors.items()))
        cached = self.__dict__.get("_text_tower_fingerprint")
        if cached is None or cached[0] != state:
            cached = (state, tensors_fingerprint(tensors))
            self.__dict__["_text_tower_fingerprint"] = cached
        return cached[1]

    def _caches_text(self) -> bool:
        if self.training:
            return False
        return not (torch.is_grad_enabled() and any(t.requires_grad for t in self._text_tower_tensors().values()))

    def get_label_embeddings(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, default_label_set: bool = False
    ) -> torch.Tensor:
        """`get_text_features(input_ids[, attention_mask])`, looked up before it is computed: in memory, in the
        model's folder (`label_embeddings.safetensors`), in the disk cache (`cache_folder()`), and stored there
        once computed. `default_label_set=True` says the tokens are the folder's default label set: a carried file
        that does not match them (other weights or other labels) is then reported with a warning. In training (see
        the module docstring) the embeddings are computed every time."""
        if not self._caches_text():
            return self._encode_labels(input_ids, attention_mask)
        text_tower = self.text_tower_fingerprint()
        label_set = label_set_fingerprint(self.config.model_type, input_ids, attention_mask)
        memory = self.__dict__.setdefault("_label_embeddings_memory", OrderedDict())
        key = (text_tower, label_set, input_ids.device, self.dtype)
        if key in memory:
            memory.move_to_end(key)
            return memory[key]
        embeddings = self._carried_label_embeddings(text_tower, label_set, default_label_set)
        folder = cache_folder()
        name = f"{self.config.model_type}-{text_tower[:24]}-{label_set[:24]}.safetensors"
        cached_path = folder / name if folder is not None else None
        if embeddings is None and cached_path is not None and cached_path.is_file():
            embeddings = _read(cached_path, text_tower, label_set)[0]
        if embeddings is None:
            embeddings = self._encode_labels(input_ids, attention_mask)
            if cached_path is not None:
                try:
                    _write(cached_path, embeddings, text_tower, label_set)
                except OSError as error:
                    logger.warning("Could not cache label embeddings in %s (%s); set %s to another folder, or to "
                                   "'off'.", folder, error, CACHE_ENV)
        embeddings = embeddings.to(device=input_ids.device)
        memory[key] = embeddings
        while len(memory) > _MEMORY_ENTRIES:
            memory.popitem(last=False)
        return embeddings

    def _encode_labels(self, input_ids, attention_mask):
        if attention_mask is None:
            return self.get_text_features(input_ids)
        return self.get_text_features(input_ids, attention_mask)

    def _carried_file(self) -> Path | None:
        """The model folder's `label_embeddings.safetensors` (local folders and Hub checkpoints), or None."""
        source = str(getattr(self, "name_or_path", "") or "")
        if not source:
            return None
        if os.path.isdir(source):
            path = Path(source) / LABEL_EMBEDDINGS_NAME
            return path if path.is_file() else None
        known = self.__dict__.setdefault("_carried_files", {})  # a Hub checkpoint is asked once
        if source not in known:
            from transformers.utils import cached_file

            try:
                path = cached_file(source, LABEL_EMBEDDINGS_NAME, _raise_exceptions_for_missing_entries=False,
                                   _raise_exceptions_for_connection_errors=False)
            except (OSError, ValueError):
                path = None
            known[source] = Path(path) if path else None
        return known[source]

    def _carried_label_embeddings(self, text_tower: str, label_set: str, default_label_set: bool):
        path = self._carried_file()
        if path is None:
            return None
        embeddings, metadata = _read(path, text_tower, label_set)
        if embeddings is None and default_label_set and metadata:
            reason = ("its text-tower weights differ from the model's" if metadata.get("text_tower") != text_tower
                      else "it is for another label set (or other prompt tokens)")
            warned = self.__dict__.setdefault("_label_embeddings_warned", set())
            if (path, reason) not in warned:
                warned.add((path, reason))
                logger.warning(
                    "%s carries label embeddings that do not match the default label set (%s): computing them "
                    "instead. Save the model again after `set_default_label_set` (or the processor's "
                    "`set_default_labels(..., model=model)`) to carry matching ones.", path, reason)
        return embeddings

    def set_default_label_set(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                              labels: list[str] | None = None) -> None:
        """Remember the default label set's tokens (as the processor gives them for the default labels), so that
        `save_pretrained` writes their embeddings into the folder (`label_embeddings.safetensors`)."""
        self.__dict__["_default_label_set"] = (
            input_ids.detach().cpu(), None if attention_mask is None else attention_mask.detach().cpu(),
            None if labels is None else list(labels),
        )

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`save_pretrained`, which also writes the default label set's embeddings (`set_default_label_set`, or
        those the model was loaded with while its text tower is unchanged) as `label_embeddings.safetensors`."""
        carried = self._carried_file()
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if not kwargs.get("is_main_process", True):
            return result
        path = Path(save_directory) / LABEL_EMBEDDINGS_NAME
        default = self.__dict__.get("_default_label_set")
        if default is not None:
            input_ids, attention_mask, labels = default
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    device = next(self.parameters()).device
                    embeddings = self.get_label_embeddings(
                        input_ids.to(device), None if attention_mask is None else attention_mask.to(device))
            finally:
                self.train(was_training)
            _write(path, embeddings, self.text_tower_fingerprint(),
                   label_set_fingerprint(self.config.model_type, input_ids, attention_mask), labels)
        elif carried is not None:
            with safe_open(str(carried), framework="pt") as handle:
                metadata = handle.metadata() or {}
                embeddings = handle.get_tensor("embeddings")
            if metadata.get("text_tower") != self.text_tower_fingerprint():
                if path.exists():  # the weights changed: the file no longer describes this model
                    path.unlink()
            elif carried.resolve() != path.resolve():
                save_file({"embeddings": embeddings}, str(path), metadata=metadata)
        return result


__all__ = ["CACHE_ENV", "LABEL_EMBEDDINGS_NAME", "LabelEmbeddingsMixin", "cache_folder", "label_set_fingerprint",
           "tensors_fingerprint"]
