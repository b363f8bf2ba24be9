"""What the seem_hf processors share."""

from __future__ import annotations

CONTEXT_LENGTH = 77  # CLIP's text context: every label or prompt is padded or truncated to it


def check_label_set(labels, clean=None) -> list[str]:
    """The label set as a list of non-empty, distinct strings, or a `ValueError` saying what is wrong.

    Labels are compared as the model reads them, after `clean` (the processors pass their text cleaning; by default
    lower case with whitespace collapsed, which CLIP's cleaning does too): "Circle" and "circle" are one label to
    the model, and two such labels would give it two identical classes, one of which never wins a pixel."""
    if isinstance(labels, str):
        raise ValueError(f"Give the labels as a non-empty list of strings, not one string: {labels!r}.")
    labels = list(labels)
    if not labels:
        raise ValueError("The label set is empty: give a non-empty list of labels.")
    if bad := [label for label in labels if not isinstance(label, str) or not label.strip()]:
        raise ValueError(f"Labels must be non-empty strings; got {bad}.")
    if duplicates := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"Labels must be distinct; repeated: {duplicates}.")
    seen = {}
    for label in labels:
        key = clean(label) if clean is not None else " ".join(label.split()).lower()
        if key in seen:
            raise ValueError(
                f"Labels {seen[key]!r} and {label!r} are the same label to the model (both read as {key!r}), so one "
                "of them would never be predicted: keep one, or name them so that they differ."
            )
        seen[key] = label
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
