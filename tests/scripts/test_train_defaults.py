"""scripts/train_defaults.py's packaging of a default trained further (`--start_from`): the card gives both
commands and the learning curve both runs, the second's steps after the first's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor, DetrPanopticProcessor
from seem_hf.testing import tiny_detr_panoptic_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_defaults  # noqa: E402


def _evaluation(step: int, pq: float) -> dict:
    return {"step": step, "eval_pq": pq, "eval_pq_things": pq / 2, "eval_pq_stuff": pq, "eval_miou": pq}


def test_a_continued_run_carries_the_first_runs_command_and_curve(tmp_path):
    first = tmp_path / "first"  # what the --start_from folder holds: a card and a learning curve
    first.mkdir()
    (first / "README.md").write_text("# card\n\n## Training\n\n`python scripts/train_defaults.py --models "
                                     "detr_panoptic --steps 8000` from random weights.\n\n## Limitations\n\nnone\n")
    history = [_evaluation(4000, 40.0), _evaluation(8000, 60.0)]
    (first / train_defaults.LEARNING_CURVE).write_text(json.dumps({"title": "first", "history": history}))
    output = tmp_path / "run"  # the example's output folder after 1,000 more steps
    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config())
    model.save_pretrained(output)
    DetrPanopticProcessor(DetrPanopticImageProcessor(id2label=model.config.id2label)).save_pretrained(output)
    later = [_evaluation(500, 62.0), _evaluation(1000, 65.0)]
    (output / "trainer_state.json").write_text(json.dumps({"log_history": [{"loss": 1.0, "step": 5}, *later]}))
    (output / "eval_results.json").write_text(json.dumps({"eval_pq": 65.0, "eval_runtime": 3.0}))

    recipe = [*train_defaults.RECIPES["detr_panoptic"][2], "--learning_rate", "5e-4"]  # an override after `--`
    folder = train_defaults.package("detr_panoptic", output, 1000, 600.0, tmp_path / "dest", recipe,
                                    continued=(first, Path("outputs/first/detr_panoptic-shapes")))
    card = (folder / "README.md").read_text()
    assert ("`python scripts/train_defaults.py --models detr_panoptic --steps 1000 --start_from "
            "outputs/first/detr_panoptic-shapes -- --learning_rate 5e-4`") in card
    assert "`python scripts/train_defaults.py --models detr_panoptic --steps 8000` from random weights" in card
    assert "in 10 minutes more, 1000 steps of 4 images" in card
    curve = json.loads((folder / train_defaults.LEARNING_CURVE).read_text())
    assert [entry["step"] for entry in curve["history"]] == [4000, 8000, 8500, 9000]
    assert "8000 + 1000 steps" in curve["title"]
    assert json.loads((folder / "eval_results.json").read_text()) == {"pq": 65.0}


def test_config_overrides_change_the_shapes_config_and_enter_the_card_command(tmp_path):
    overrides = {"d_model": 96, "backbone_config": {"hidden_sizes": [8, 16, 32, 64]}}
    config = train_defaults.configured("detr_panoptic", overrides)
    assert config.d_model == 96 and config.backbone_config.hidden_sizes == [8, 16, 32, 64]
    assert config.num_queries == train_defaults.shapes_detr_panoptic_config().num_queries  # the rest unchanged
    for wrong, where in (({"d_modl": 96}, "'d_modl'"), ({"backbone_config": {"widths": [8]}}, "backbone_config")):
        with pytest.raises(SystemExit, match=where):
            train_defaults.configured("detr_panoptic", wrong)

    words = train_defaults._training_words("detr_panoptic", 100, 60.0, 1.0, None,
                                           train_defaults.RECIPES["detr_panoptic"][2], None, {"d_model": 96})
    assert words.startswith("`python scripts/train_defaults.py --models detr_panoptic --steps 100 "
                            "--config_overrides '{\"d_model\": 96}'`")
    assert "with those overrides" in words
