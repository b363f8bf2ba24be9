"""Training helpers shared by the examples: collators, optimiser groups, a Trainer with segmentation metrics, the end
of a multi-process run."""

from .collators import (
    DetrPanopticCollator,
    LabelSetCollator,
    SeemPromptCollator,
    SemanticCollator,
    masks_to_normalized_boxes,
)
from .optim import parameter_groups, warmup_multistep_schedule
from .processes import end_process_group, exit_process
from .trainer import SegmentationTrainer

__all__ = [
    "DetrPanopticCollator",
    "LabelSetCollator",
    "SegmentationTrainer",
    "SeemPromptCollator",
    "SemanticCollator",
    "end_process_group",
    "exit_process",
    "masks_to_normalized_boxes",
    "parameter_groups",
    "warmup_multistep_schedule",
]
