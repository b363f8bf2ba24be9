"""What the seem_hf processors share."""

from __future__ import annotations

CONTEXT_LENGTH = 77  # CLIP's text context: every label or prompt is padded or truncated to it


def check_label_set(labels) -> list[str]:
    """The label set as a list of non-empty, distinct strings, or a `ValueError` saying what is wrong."""
    if isinstance(labels, str):
        raise ValueError(f"Give the labels as a non-empty list of strings, not one string: {labels!r}.")
    labels = list(labels)
    if not labels:
        raise ValueError("The label set is empty: give a non-empty list of labels.")
    if bad := [label for label in labels if not isinstance(label, str) or not label.strip()]:
        raise ValueError(f"Labels must be non-empty strings; got {bad}.")
    if duplicates := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"Labels must be distinct; repeated: {duplicates}.")
    return labels


class PostProcessingMixin:
    """A processor's `post_process_*` methods are its image processor's (those it has)."""

    def post_process_semantic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_semantic_segmentation(*args, **kwargs)

    def post_process_instance_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_instance_segmentation(*args, **kwargs)

    def post_process_panoptic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_panoptic_segmentation(*args, **kwargs)


__all__ = ["CONTEXT_LENGTH", "PostProcessingMixin", "check_label_set"]
