"""What the seem_hf processors share."""

from __future__ import annotations

import collections.abc

CONTEXT_LENGTH = 77  # CLIP's text context: every label or prompt is padded or truncated to it


def check_label_set(labels, clean=None, name: str = "labels") -> list[str]:
    """The label set as a list of non-empty, distinct strings, or a `ValueError` saying what is wrong (`name` is the
    argument that gave it, for the message).

    The results' label ids index the labels in the order given, so the set must have an order of its own: a list,
    a tuple, an array or another sequence or iterator of strings. A single string, a mapping (an `id2label` dict,
    whose keys would be read as the labels) and a Python `set` (ordered by string hashing, which changes from one
    process to the next) are refused with the fix.

    Labels are compared as the model reads them, after `clean` (the processors pass their text cleaning; by default
    lower case with whitespace collapsed, which CLIP's cleaning does too): "Circle" and "circle" are one label to
    the model, and two such labels would give it two identical classes, one of which never wins a pixel."""
    if isinstance(labels, str):
        raise ValueError(f"{name}={labels!r} is one string: give the labels as a non-empty list of strings, e.g. {name}=[{labels!r}, "
                         "'other'].")
    if isinstance(labels, collections.abc.Mapping):
        raise ValueError(f"{name} takes a list of label names, not a mapping (its keys would be read as the labels); "
                         f"for an id2label dict pass [id2label[i] for i in sorted(id2label)].")
    if isinstance(labels, collections.abc.Set):
        raise ValueError(f"{name} is a set, whose order changes from one run to the next, while the results' label ids "
                         f"index the labels in order: give a list, e.g. {name}=sorted(your_set).")
    if not isinstance(labels, collections.abc.Iterable):
        raise ValueError(f"{name} takes a list of label names, got {type(labels).__name__}.")
    labels = list(labels)
    if not labels:
        raise ValueError(f"The label set ({name}) is empty: give a non-empty list of labels.")
    if bad := [label for label in labels if not isinstance(label, str) or not label.strip()]:
        raise ValueError(f"Labels ({name}) must be non-empty strings; got {bad}.")
    if duplicates := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"Labels ({name}) must be distinct; repeated: {duplicates}.")
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
