"""Issue 22, item 1: each example trains from `--dataset_name`, a `datasets` folder in each layout (the package's
panoptic rows saved with save_to_disk, semantic maps, 3-channel instance annotations), built from the bundled
shapes data, and names the layout in its first line."""

from __future__ import annotations

import json

import datasets
import pytest

from tests.data.test_hf_datasets import write_layouts
from tests.examples.test_example_runs import EXAMPLES, _tiny
from tests.helpers import load_example as _example


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return write_layouts(tmp_path_factory.mktemp("layouts"))


@pytest.mark.parametrize("layout", ["panoptic", "semantic", "instance"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_trains_a_step_from_each_layout(layouts, name, layout, tmp_path, capsys):
    output = tmp_path / "run"
    _example(name).main(["--dataset_name", str(layouts[layout]), "--output_dir", str(output), "--max_steps", "1",
                         "--eval_strategy", "no", *_tiny(name)])
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(f"Dataset {layouts[layout]}: layout '{layout}'"), first_line
    assert ("stuff-only panoptic" in first_line) == (layout == "semantic")
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 1
    card = (output / "README.md").read_text()
    assert f"the `datasets` dataset `{layouts[layout]}`" in card


def test_evaluation_uses_the_validation_split_or_a_held_out_fraction(layouts, tmp_path):
    arguments = ["--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--eval_steps", "1",
                 *_tiny("finetune_lseg")]
    metrics = _example("finetune_lseg").main(["--dataset_name", str(layouts["semantic"]), *arguments])
    assert "eval_miou" in metrics
    datasets.load_from_disk(str(layouts["instance"]))["train"].save_to_disk(tmp_path / "train_only")
    metrics = _example("finetune_lseg").main(["--dataset_name", str(tmp_path / "train_only"), "--train_val_split",
                                              "0.5", *arguments])
    assert "eval_miou" in metrics
