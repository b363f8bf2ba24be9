"""Two machines without a shared file system (issue 21, item 4), simulated on localhost: `torchrun --nnodes 2`
with `--node_rank 0` and `--node_rank 1`, one process each, each started in its own folder with a relative
`--output_dir`. With no `--data_dir` each machine's first process must write the bundled dataset its machine reads;
when only global rank 0 wrote it, node 1 found no files and both exited 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seem_hf.testing import FIXTURES
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_two_nodes_without_a_shared_folder_train(tmp_path):
    port = free_port()
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                       TRANSFORMERS_VERBOSITY="error")
    nodes = []
    for node_rank in (0, 1):
        folder = tmp_path / f"machine{node_rank}"
        folder.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node_rank),
                   "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
                   str(ROOT / "examples" / "finetune_detr_panoptic.py"), "--output_dir", "run",
                   "--model_name_or_path", str(FIXTURES / "tiny-random-detr_panoptic"), "--num_train", "2",
                   "--num_val", "1", "--image_size", "64", "--per_device_train_batch_size", "1", "--max_steps", "1",
                   "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true"]
        nodes.append((folder, subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True)))
    outputs = []
    for folder, process in nodes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
        outputs.append(output)
        # each machine wrote the dataset it read, in its own folder
        assert (folder / "run" / "shapes" / "annotations" / "panoptic_train.json").exists()
    assert "Training on 2 process(es): global batch 2 = 1 per device x 2 process(es)" in outputs[0]
