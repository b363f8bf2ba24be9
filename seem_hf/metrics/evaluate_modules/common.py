"""What the `evaluate` module scripts of seem_hf share: a `Metric` that puts each input in its stored form before
`evaluate` checks and stores it, and the conversion of tensors and arrays."""

from __future__ import annotations

import evaluate
import numpy as np


def as_array(value, dtype) -> np.ndarray:
    """A numpy array of `value` (a tensor on any device, an array or nested lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


class PreparedInputsMetric(evaluate.Metric):
    """`evaluate.Metric` whose `add`, `add_batch` and `compute` first pass every prediction through
    `prepare_prediction` and every reference through `prepare_reference` (tensors to arrays, defaults for optional
    fields, extra fields dropped): `evaluate` stores only the fields its features name, and rejects others."""

    def prepare_prediction(self, prediction):
        return prediction

    def prepare_reference(self, reference):
        return reference

    def _prepared(self, predictions, references):
        if predictions is not None:
            predictions = [self.prepare_prediction(prediction) for prediction in predictions]
        if references is not None:
            references = [self.prepare_reference(reference) for reference in references]
        return predictions, references

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (lists with one entry per example)."""
        predictions, references = self._prepared(predictions, references)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and its reference."""
        prediction = None if prediction is None else self.prepare_prediction(prediction)
        reference = None if reference is None else self.prepare_reference(reference)
        return super().add(prediction=prediction, reference=reference, **kwargs)
