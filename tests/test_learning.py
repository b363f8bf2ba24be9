"""Recipes that learn: each fine-tuning example's own `main` (the code path a user runs), on 4 bundled images at
64 px from a tiny random model, evaluated on the same images (`--eval_split train`), must fit them to a stated bar.
A recipe that stops learning (the SEEM class-target bug: random prompt templates with a random text tower; DETR
with its COCO dropout) fails here.

Each model trains once per module (SEEM once for its three query groups, as its example trains them together, and once
with the click-label loss); the
whole file takes about 4 minutes on one free core (SEEM 800 steps 90 s, twice: SEEM's recipe and with the click-label
loss; DETR 1000 steps 55 s, LSeg 200 steps), as
`./run test` runs it beside the rest of the suite. The bars sit below what the
recipes reach (the figures in docs/training.md, "Recipes that learn") by a margin for
run-to-run changes across machines and library versions (CPU kernels differ in the last bits, which a few hundred
steps can amplify)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seem_hf.testing import FIXTURES
from tests.helpers import load_example

# 4 training images, no jitter, evaluated on themselves once at the end (eval_steps past max_steps).
OVERFIT = ["--num_train", "4", "--num_val", "0", "--eval_split", "train", "--image_size", "64", "--min_scale", "1",
           "--max_scale", "1", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
           "--eval_strategy", "steps", "--eval_steps", "100000", "--save_strategy", "no", "--logging_steps", "50",
           "--disable_tqdm", "true", "--seed", "0"]

# SEEM 800: since its prompt collator draws per image (issue 21), 700 steps of the new draws gave referring cIoU 0.77.
SEEM_STEPS, DETR_STEPS, LSEG_STEPS = 800, 1000, 200



def _train(name: str, model: str, folder: Path, steps: int, *extra: str) -> dict:
    metrics = load_example(name).main(["--model_name_or_path", str(FIXTURES / model), "--output_dir", str(folder),
                                   "--max_steps", str(steps), *OVERFIT, *extra])
    print(name, {key: round(value, 3) for key, value in metrics.items()})  # shown with -s, and on failure
    return metrics


@pytest.fixture(scope="module")
def seem(tmp_path_factory) -> dict:
    """The SEEM example's default recipe (generic, referring and interactive query groups together)."""
    return _train("finetune_seem", "tiny-random-seem", tmp_path_factory.mktemp("seem"), SEEM_STEPS,
                  "--eval_max_clicks", "3")


def test_seem_generic_segmentation_learns(seem):
    # measured (seed 0, 700 steps): PQ 94.6, things 88.7, mIoU 95.5 (800 steps, per-image prompt draws: 94.6, 88.7,
    # 95.3); SEEM's random templates on this tower: PQ 2, things 0
    assert seem["eval_pq"] >= 85 and seem["eval_pq_things"] >= 75 and seem["eval_miou"] >= 90, seem


def test_seem_referring_segmentation_learns(seem):
    # measured: cIoU 0.92, precision@0.5 0.88 (500 steps: cIoU 0.80, below the bar); with per-image prompt draws
    # (issue 21) 0.77 at 700 steps and 0.868, precision@0.5 0.882, at 800
    assert seem["eval_referring_ciou"] >= 0.85 and seem["eval_referring_precision@0.5"] >= 0.7, seem


def test_seem_interactive_segmentation_learns(seem):
    # measured: mean IoU 0.86 after one click, NoC@85 1.8 of 3 clicks
    assert seem["eval_interactive_miou@1"] >= 0.8 and seem["eval_interactive_noc@85"] <= 2.0, seem
    # Corrective clicks must not undo the first answer. Measured 0.861 after 3 clicks (0.863 after 1; 500 steps: 0.78
    # after 0.87): the tiny model has not learnt corrective clicks well enough for the mean to rise (800: 0.86 -> 0.88),
    # so the bar is a bounded loss, not the rise the embedded defaults aim for.
    assert seem["eval_interactive_miou@3"] >= seem["eval_interactive_miou@1"] - 0.12, seem


def test_seem_click_labels_learn_with_the_label_loss(tmp_path):
    # SEEM's recipe leaves the labels of click answers unsupervised (the default run above: 0.76 of the objects'
    # first-click answers labelled right); measured with --spatial_label_weight 2: 1.0, one-click IoU 0.89
    metrics = _train("finetune_seem", "tiny-random-seem", tmp_path, SEEM_STEPS, "--eval_max_clicks", "3",
                     "--spatial_label_weight", "2")
    assert metrics["eval_interactive_label_accuracy"] >= 0.9 and metrics["eval_interactive_miou@1"] >= 0.8, metrics


def test_detr_panoptic_learns_stuff_and_things(tmp_path):
    # 96 px: at 64 px DETR's stride-32 map is 2 x 2 and things do not learn whatever the recipe
    metrics = _train("finetune_detr_panoptic", "tiny-random-detr_panoptic", tmp_path, DETR_STEPS, "--image_size", "96")
    # measured (1000 steps): PQ 92.7, things 85.4 (600 steps: 78.7 / 53.6); dropout 0.1 at 600 steps: things 46.7
    assert metrics["eval_pq"] >= 80 and metrics["eval_pq_things"] >= 65, metrics


def test_lseg_learns(tmp_path):
    metrics = _train("finetune_lseg", "tiny-random-lseg", tmp_path, LSEG_STEPS)
    assert metrics["eval_miou"] >= 90, metrics  # measured: 97.2
