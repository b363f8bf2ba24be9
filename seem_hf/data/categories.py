"""Label vocabularies: a category spec written by a person (name, colour, thing or stuff) from which the
COCO-panoptic `categories`, the model config's `id2label` and the processors' thing ids and colours are made,
so that nobody writes ids by hand."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CategorySpec:
    """One category. `isthing`: countable objects (instances) rather than amorphous stuff."""

    name: str
    color: tuple[int, int, int]
    isthing: bool

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"A category needs a non-empty name, got {self.name!r}.")
        if len(self.color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in self.color):
            raise ValueError(f"Category {self.name!r}: color must be three integers in 0..255, got {self.color!r}.")


class LabelVocabulary:
    """An ordered list of categories. COCO-panoptic category ids are 1..K in spec order (0 is void in the
    panoptic PNGs); the model's contiguous label ids are 0..K-1 in the same order."""

    def __init__(self, categories: Sequence[CategorySpec]):
        categories = list(categories)
        if not categories:
            raise ValueError("A label vocabulary needs at least one category.")
        names = [category.name for category in categories]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Duplicate category names: {duplicates}.")
        self.categories = categories

    @classmethod
    def from_coco(cls, categories: Iterable[dict]) -> tuple[LabelVocabulary, dict[int, int]]:
        """From COCO-panoptic `categories` (any ids): the vocabulary, ordered by id, and the map from COCO
        category id to contiguous label id."""
        ordered = sorted(categories, key=lambda category: int(category["id"]))
        vocabulary = cls(
            [CategorySpec(c["name"], tuple(int(v) for v in c["color"]), bool(c["isthing"])) for c in ordered]
        )
        return vocabulary, {int(c["id"]): label for label, c in enumerate(ordered)}

    def __len__(self) -> int:
        return len(self.categories)

    def coco_categories(self) -> list[dict]:
        """The `categories` list of a COCO-panoptic JSON."""
        return [
            {"id": index + 1, "name": c.name, "supercategory": "thing" if c.isthing else "stuff",
             "isthing": int(c.isthing), "color": list(c.color)}
            for index, c in enumerate(self.categories)
        ]

    @property
    def id2label(self) -> dict[int, str]:
        return {index: category.name for index, category in enumerate(self.categories)}

    @property
    def thing_label_ids(self) -> list[int]:
        return [index for index, category in enumerate(self.categories) if category.isthing]

    @property
    def label_colors(self) -> dict[int, list[int]]:
        return {index: list(category.color) for index, category in enumerate(self.categories)}

    def processor_kwargs(self) -> dict:
        """Keyword arguments of the image processors' vocabulary (`id2label`, `thing_label_ids`, `label_colors`)."""
        return {"id2label": self.id2label, "thing_label_ids": self.thing_label_ids, "label_colors": self.label_colors}


__all__ = ["CategorySpec", "LabelVocabulary"]
