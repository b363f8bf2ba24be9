"""Make saved seem_hf checkpoints load as remote code where seem_hf is not installed.

transformers copies into a saved folder only the file that defines a class and the siblings it imports with
`from .x import y`, so a model file that imports shared code from elsewhere in seem_hf (post-processing,
input checks) would not load with `trust_remote_code=True`. Instead of copying shared code into every model
folder, the code lives once in the package and is bundled at save time: `bundle_code` copies each needed
module into the checkpoint folder as a flat sibling and rewrites `from seem_hf.a.b import x` into
`from .b import x`, following imports transitively. Files bundled this way import only third-party packages
and each other.

Rules for code that is saved with checkpoints: import seem_hf modules by absolute name (`from seem_hf.x
import y`, never `from ..x import y`), import names from modules (not modules from packages), and keep
module basenames unique.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE = "seem_hf"


def _package_imports(source: str, filename: str) -> list[ast.ImportFrom]:
    """The `from seem_hf.... import ...` statements of a file; errors on imports the bundle cannot follow."""
    imports = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
            raise ValueError(f"{filename}:{node.lineno}: use `from {PACKAGE}.module import name` in saved code.")
        if isinstance(node, ast.ImportFrom):
            if node.level > 1:
                raise ValueError(
                    f"{filename}:{node.lineno}: relative import beyond the model folder; import it by absolute "
                    f"name (`from {PACKAGE}.module import name`) so it can be bundled."
                )
            if node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE:
                imports.append(node)
    return imports


def _module_file(module_name: str) -> Path:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ValueError(f"Cannot find module {module_name!r} to bundle.")
    origin = Path(spec.origin)
    if origin.name == "__init__.py":
        raise ValueError(
            f"Saved code imports from the package {module_name!r}; import names from the module that defines them."
        )
    return origin


def bundle_code(folder: str | os.PathLike, source_files: list[str | os.PathLike] = ()) -> list[Path]:
    """Copy `source_files` into `folder` and make every Python file there self-contained (see module docstring).

    Returns the files written. Raises `ValueError` when two different modules would share a basename.
    """
    folder = Path(folder)
    origins: dict[str, Path] = {}
    pending: list[Path] = []
    for source in source_files:
        source = Path(source)
        target = folder / source.name
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        origins[target.name] = source.resolve()
    pending.extend(sorted(folder.glob("*.py")))
    written: list[Path] = []
    while pending:
        path = pending.pop()
        source = path.read_text(encoding="utf-8")
        imports = _package_imports(source, str(path))
        if not imports:
            continue
        lines = source.splitlines(keepends=True)
        for node in sorted(imports, key=lambda n: n.lineno, reverse=True):
            origin = _module_file(node.module)
            flat_name = origin.name
            if flat_name in origins and origins[flat_name] != origin.resolve():
                raise ValueError(f"Two bundled modules share the name {flat_name}: {origins[flat_name]} and {origin}.")
            if flat_name not in origins:
                target = folder / flat_name
                shutil.copyfile(origin, target)
                origins[flat_name] = origin.resolve()
                pending.append(target)
                written.append(target)
            names = ", ".join(
                alias.name if alias.asname is None else f"{alias.name} as {alias.asname}" for alias in node.names
            )
            indent = lines[node.lineno - 1][: node.col_offset]
            # transformers copies siblings imported as `from .module import name`, not `from . import module`.
            lines[node.lineno - 1 : node.end_lineno] = [f"{indent}from .{origin.stem} import {names}\n"]
        path.write_text("".join(lines), encoding="utf-8")
    return written


def remove_bundle(folder: str | os.PathLike) -> None:
    """Drop the bundled code and the `auto_map` entries from a saved folder that ships inside the repository (the
    embedded defaults, the test fixtures): there `import seem_hf` registers the models, so a bundle would only be a
    second copy of every file. Folders saved for sharing keep theirs."""
    import json

    folder = Path(folder)
    for path in folder.glob("*.py"):
        path.unlink()

    for name in ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.exists():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        found = [part for part in (data, *data.values()) if isinstance(part, dict) and "auto_map" in part]
        for part in found:
            del part["auto_map"]
        if found:
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _defining_file(obj) -> Path | None:
    """The file that defines `obj`'s class, when it is ours (not transformers')."""
    module = inspect.getmodule(type(obj))
    if module is None or module.__name__.split(".")[0] == "transformers":
        return None
    return Path(inspect.getfile(type(obj)))


class RemoteCodeMixin:
    """Mixin for seem_hf models, image processors and processors: `save_pretrained` also writes the code
    the folder needs to load with `trust_remote_code=True`, and the `auto_map` entries of
    `_extra_auto_classes` (the ones beyond the single class transformers records)."""

    _extra_auto_classes: tuple[str, ...] = ()
    # Sub-configs of modules without attention (FocalNet, ResNet): transformers refuses "sdpa" for them, so a
    # single `attn_implementation` string is given to every other part and "eager" (nothing to change) to these.
    _attention_free_sub_configs: tuple[str, ...] = ()

    @classmethod
    def _attention_per_sub_config(cls, implementation):
        if not isinstance(implementation, str) or not cls._attention_free_sub_configs:
            return implementation
        return {"": implementation, **{key: implementation for key in cls.config_class.sub_configs},
                **{key: "eager" for key in cls._attention_free_sub_configs}}

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        if kwargs.get("attn_implementation") is not None:
            kwargs["attn_implementation"] = cls._attention_per_sub_config(kwargs["attn_implementation"])
        return super().from_pretrained(*args, **kwargs)

    def set_attn_implementation(self, attn_implementation, *args, **kwargs):
        return super().set_attn_implementation(self._attention_per_sub_config(attn_implementation), *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        config = getattr(self, "config", None)
        if config is not None and self._extra_auto_classes:
            module = type(self).__module__.split(".")[-1]
            auto_map = dict(getattr(config, "auto_map", None) or {})
            for auto_class in self._extra_auto_classes:
                auto_map[auto_class] = f"{module}.{type(self).__name__}"
            config.auto_map = auto_map
        result = super().save_pretrained(save_directory, *args, **kwargs)
        parts = [self] + [getattr(self, name, None) for name in ("image_processor", "tokenizer")]
        bundle_code(save_directory, [path for part in parts if part is not None and (path := _defining_file(part))])
        if config is not None and not (Path(save_directory) / "README.md").exists():
            from seem_hf.model_card import write_model_card

            try:
                write_model_card(self, save_directory)  # a user's own card is never overwritten
            except FileNotFoundError:  # running as bundled remote code, without seem_hf's template
                pass
        return result

    def load_adapter(self, peft_model_id=None, adapter_name=None, peft_config=None, **kwargs):
        """transformers' `load_adapter` (also what `AutoModel.from_pretrained(adapter_folder)` calls), taught
        seem_hf's bottleneck layers: PEFT's saved config does not name custom layers, so it is completed from the
        model's `_adapter_targets` first. Works where seem_hf is not installed (the code travels with the
        checkpoint; PEFT is needed)."""
        if peft_model_id is None or not getattr(self, "_adapter_targets", None):
            return super().load_adapter(peft_model_id, adapter_name=adapter_name, peft_config=peft_config, **kwargs)
        from seem_hf.adapters.strategies import adapter_config_for, apply_adapter_labels, quiet_peft

        apply_adapter_labels(self, peft_model_id)  # the label set the adapter was trained for (its classifier rows)
        with quiet_peft():
            peft_config = peft_config or adapter_config_for(self, peft_model_id)
            return super().load_adapter(peft_model_id, adapter_name=adapter_name, peft_config=peft_config, **kwargs)

    def push_to_hub(self, repo_id: str, commit_message: str | None = None, private: bool | None = None,
                    token=None, revision: str | None = None, create_pr: bool = False,
                    model_card_kwargs: dict | None = None, **kwargs):
        """transformers' `push_to_hub`, with seem_hf's model card (`seem_hf.model_card`, filled with
        `model_card_kwargs`: training data, metrics, training command) as the repository's README for models;
        the pushed folder carries its code, so it loads with `trust_remote_code=True` without seem_hf."""
        if getattr(self, "config", None) is None:  # processors: transformers' own push
            return super().push_to_hub(repo_id, commit_message=commit_message, private=private, token=token,
                                       revision=revision, create_pr=create_pr, **kwargs)
        from huggingface_hub import HfApi

        from seem_hf.model_card import write_model_card

        repo_id = HfApi().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **kwargs)
            write_model_card(self, folder, repo_id=repo_id, **(model_card_kwargs or {}))
            return self._upload_modified_files(
                folder, repo_id, files_timestamps={}, commit_message=commit_message or f"Upload {type(self).__name__}",
                token=token, create_pr=create_pr, revision=revision,
            )


__all__ = ["RemoteCodeMixin", "bundle_code", "remove_bundle"]
