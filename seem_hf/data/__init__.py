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
from .shapes import (
    SHAPES_DOMAINS,
    SHAPES_VOCABULARY,
    TERRAIN_VOCABULARY,
    ShapesDomain,
    ShapesStream,
    coco_panoptic_paths,
    make_shapes_dataset,
)
from .streaming import StreamedPanopticDataset, load_streaming_splits
from .transforms import Augmented, AugmentedPanopticDataset, LargeScaleJitter, augment_panoptic_row

__all__ = [
    "LAYOUTS",
    "PANOPTIC_FEATURES",
    "SHAPES_DOMAINS",
    "SHAPES_VOCABULARY",
    "TERRAIN_VOCABULARY",
    "Augmented",
    "AugmentedPanopticDataset",
    "CategorySpec",
    "LabelVocabulary",
    "LargeScaleJitter",
    "PanopticRows",
    "ShapesDomain",
    "ShapesStream",
    "StreamedPanopticDataset",
    "augment_panoptic_row",
    "coco_panoptic_paths",
    "detect_layout",
    "for_the_hub",
    "grounding_mask",
    "id2rgb",
    "load_coco_panoptic",
    "load_streaming_splits",
    "load_training_splits",
    "make_shapes_dataset",
    "panoptic_targets",
    "rgb2id",
    "semantic_from_panoptic",
    "semantic_map",
    "validate_coco_panoptic",
    "vocabulary_of",
    "write_semantic_maps",
]
