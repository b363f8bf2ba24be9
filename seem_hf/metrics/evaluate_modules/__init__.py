"""seem_hf's metrics as `evaluate` modules, loaded offline from the installed package.

    import evaluate
    from seem_hf.metrics import evaluate_module_path

    metric = evaluate.load(evaluate_module_path("mean_iou"))

Each module is an `evaluate.Metric` script in this folder. It stores what `add` and `add_batch` receive in
evaluate's Arrow cache (so that processes created with `num_process` and `process_id` pool their inputs on
process 0) and computes with the `seem_hf.metrics` accumulator that the package's own evaluation uses, so both
give the same numbers. Importing this package does not import `evaluate`.
"""

from __future__ import annotations

from pathlib import Path

EVALUATE_MODULES = ("mask_ap", "mean_iou", "number_of_clicks", "panoptic_quality", "referring_iou")


def evaluate_module_path(name: str) -> str:
    """The path of the `evaluate` module script `name` (one of `EVALUATE_MODULES`), for `evaluate.load`."""
    if name not in EVALUATE_MODULES:
        raise ValueError(f"No seem_hf evaluate module named {name!r}; the modules are {', '.join(EVALUATE_MODULES)}.")
    return str(Path(__file__).resolve().parent / f"{name}.py")


__all__ = ["EVALUATE_MODULES", "evaluate_module_path"]
