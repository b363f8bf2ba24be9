"""What the seem_hf processors share."""

from __future__ import annotations

import collections.abc
import warnings

import numpy as np

CONTEXT_LENGTH = 77  # CLIP's text context: every label or prompt is padded or truncated to it


def ordered_list(value, name: str, example: str, what: str = "prompts", mapping_hint: str | None = None) -> list:
    """`value`, a sequence or iterator with an order of its own (a list, tuple, array, generator), as a list, or a
    `ValueError` naming `name` (the argument) and the fix, with `example` (a value for it) and `what` (what it
    holds, e.g. "label names") in the message.

    The results follow the order of what was given (label ids index the labels, the masks follow the prompts), so a
    Python `set` (ordered by string hashing, which changes from one process to the next) and a mapping (whose keys
    would be read as the items; `mapping_hint` replaces the message's fix) are refused, as is a single value that
    is not iterable. Strings are the caller's to handle before: a string is iterable, by its characters."""
    if isinstance(value, collections.abc.Mapping):
        raise ValueError(mapping_hint or f"{name} is a mapping (its keys would be read as the {what}), while the "
                         f"results follow the order of the {what}: give a list, e.g. {name}={example}.")
    if isinstance(value, collections.abc.Set):
        raise ValueError(f"{name} is a set, whose order changes from one run to the next, while the results follow "
                         f"the order of the {what}: give a list, e.g. {name}=sorted(your_set).")
    if not isinstance(value, collections.abc.Iterable):
        raise ValueError(f"{name} takes a list of {what}, e.g. {name}={example}; got {type(value).__name__}.")
    return list(value)


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
        raise ValueError(f"{name}={labels!r} is one string: give the labels as a non-empty list of strings, e.g. "
                         f"{name}=[{labels!r}, 'other'].")
    labels = ordered_list(
        labels, name, "['cat', 'dog']", what="label names",
        mapping_hint=f"{name} takes a list of label names, not a mapping (its keys would be read as the labels); "
                     f"for an id2label dict pass [id2label[i] for i in sorted(id2label)].")
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


def placeholder_label_set(id2label) -> bool:
    """Whether `id2label` is transformers' placeholder (`PretrainedConfig`'s `{0: "LABEL_0", 1: "LABEL_1"}`, or
    any `LABEL_<id>` names): a model saved without a label set of its own. Read as text prompts, such names would
    segment every image into classes named "LABEL_0"... without a word."""
    return bool(id2label) and all(str(name) == f"LABEL_{int(index)}" for index, name in id2label.items())


def tokenize_to_context(tokenizer, texts: list[str], return_tensors="pt"):
    """`texts` tokenised, padded and cut to CLIP's context (`CONTEXT_LENGTH` tokens), as SEEM and LSeg read text;
    returns the encoding and the indices of the texts that were longer, whose ends the model does not read."""
    encoded = tokenizer(texts, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True,
                        return_tensors=return_tensors)
    full = np.flatnonzero(np.asarray(encoded["attention_mask"])[:, -1]) if texts else []
    # a text that fills the context may fit exactly: only those are tokenised again, whole, to tell
    lengths = tokenizer([texts[index] for index in full], verbose=False)["input_ids"] if len(full) else []
    return encoded, [int(index) for index, ids in zip(full, lengths) if len(ids) > CONTEXT_LENGTH]


def warn_cut_texts(what: str, texts: list[str]) -> None:
    """Warn that `texts` (`what`: "labels", "sentences") were cut to CLIP's context, naming them."""
    shown = ", ".join(repr(text if len(text) <= 60 else text[:57] + "...") for text in texts[:3])
    more = f" and {len(texts) - 3} more" if len(texts) > 3 else ""
    warnings.warn(
        f"These {what} are longer than CLIP's {CONTEXT_LENGTH}-token context and were cut to it, so the model does not "
        f"read their ends: {shown}{more}. Shorten them.",
        stacklevel=3,
    )


def check_cut_labels(labels: list[str], input_ids, cut_labels: list[int]) -> None:
    """After labels were cut to CLIP's context (`cut_labels`, indices into `labels`): warn, naming them, and refuse
    labels whose tokens became the same (`input_ids` has one leading row per label), since the model could never
    tell them apart."""
    if not cut_labels:
        return
    warn_cut_texts("labels", [labels[index] for index in cut_labels])
    seen = {}
    for index, row in enumerate(np.asarray(input_ids).reshape(len(labels), -1)):
        key = row.tobytes()
        if key in seen:
            raise ValueError(
                f"Labels {labels[seen[key]]!r} and {labels[index]!r} are the same label to the model once cut to "
                f"CLIP's {CONTEXT_LENGTH}-token context (they differ only after it), so one of them would never be "
                "predicted: shorten them so that they differ early."
            )
        seen[key] = index


class PostProcessingMixin:
    """A processor's `post_process_*` methods are its image processor's (those it has)."""

    def post_process_semantic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_semantic_segmentation(*args, **kwargs)

    def post_process_instance_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_instance_segmentation(*args, **kwargs)

    def post_process_panoptic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_panoptic_segmentation(*args, **kwargs)


__all__ = [
    "CONTEXT_LENGTH",
    "PostProcessingMixin",
    "check_cut_labels",
    "check_label_set",
    "ordered_list",
    "placeholder_label_set",
    "tokenize_to_context",
    "warn_cut_texts",
]
