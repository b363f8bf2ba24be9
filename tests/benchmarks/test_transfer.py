"""benchmarks/transfer.py in its `--tiny` mode, run as a user runs it (a separate process, tiny fixtures, 4 steps,
two SEEM rows), so that the transfer benchmark cannot rot between its full runs: every row reports its costs and
metrics, the adapter really sits on disk, the disabled adapter gives the starting model's first-domain metrics, and
the table, the JSON and the pictures are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_transfer_run_reports_every_row(tmp_path):
    results = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "transfer.py"), "--tiny", "--workdir", str(tmp_path / "work"),
         "--results", str(results)],
        cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    report = json.loads((tmp_path / "work" / "transfer.json").read_text())
    seem = report["models"]["seem"]
    rows = {row["strategy"]: row for row in seem["rows"]}
    assert set(rows) == {"freeze_backbone_adapt_head", "lora_r2"}
    for strategy, row in rows.items():
        folder = tmp_path / "work" / "seem" / f"{strategy}-seed0"
        assert row["weights_file"] == "adapter_model.safetensors"
        assert row["weights_mb"] == pytest.approx((folder / row["weights_file"]).stat().st_size / 1024**2)
        assert 0 < row["trainable"] < row["total"]
        assert row["seconds_per_step"] > 0 and row["peak_gb"] > 0.1
        assert sorted(row["terrain"], key=int) == ["1", "2", "3", "4"]  # N = 1: every step evaluated up to 4N
        assert "eval_referring_precision@0.5" in row["terrain"]["4"] and "eval_pq" in row["original"]["active"]
        # The adapter disabled is the starting model: the same first-domain loss, up to float32 summation order in
        # PEFT's wrapped layers (2e-6 seen).
        assert row["original"]["disabled"]["eval_loss"] == pytest.approx(seem["base"]["shapes"]["eval_loss"],
                                                                          rel=1e-5)
    # LoRA of rank 2 on the decoder trains far less than the head's bottlenecks
    assert rows["lora_r2"]["trainable"] < rows["freeze_backbone_adapt_head"]["trainable"] / 10
    text = results.read_text()
    assert "Command: `python benchmarks/transfer.py --tiny" in text
    assert "| lora_r2 |" in text and "| freeze_backbone_adapt_head |" in text
    for picture in ("cost_quality.png", "learning_curves.png", "learning_curve_lora_r2-seed0.png"):
        assert Image.open(tmp_path / "work" / "seem" / picture).size[0] > 100

    # --reuse reads the rows already run (their timings included: nothing ran again).
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "transfer.py"), "--tiny", "--workdir", str(tmp_path / "work"),
         "--reuse"], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    reused = json.loads((tmp_path / "work" / "transfer.json").read_text())["models"]["seem"]
    assert reused["rows"] == seem["rows"] and reused["base"] == seem["base"]
