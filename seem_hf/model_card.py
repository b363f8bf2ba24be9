"""The model card seem_hf writes into every saved or pushed checkpoint: the repository's `MODEL_CARD.md` template
filled from the model's config (what it is, how to load and use it, its parameters) and from what the caller knows
(training data, metrics, the command that trained it)."""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path

_MODELS = {
    "seem": dict(
        title="SEEM",
        description="SEEM (Segment Everything Everywhere All at Once, v1) for generic (semantic, instance, panoptic), "
                    "referring and interactive segmentation over any label set, converted to or trained with seem_hf.",
        architecture="FocalNet backbone, transformer-encoder FPN pixel decoder, SEEM decoder with generic, grounding, "
                     "spatial and memory query groups, CLIP-style text encoder",
        intended_use="Segmenting images by class names (semantic, instance, panoptic), by referring sentences, and "
                     "by clicks, boxes, scribbles, polygons or masks over several rounds; research and prototyping.",
        usage='segmenter = pipeline("image-segmentation", model="$repo_id", trust_remote_code=True)\n'
              'segments = segmenter("image.png", subtask="panoptic")\n'
              'inputs = processor(images=image, sentences=["the red circle"])\n'
              'masks = processor.post_process_referring_segmentation(model(**inputs))',
        limitations="Class scores come from text embeddings: label sets far from the training vocabulary score "
                    "lower. Interactive answers repeat exactly in eval mode (every object query serves each prompt, "
                    "as in SEEM's demo, and sampling uses a fixed seed); training draws at random, as SEEM does.",
    ),
    "lseg": dict(
        title="LSeg",
        description="LSeg (language-driven semantic segmentation): a DPT dense encoder and a CLIP text encoder in one "
                    "embedding space, scoring every pixel against a label set given at run time.",
        architecture="ViT + DPT neck (image), CLIP text transformer (frozen), per-pixel cosine scores",
        intended_use="Semantic segmentation over any list of labels (zero-shot within the text encoder's reach).",
        usage='segmenter = pipeline("image-segmentation", model="$repo_id", trust_remote_code=True)\n'
              'segments = segmenter("image.png", labels=["dog", "grass", "other"])',
        limitations="Semantic only (no instances). Labels absent from the training data rely on the text encoder "
                    "alone.",
    ),
    "detr_panoptic": dict(
        title="DETR-panoptic",
        description="DETR with its attention-map mask head for panoptic segmentation over a fixed label set.",
        architecture="ResNet backbone, transformer encoder-decoder with object queries, bipartite-matching set "
                     "loss, attention-map mask head, panoptic merge",
        intended_use="Panoptic, instance and semantic segmentation over the labels it was trained on.",
        usage='segmenter = pipeline("image-segmentation", model="$repo_id", trust_remote_code=True)\n'
              'segments = segmenter("image.png", subtask="panoptic")',
        limitations="A fixed label set: new classes need fine-tuning.",
    ),
}

_LICENCES = {
    "apache-2.0": "Apache 2.0, as the original SEEM, LSeg and DETR code and weights.",
    "mit": "MIT.",
}


def template() -> str:
    """The repository's MODEL_CARD.md (shipped as package data). Raises `FileNotFoundError` where seem_hf is not
    installed (code bundled into a checkpoint folder), whose saves then write no card."""
    try:
        return resources.files("seem_hf.assets").joinpath("MODEL_CARD.md").read_text(encoding="utf-8")
    except ModuleNotFoundError as error:
        raise FileNotFoundError("seem_hf's model-card template is not installed here.") from error


def model_card(
    model,
    repo_id: str | None = None,
    model_name: str | None = None,
    training_data: str | None = None,
    metrics: dict[str, float] | None = None,
    training: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
) -> str:
    """The filled card (markdown with YAML front matter) for `model` (a seem_hf model)."""
    model_type = model.config.model_type
    if model_type not in _MODELS:
        raise ValueError(f"No model card for model type {model_type!r}; seem_hf writes cards for {sorted(_MODELS)}.")
    if license not in _LICENCES:
        raise ValueError(f"license must be one of {sorted(_LICENCES)}, got {license!r}.")
    info = _MODELS[model_type]
    repo_id = repo_id or model_name or f"seem-hf/{model_type}"
    count = sum(parameter.numel() for parameter in model.parameters())
    if metrics:
        rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items())
                         if isinstance(value, (int, float)))
        metric_text = "| metric | value |\n|---|---|\n" + rows
    else:
        metric_text = "Not evaluated."
    values = {
        "model_name": model_name or repo_id.split("/")[-1],
        "model_type": model_type,
        "license": license,
        "license_text": _LICENCES[license],
        "base_model_line": f"base_model: {base_model}" if base_model else "",
        "description": info["description"],
        "architecture": info["architecture"],
        "parameters": f"{count / 1e6:.2f} M",
        "intended_use": info["intended_use"],
        "repo_id": repo_id,
        "usage": string.Template(info["usage"]).substitute(repo_id=repo_id),
        "training_data": training_data or "Not recorded.",
        "metrics": metric_text,
        "training": training or "Not recorded.",
        "limitations": info["limitations"],
    }
    return string.Template(template()).substitute(values)


def write_model_card(model, folder: str | Path, **kwargs) -> Path:
    """Write `model_card(model, **kwargs)` to `folder/README.md`."""
    path = Path(folder) / "README.md"
    path.write_text(model_card(model, **kwargs), encoding="utf-8")
    return path


__all__ = ["model_card", "template", "write_model_card"]
