"""The venv that `./run` builds holds exactly requirements/lock.txt: a package added, removed or moved to another
version (by hand, or by a `pip install` that resolved afresh) fails here, naming it and the fix."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def _name(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _locked() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in LOCK.read_text().splitlines()]
    return {_name(name): version for name, version in (line.split("==", 1) for line in lines if line)}


def test_lock_is_exact_and_complete():
    pins = _locked()
    assert pins and "torch" in pins and "transformers" in pins and "pip" in pins
    assert "seem-hf" not in pins


@pytest.mark.skipif(not os.environ.get("SEEM_HF_LOCK"), reason="not in the venv ./run builds from the lock")
def test_installed_packages_are_the_lock():
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions() if _name(d.metadata["Name"]) != "seem-hf"}
    locked = _locked()
    problems = [f"{name}: locked {locked.get(name, '(absent)')}, installed {installed.get(name, '(absent)')}"
                for name in sorted(set(locked) | set(installed)) if locked.get(name) != installed.get(name)]
    assert not problems, (
        "The venv differs from requirements/lock.txt:\n  " + "\n  ".join(problems)
        + "\nRemove .venv and run ./run again, or regenerate the lock (python3.11 scripts/dependencies.py lock)."
    )
    # Every requirement of every locked package is met, but open_clip's torchvision and timm, which it is installed
    # without on purpose (they would replace the CPU torch; the tests use only its tokenizer).
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    unmet = [line for line in check.stdout.splitlines() if line and not line.startswith("open-clip-torch")]
    assert not unmet, "\n".join(unmet)
