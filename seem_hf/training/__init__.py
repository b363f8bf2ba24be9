"""Training helpers shared by the examples: collators."""

from .collators import DetrPanopticCollator, masks_to_normalized_boxes

__all__ = ["DetrPanopticCollator", "masks_to_normalized_boxes"]
