"""Datasets: the COCO-panoptic format with grounding sentences (reading, checking), the bundled synthetic dataset and
its unlimited stream, label vocabularies."""

from .categories import CategorySpec, LabelVocabulary
from .coco_panoptic import (
    PANOPTIC_FEATURES,
    grounding_mask,
    load_coco_panoptic,
    panoptic_targets,
    semantic_from_panoptic,
    semantic_map,
    validate_coco_panoptic,
    vocabulary_of,
    write_semantic_maps,
)
from .hf_datasets import LAYOUTS, PanopticRows, detect_layout, for_the_hub, load_training_splits
from .panoptic_format import id2rgb, rgb2id
from .shapes import SHAPES_VOCABULARY, ShapesStream, coco_panoptic_paths, make_shapes_dataset
from .transforms import Augmented, AugmentedPanopticDataset, LargeScaleJitter

__all__ = [
    "AugmentedPanopticDataset",
    "PANOPTIC_FEATURES",
    "SHAPES_VOCABULARY",
    "ShapesStream",
    "Augmented",
    "LargeScaleJitter",
    "CategorySpec",
    "coco_panoptic_paths",
    "LAYOUTS",
    "LabelVocabulary",
    "PanopticRows",
    "detect_layout",
    "for_the_hub",
    "load_training_splits",
    "grounding_mask",
    "id2rgb",
    "load_coco_panoptic",
    "make_shapes_dataset",
    "panoptic_targets",
    "rgb2id",
    "semantic_from_panoptic",
    "semantic_map",
    "validate_coco_panoptic",
    "vocabulary_of",
    "write_semantic_maps",
]
