"""The exact set of packages `./run` installs, and a look at the newest releases the project's ranges allow.

    python3.11 scripts/dependencies.py lock      # resolve pyproject's ranges afresh, write requirements/lock.txt
    python3.11 scripts/dependencies.py newest    # newest allowed releases in a throw-away venv, run the suite there

`./run` installs `requirements/lock.txt` exactly (every package, transitive ones included, `--no-deps`), so a fresh
machine gets the set the suite passed with, any day; `tests/test_lock.py` fails when the installed set differs.
`pyproject.toml` keeps the honest ranges for people who install seem_hf into their own environment. Both commands
build a venv with CPython 3.11 on Linux x86_64 (the CPU build of torch 2.13.0 that the lock names exists for it).
`newest` reports which packages moved past the lock and which tests fail with them; `lock` writes those versions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# Installed without its dependencies (torchvision and timm would replace the CPU torch): the tests compare the
# offline CLIP tokenizer with open_clip's, whose tokenizer module needs neither.
NO_DEPS = ["open-clip-torch==3.3.0"]
HEADER = """\
# Every package ./run installs, exact (CPython 3.11, Linux x86_64), installed with --no-deps.
# Regenerate: python3.11 scripts/dependencies.py lock   (see that script; tests/test_lock.py checks the venv)
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, command)), flush=True)
    return subprocess.run(command, check=True, text=True, **kwargs)


def build_newest(venv: Path) -> Path:
    """A venv with the newest releases that pyproject's ranges (and constraints.txt's torch pin) allow."""
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip", "setuptools", "wheel"])
    _run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", "torch"])
    _run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", "-e", f"{ROOT}[dev]"])
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", *NO_DEPS])
    return python


def freeze(python: Path) -> dict[str, str]:
    """name -> version of everything installed, seem_hf itself left out."""
    lines = _run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"], capture_output=True).stdout
    pins = dict(line.split("==", 1) for line in lines.splitlines() if "==" in line)
    return {name: version for name, version in pins.items() if name.lower().replace("_", "-") != "seem-hf"}


def read_lock(path: Path = LOCK) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==", 1) for line in lines if line)


def write_lock(pins: dict[str, str], path: Path = LOCK) -> None:
    body = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items(), key=lambda p: p[0].lower()))
    path.write_text(HEADER + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lock", "newest"])
    parser.add_argument("--keep", type=Path, help="build the venv here and keep it (default: a temporary folder)")
    parser.add_argument("pytest_args", nargs="*", help="for `newest`: extra pytest arguments")
    arguments = parser.parse_args()
    if sys.version_info[:2] != (3, 11):
        raise SystemExit(f"Run this with CPython 3.11 (the lock's Python), not {sys.version.split()[0]}.")
    with tempfile.TemporaryDirectory(prefix="seem_hf-deps-") as scratch:
        venv = arguments.keep or Path(scratch) / "venv"
        python = build_newest(venv)
        pins, locked = freeze(python), read_lock() if LOCK.exists() else {}
        moved = {name: (locked.get(name), version) for name, version in pins.items() if locked.get(name) != version}
        gone = sorted(set(locked) - set(pins))
        print("\nPackages that differ from requirements/lock.txt (locked -> newest allowed):")
        for name, (old, new) in sorted(moved.items()):
            print(f"  {name}: {old or '(new)'} -> {new}")
        for name in gone:
            print(f"  {name}: {locked[name]} -> (no longer needed)")
        if arguments.command == "lock":
            write_lock(pins)
            print(f"\nWrote {LOCK.relative_to(ROOT)} ({len(pins)} packages). Run ./run test before committing it.")
            return
        started = time.perf_counter()
        pytest = ["-m", "pytest", "-n", "2", "--dist", "loadfile", "-q", "-p", "no:cacheprovider", "-rf"]
        result = subprocess.run([python, *pytest, *arguments.pytest_args], cwd=ROOT, text=True)
        minutes = (time.perf_counter() - started) / 60
        verdict = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode}; the failures are above)"
        print(f"\nThe suite with the newest allowed releases {verdict} in {minutes:.1f} min.")
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
