"""seem_hf.training.processes: a process of a multi-process run leaves at once, with its output and exit status, and
runs no destructor (where gloo's teardown can deadlock); a one-process run leaves as usual."""

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import atexit
import torch
from seem_hf.training import exit_process

atexit.register(lambda: print("interpreter teardown ran", flush=True))
if torch.distributed.is_torchelastic_launched():
    torch.distributed.init_process_group("gloo")
    torch.distributed.barrier()
print("work done", end="")  # neither a newline nor a flush: exit_process must flush it
exit_process()
print(" - exit_process returned")
"""


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "script.py").write_text(SCRIPT)
    environment = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(command + [str(tmp_path / "script.py")], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)


def test_each_process_of_a_multi_process_run_leaves_at_once_with_its_output(tmp_path):
    result = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                   str(free_port())], tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("work done") == 2
    assert "exit_process returned" not in result.stdout
    assert "interpreter teardown ran" not in result.stdout


def test_a_one_process_run_leaves_as_usual(tmp_path):
    result = _run([sys.executable], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "work done - exit_process returned\ninterpreter teardown ran\n"
