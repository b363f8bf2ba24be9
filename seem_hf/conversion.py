"""Helpers shared by the checkpoint converters."""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

# Keys that identify each original checkpoint, for the error that says which converter a file belongs to.
CHECKPOINT_SIGNATURES = {
    "SEEM (seem_hf.models.seem.convert_seem_original_to_hf)": "sem_seg_head.predictor.query_feat.weight",
    "DETR-panoptic (seem_hf.models.detr_panoptic.convert_detr_panoptic_original_to_hf)": "detr.query_embed.weight",
    "LSeg (seem_hf.models.lseg.convert_lseg_original_to_hf)": "pretrained.model.patch_embed.proj.weight",
}
# The same, once converted to seem_hf (a folder's model.safetensors given to a converter again).
CONVERTED_SIGNATURES = {
    "SEEM": "decoder.query_feat.weight",
    "DETR-panoptic": "detr.model.query_position_embeddings.weight",
    "LSeg": "dpt.embeddings.patch_embeddings.projection.weight",
}
# Where training code keeps the model's state dict inside a checkpoint (detectron2 and DETR: `model`; Lightning:
# `state_dict`; DeepSpeed: `module`; others `model_state_dict`, `net`), and the prefixes that wrappers put on every
# key (DDP and DeepSpeed `module.`, Lightning modules `model.` or `net.`, torch.compile `_orig_mod.`).
STATE_DICT_ENTRIES = ("model", "state_dict", "module", "model_state_dict", "net")
WRAPPER_PREFIXES = ("module.", "model.", "net.", "_orig_mod.")
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


# OpenAI CLIP's text-block names -> transformers' CLIPTextModel, once a converter has mapped its own prefix of
# `resblocks.{i}.` to `text_model.encoder.layers.{i}.` (LSeg's and SEEM's towers share these).
CLIP_TEXT_LAYER_RENAMES = [
    (r"(text_model\.encoder\.layers\.\d+)\.attn\.", r"\1.self_attn."),
    (r"(text_model\.encoder\.layers\.\d+)\.ln_1\.", r"\1.layer_norm1."),
    (r"(text_model\.encoder\.layers\.\d+)\.ln_2\.", r"\1.layer_norm2."),
    (r"(text_model\.encoder\.layers\.\d+)\.mlp\.c_fc\.", r"\1.mlp.fc1."),
    (r"(text_model\.encoder\.layers\.\d+)\.mlp\.c_proj\.", r"\1.mlp.fc2."),
]


def read_checkpoint(path: str | Path, expected: str, safe_globals: list | None = None, entry: str = "model"):
    """Load a checkpoint file safely (`torch.load(weights_only=True)`, or safetensors) with errors that say what is
    wrong: the file is missing, is a folder, is empty, is not a PyTorch checkpoint at all (another format, or a
    truncated file), or pickles Python objects besides tensors. `expected` names the checkpoint the converter
    wants, for the messages; `safe_globals` are classes the checkpoint may pickle besides tensors; `entry` is where
    the model's training code keeps the state dict (for the way out of a file that pickles objects)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (expected {expected}).")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the checkpoint file inside it (expected {expected}).")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: not a PyTorch checkpoint (expected {expected}).")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as error:
            raise ValueError(f"{path} is not a readable safetensors file ({error}); expected {expected}.") from error
    with open(path, "rb") as file:
        head = file.read(len(_LEGACY_TORCH_MAGIC))
    torch_zip = zipfile.is_zipfile(path) and any(
        name.endswith("/data.pkl") or name == "data.pkl" for name in zipfile.ZipFile(path).namelist()
    )
    if not torch_zip and head != _LEGACY_TORCH_MAGIC:
        kind = "a zip archive" if zipfile.is_zipfile(path) else "a Python pickle" if head[:1] == b"\x80" else None
        raise ValueError(
            f"{path} is not a PyTorch checkpoint (neither torch.save's zip nor its legacy format"
            f"{'' if kind is None else ', but ' + kind}); expected {expected}."
        )
    try:
        with torch.serialization.safe_globals(safe_globals or []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise ValueError(f"{path} is not a readable PyTorch checkpoint (corrupt?): {error}") from error
        objects = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line]
        # Still weights_only=True: the classes the file names are allowed one by one, nothing else is unpickled.
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error)))) or ["<the class named above>"]
        raise ValueError(
            f"{path} pickles Python objects besides tensors, which are not loaded for safety "
            f"({objects[0] if objects else 'weights_only=True refused it'}); expected {expected}. If you trust the "
            "file, save its state dict alone once, where the classes it names are importable: import "
            f"{', '.join(name.rpartition('.')[0] or name for name in names)}; with torch.serialization.safe_globals("
            f"[{', '.join(names)}]): checkpoint = torch.load({str(path)!r}, weights_only=True); then "
            f"torch.save(checkpoint[{entry!r}], 'weights.pth') (or torch.save(checkpoint, ...) if it is the state dict "
            "itself), and convert weights.pth."
        ) from error
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {type(error).__name__}: {error}"
        ) from error


def unwrap_state_dict(checkpoint, path: str | Path, expected: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint as people hold them: flat, or nested under one of
    `STATE_DICT_ENTRIES` (at any depth: `{"state_dict": {"module": ...}}`), every key carrying one or more of
    `WRAPPER_PREFIXES` (removed only when every key has it). Anything else is refused naming what the file holds."""
    entries = []
    while isinstance(checkpoint, dict) and not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        entry = next((key for key in STATE_DICT_ENTRIES if isinstance(checkpoint.get(key), dict)), None)
        if entry is None:
            break
        entries.append(entry)
        checkpoint = checkpoint[entry]
    where = "".join(f"[{entry!r}]" for entry in entries) or "at its top level"
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError(
            f"{path} holds {'an empty dict' if isinstance(checkpoint, dict) else type(checkpoint).__name__} {where}, "
            f"not a state dict (a dict of tensors, possibly under one of {list(STATE_DICT_ENTRIES)}); expected "
            f"{expected}."
        )
    others = {key: type(value).__name__ for key, value in checkpoint.items() if not isinstance(value, torch.Tensor)}
    if others:
        shown = dict(list(others.items())[:8])
        raise ValueError(
            f"{path} does not hold a state dict {where}: {len(others)} entries are not tensors ({shown}), and none "
            f"of {list(STATE_DICT_ENTRIES)} holds the weights; expected {expected}. Save the dict of tensors alone "
            "(torch.save(state_dict, 'weights.pth')) and convert that."
        )
    state_dict = dict(checkpoint)
    while prefix := next((p for p in WRAPPER_PREFIXES if all(key.startswith(p) for key in state_dict)), None):
        state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
    return state_dict


def check_checkpoint_keys(state_dict: dict, required: list[str], expected: str) -> None:
    """Raise a `ValueError` when keys that the converter reads are missing: it names the checkpoint expected, the
    missing keys, some of the keys found instead, and the converter the file seems to belong to."""
    missing = [key for key in required if key not in state_dict]
    if not missing:
        return
    found = sorted(state_dict)
    belongs = [name for name, key in CHECKPOINT_SIGNATURES.items() if key in state_dict]
    hint = f" It looks like a {belongs[0]} checkpoint: use that converter." if belongs else ""
    converted = [name for name, key in CONVERTED_SIGNATURES.items() if key in state_dict]
    if converted:
        hint += (f" It looks like {converted[0]} weights already converted to seem_hf (a converted folder's "
                 "model.safetensors): load that folder with from_pretrained instead of converting it again.")
    raise ValueError(
        f"This is not {expected}: the converter needs keys that are missing ({len(missing)} of {len(required)}): "
        f"{missing[:8]}. Unexpected keys found instead ({len(found)}), e.g. {found[:8]}.{hint}"
    )


def load_state_dict_strictly(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load converted weights strictly, raising a `ValueError` that lists every missing key, unexpected key and
    shape mismatch (torch's own error stops at shapes and hides the rest)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state_dict)
        if state_dict[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The checkpoint does not match {type(model).__name__}.\n"
            f"Missing keys ({len(missing)}): {_first(missing)}\nUnexpected keys ({len(unexpected)}): "
            f"{_first(unexpected)}\nShape mismatches ({len(mismatched)}): {_first(mismatched)}"
        )
    model.load_state_dict(state_dict, strict=True)


# What a conversion writes into its folder (weights, configs, tokenizer, model card, label embeddings, remote code):
# a folder holding only these is an earlier conversion, which converting again replaces.
CONVERSION_FILES = (
    "config.json", "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
    "processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "merges.txt", "README.md", "label_embeddings.safetensors", "*.py",
)
# The earlier conversion's files that a new one replaces or, where it writes none, removes (weights and what depends
# on them: an old shard or label embeddings left beside new weights would be read with them).
_STALE_FILES = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
                "label_embeddings.safetensors")


def write_converted(output_dir: str | Path, *parts) -> Path:
    """Write a converted folder, each of `parts` (the model, its processor) by its `save_pretrained`, without losing
    or mixing anything: the output must be a folder that is missing, empty or holds an earlier conversion only
    (`CONVERSION_FILES`; hidden entries such as a Hub clone's .git and .gitattributes are left alone); anything else
    there (a file of the user's, another model's weights, a subfolder) is refused by name before any work. The parts
    fill a temporary folder beside it, so a conversion that fails leaves the output as it was; its files then replace
    the earlier conversion's, whose weight files the new one does not write are removed. A README.md that is not
    seem_hf's card is kept, as `save_pretrained` keeps it."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output-dir {output_dir} is a file; give a folder to write the converted model to.")
    existing = sorted(output_dir.iterdir()) if output_dir.is_dir() else []
    foreign = [entry.name + ("/" if entry.is_dir() else "") for entry in existing if not entry.name.startswith(".")
               and (entry.is_dir() or not any(fnmatch.fnmatch(entry.name, pattern) for pattern in CONVERSION_FILES))]
    if foreign:
        raise ValueError(
            f"--output-dir {output_dir} is not empty and holds what a conversion does not write: {foreign[:10]}"
            f"{f' and {len(foreign) - 10} more' if len(foreign) > 10 else ''}. Give a new or empty folder (a folder "
            "holding an earlier conversion only is replaced), or move those out."
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.converting-", dir=output_dir.parent))
    try:
        for part in parts:
            part.save_pretrained(staging)
        output_dir.mkdir(exist_ok=True)
        written = {entry.name for entry in staging.iterdir()}
        for entry in existing:
            stale = any(fnmatch.fnmatch(entry.name, pattern) for pattern in _STALE_FILES)
            if stale and entry.name not in written and entry.exists():
                entry.unlink()
        for name in sorted(written):
            if name == "README.md" and _users_card(output_dir / name):
                continue  # a card of the user's own is never overwritten (as save_pretrained keeps it)
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def read_categories(path: str | Path) -> list[dict]:
    """The categories of a COCO-panoptic JSON given to a converter (`--categories`): the file's `categories` list,
    or a bare list; UTF-8 with or without a byte-order mark. Each needs an integer `id` and a non-empty `name`
    (ids and names distinct); `isthing` (default false) and `color` ([r, g, b]) are optional. Returned as dicts of
    exactly those four keys, `color` None where not given; every problem is a `ValueError` naming the file and
    the category."""
    import json

    from seem_hf.data.validation import read_utf8

    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"--categories {path} is not valid JSON ({error}).") from error
    if isinstance(data, dict):
        if not isinstance(data.get("categories"), list):
            raise ValueError(f"--categories {path} has no 'categories' list (its keys: {sorted(data)[:10]}); give a "
                             "COCO-panoptic JSON, or a list of {'id', 'name', 'isthing', 'color'}.")
        data = data["categories"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"--categories {path} holds no categories: give a COCO-panoptic JSON whose 'categories' "
                         "list has {'id', 'name', 'isthing', 'color'} for each.")
    categories = []
    for place, category in enumerate(data):
        where = f"--categories {path}: category {place} ({category!r:.80})"
        if not isinstance(category, dict):
            raise ValueError(f"{where} is not an object with 'id' and 'name'.")
        identifier, name = category.get("id"), category.get("name")
        if isinstance(identifier, str) and identifier.strip().isdigit():
            identifier = int(identifier)
        if isinstance(identifier, bool) or not isinstance(identifier, int):
            raise ValueError(f"{where} needs an integer 'id'; got {identifier!r}.")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where} needs a non-empty 'name'; got {name!r}.")
        color = category.get("color")
        if color is not None and (not isinstance(color, (list, tuple)) or len(color) != 3
                                  or not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise ValueError(f"{where}: 'color' must be [r, g, b] of integers 0-255; got {color!r}.")
        isthing = category.get("isthing", False)
        if isthing not in (0, 1, True, False):
            raise ValueError(f"{where}: 'isthing' must be 0 or 1 (true or false); got {isthing!r}.")
        categories.append({"id": identifier, "name": name, "isthing": bool(isthing),
                           "color": None if color is None else [int(v) for v in color]})
    for field in ("id", "name"):
        values = [category[field] for category in categories]
        if repeated := sorted({value for value in values if values.count(value) > 1}, key=str):
            raise ValueError(f"--categories {path}: categories must have distinct {field}s; repeated: {repeated}.")
    return categories


def _users_card(path: Path) -> bool:
    """Whether `path` is a README written by someone, not the card seem_hf writes (tagged `seem_hf`)."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    front = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    return "\n- seem_hf\n" not in front


def _first(items: list, count: int = 40) -> str:
    return str(items[:count]) + (f" and {len(items) - count} more" if len(items) > count else "")


__all__ = [
    "CLIP_TEXT_LAYER_RENAMES",
    "check_checkpoint_keys",
    "load_state_dict_strictly",
    "read_categories",
    "read_checkpoint",
    "unwrap_state_dict",
    "write_converted",
]
