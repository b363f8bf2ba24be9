"""Each example trains under `--bf16` (issue 21, item 3): on CPU, Trainer runs the forward under bfloat16 autocast;
the loss must be finite and the weights the optimiser updates stay float32 (mixed precision keeps float32 master
weights; only the autocast region computes in bfloat16). SEEM crashed there (`index_add_` of float32 features into
a bfloat16 buffer in `prompt_embeddings`, reached from the simulated clicks)."""

from __future__ import annotations

import math

import pytest
import torch

from seem_hf.testing import FIXTURES
from seem_hf.training import SegmentationTrainer
from tests.helpers import load_example

EXAMPLES = {"finetune_seem": "seem", "finetune_lseg": "lseg", "finetune_detr_panoptic": "detr_panoptic"}



@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_one_bf16_step_of_eachload_example(name, tmp_path, monkeypatch):
    seen = []
    compute_loss = SegmentationTrainer.compute_loss

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        # accelerate wraps the model's forward in autocast: layers inside it show what precision computed.
        layer_dtypes = set()
        hooks = [module.register_forward_hook(lambda module, args, output: layer_dtypes.add(output.dtype))
                 for module in model.modules() if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))]
        try:
            result = compute_loss(self, model, inputs, *args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        loss = result[0] if isinstance(result, tuple) else result
        parameters = [p for p in model.parameters() if p.requires_grad]
        seen.append((float(loss.detach()), torch.bfloat16 in layer_dtypes, {p.dtype for p in parameters}))
        return result

    monkeypatch.setattr(SegmentationTrainer, "compute_loss", recording_compute_loss)
    arguments = ["--model_name_or_path", str(FIXTURES / f"tiny-random-{EXAMPLES[name]}"), "--num_train", "2",
                 "--num_val", "1", "--image_size", "64", "--per_device_train_batch_size", "2",
                 "--per_device_eval_batch_size", "1", "--disable_tqdm", "true", "--save_strategy", "no",
                 "--max_steps", "1", "--eval_strategy", "no", "--bf16", "true", "--use_cpu", "true",
                 "--output_dir", str(tmp_path / "run")]
    if name == "finetune_seem":
        arguments += ["--max_click_rounds", "1"]  # the clicks path that crashed under bf16
    load_example(name).main(arguments)
    # autocast ends with training: SEEM's click simulation re-entered accelerate's autocast wrapper, which left it on
    # (everything after the run, its evaluation included, then computed in bfloat16)
    assert not torch.is_autocast_enabled("cpu")
    training = [entry for entry in seen if entry[1]]
    assert training, "no training step computed in bfloat16"
    for loss, _, dtypes in training:
        assert math.isfinite(loss)
        assert dtypes == {torch.float32}
