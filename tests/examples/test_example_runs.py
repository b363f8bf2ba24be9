"""What every example does around training, driven as a user runs them: `--help` (the example's own options first,
the common TrainingArguments in one line each, `--help_all` for all), defaults that start from the installed
package, the end-of-run summary, the model card written after the last evaluation, and evaluation that gives the
same numbers in training and at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seem_hf
from seem_hf.testing import FIXTURES
from tests.helpers import load_example

EXAMPLES = {"finetune_seem": "seem", "finetune_lseg": "lseg", "finetune_detr_panoptic": "detr_panoptic"}



def _tiny(name: str) -> list[str]:
    return ["--model_name_or_path", str(FIXTURES / f"tiny-random-{EXAMPLES[name]}"), "--num_train", "2",
            "--num_val", "2", "--image_size", "64", "--per_device_train_batch_size", "2",
            "--per_device_eval_batch_size", "2", "--disable_tqdm", "true", "--save_strategy", "no"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_help_shows_the_example_s_options_first_and_stays_short(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal's width: count lines at a fixed one
    example = load_example(name)
    with pytest.raises(SystemExit):
        example.main(["--help"])
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 250  # was 650+
    # the example's own options, then the common TrainingArguments; rarely used ones only under --help_all
    assert text.index("--model_name_or_path") < text.index("--strategy") < text.index("--data_dir")
    assert text.index("--data_dir") < text.index("--learning_rate")
    assert "--max_steps" in text and "--adam_beta1" not in text and "--help_all" in text
    with pytest.raises(SystemExit):
        example.main(["--help_all"])
    assert "--adam_beta1" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_default_model_is_the_embedded_checkpoint_inside_the_installed_package(name):
    default = Path(load_example(name).ModelArguments().model_name_or_path)
    package = Path(seem_hf.__file__).resolve().parent
    assert package in default.resolve().parents and (default / "config.json").exists()
    assert "tests" not in default.relative_to(package).parts


def test_a_run_ends_by_saying_where_everything_went_and_its_card_carries_the_metrics(tmp_path, capsys):
    output = tmp_path / "run"
    arguments = ["--output_dir", str(output), "--max_steps", "2", "--eval_steps", "2", *_tiny("finetune_lseg")]
    metrics = load_example("finetune_lseg").main(arguments)
    printed = capsys.readouterr().out
    assert f"Done. Everything is in {output}/" in printed
    for shown in ("model.safetensors", "AutoModel.from_pretrained", "AutoProcessor.from_pretrained", "README.md",
                  "eval_results.json", "trainer_state.json", f"miou {metrics['eval_miou']:.4g}"):
        assert shown in printed, shown
    card = (output / "README.md").read_text()
    assert "Not evaluated." not in card and f"| miou | {metrics['eval_miou']:.4g} |" in card
    assert "examples/finetune_lseg.py --output_dir" in card and "2 training images" in card
    assert json.loads((output / "eval_results.json").read_text())["eval_miou"] == metrics["eval_miou"]


def test_a_run_without_evaluation_says_so(tmp_path, capsys):
    load_example("finetune_lseg").main(["--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--eval_strategy",
                                    "no", *_tiny("finetune_lseg")])
    printed = capsys.readouterr().out
    assert "metrics     none (evaluation is off: --eval_strategy no)" in printed
    assert "Not evaluated." in (tmp_path / "run" / "README.md").read_text()


def test_seem_evaluates_alike_in_training_and_at_the_end(tmp_path):
    """Issue 15, item 16: the in-training evaluation has the referring and interactive metrics too, and the same
    weights give the same numbers there and at the end (evaluation draws from the run's seed every time)."""
    output = tmp_path / "run"
    final = load_example("finetune_seem").main(["--output_dir", str(output), "--max_steps", "2", "--eval_steps", "2",
                                            "--eval_max_clicks", "2", *_tiny("finetune_seem")])
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    in_training = [entry for entry in history if "eval_loss" in entry][0]
    assert {"eval_referring_ciou", "eval_interactive_noc@85"} <= set(in_training)
    assert set(final) == set(in_training) - {"step"}
    for key, value in final.items():
        # The same computation on the same weights and inputs; 1e-9 only guards the float round trip of the logs.
        assert in_training[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
