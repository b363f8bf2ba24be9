"""The class-name prompts of SEEM's (X-Decoder's) text classifier: "{}." and OpenAI CLIP's 80 ImageNet templates,
in SEEM's order. At evaluation each class name is written into all 81, their normalised embeddings averaged and
renormalised; in training one template is drawn per class."""

from __future__ import annotations

import random

PROMPT_TEMPLATES = (
    "{}.", "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.",
    "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.",
    "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.", "a photo of a weird {}.",
    "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
    "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.", "a photo of the large {}.",
    "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.",
    "a tattoo of the {}.",
)
BACKGROUND = "background"


def clean_class_name(name: str) -> str:
    """COCO-panoptic names carry suffixes ("wall-other-merged") that SEEM strips before prompting."""
    for suffix in ("-other", "-merged", "-stuff"):
        name = name.replace(suffix, "")
    return name


def evaluation_prompts(class_name: str) -> list[str]:
    """The 81 prompts whose embeddings SEEM averages for `class_name` at evaluation."""
    return [template.format(clean_class_name(class_name)) for template in PROMPT_TEMPLATES]


def training_prompt(class_name: str, rng: random.Random) -> str:
    """One prompt drawn at random, as SEEM's training does (commas removed, '+' as a space)."""
    name = class_name.replace(",", "").replace("+", " ")
    return rng.choice(PROMPT_TEMPLATES).format(name)


__all__ = ["BACKGROUND", "PROMPT_TEMPLATES", "clean_class_name", "evaluation_prompts", "training_prompt"]
