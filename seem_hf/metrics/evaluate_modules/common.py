"""What the `evaluate` module scripts of seem_hf share: a `Metric` that puts each input in its stored form before
`evaluate` checks and stores it, the conversion of tensors and arrays, and the stored form of label maps.

`evaluate` keeps every input until `compute` and hands it back as Python lists, which for label maps costs tens of
bytes and a Python object per pixel. Maps are therefore stored as their shape and zlib-compressed bytes (label maps
compress tenfold or more) and decoded with numpy."""

from __future__ import annotations

import zlib

import datasets
import evaluate
import numpy as np

# The stored form of one array: its shape and its bytes (C order), zlib-compressed.
STORED_ARRAY = {"shape": datasets.List(datasets.Value("int64")), "zlib": datasets.Value("binary")}


def as_array(value, dtype) -> np.ndarray:
    """A numpy array of `value` (a tensor on any device, an array or nested lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def store_array(value, dtype, ndim: int, name: str) -> dict:
    """`value` as `STORED_ARRAY` with `dtype`; `name` says what it is when it has not `ndim` dimensions."""
    array = np.ascontiguousarray(as_array(value, dtype))
    if array.ndim != ndim:
        raise ValueError(f"{name} has shape {array.shape}; it needs {ndim} dimensions.")
    return {"shape": list(array.shape), "zlib": zlib.compress(array.tobytes(), 1)}


def load_array(stored: dict, dtype) -> np.ndarray:
    """The array `store_array` stored with `dtype`."""
    return np.frombuffer(zlib.decompress(stored["zlib"]), dtype=dtype).reshape(stored["shape"]).copy()  # writable


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

    def compute(self, *, predictions=None, references=None, **kwargs):
        """The metric over the inputs added (or given here); with nothing added, an error saying so (evaluate's own
        is an AttributeError about 'getvalue')."""
        if predictions is None and references is None and self.writer is None and self.num_process == 1:
            raise ValueError(f"{self.name}: nothing to compute; add examples with add() or add_batch() first, or pass "
                             "predictions= and references= to compute().")
        if predictions is None and references is None:
            return super().compute(**kwargs)
        return super().compute(predictions=predictions, references=references, **kwargs)  # through add_batch

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and its reference."""
        prediction = None if prediction is None else self.prepare_prediction(prediction)
        reference = None if reference is None else self.prepare_reference(reference)
        return super().add(prediction=prediction, reference=reference, **kwargs)
