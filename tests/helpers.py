"""Helpers shared by the tests: synthetic model outputs, a subprocess that cannot import seem_hf, the example
scripts as modules, a free port."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import torch

BLOCK_SEEM_HF = """
import sys, importlib.abc
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "seem_hf" or name.startswith("seem_hf."):
            raise ImportError("seem_hf is blocked in this process")
sys.meta_path.insert(0, _Block())
try:
    import seem_hf
    raise SystemExit("seem_hf was importable")
except ImportError:
    pass
"""


def run_without_seem_hf(code: str, cwd=None) -> str:
    """Run `code` in a fresh Python process where `import seem_hf` fails; return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_SEEM_HF + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def voronoi_outputs(
    batch: int = 1,
    num_queries: int = 30,
    num_labels: int = 20,
    height: int = 24,
    width: int = 32,
    num_segments: int = 8,
    seed: int = 0,
):
    """Realistic model outputs: `num_segments` confident queries own the cells of a Voronoi partition
    (mask logit about +8 inside, -8 outside); the other queries are unsure and have low masks."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, num_queries, num_labels + 1, generator=generator)
    masks = torch.randn(batch, num_queries, height, width, generator=generator) - 8
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for b in range(batch if num_segments else 0):
        confident = torch.randperm(num_queries, generator=generator)[:num_segments]
        labels = torch.randint(0, num_labels, (num_segments,), generator=generator)
        logits[b, confident, labels] = 10
        centres = torch.rand(num_segments, 2, generator=generator) * torch.tensor([height, width])
        distance = (rows[None] - centres[:, 0, None, None]) ** 2 + (cols[None] - centres[:, 1, None, None]) ** 2
        cell = distance.argmin(0)
        for index, query in enumerate(confident):
            inside = cell == index
            masks[b, query][inside] = 8 + torch.randn(int(inside.sum()), generator=generator)
    return SimpleNamespace(logits=logits, pred_masks=masks)


def load_example(name: str):
    """`examples/<name>.py` as a module (its `main` runs as the command line does, in this process)."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the script's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a launcher's rendez-vous or a server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
