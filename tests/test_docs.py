"""Every ```python and ```bash block of docs/*.md runs, in page order, from the repository root (python blocks share
one namespace per page; `python` in bash blocks is this interpreter); every picture the pages show exists and is
made by scripts/make_doc_pictures.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\((images/[^)]+)\)")

DRIVER = """
import subprocess, sys
blocks = {blocks!r}
namespace = {{"__name__": "__docs__"}}
for index, (language, code) in enumerate(blocks):
    if language == "python":
        exec(compile(code, f"{page}[block {{index}}]", "exec"), namespace)
    else:
        subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True)
print("ran", len(blocks), "blocks")
"""


def test_there_are_pages():
    assert {page.name for page in PAGES} >= {"getting_started.md", "seem.md", "lseg.md", "detr_panoptic.md",
                                              "training.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_code_blocks_run(page):
    blocks = [(language, code) for language, code in BLOCK.findall(page.read_text())
              if language in ("python", "bash")]
    assert blocks, f"{page.name} has no code to run"
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                       HF_HUB_DISABLE_PROGRESS_BARS="1")
    program = textwrap.dedent(DRIVER).format(blocks=blocks, page=page.name)
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{page.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert f"ran {len(blocks)} blocks" in result.stdout


def test_pictures_exist_and_the_script_makes_them(tmp_path):
    shown = {match for page in PAGES for match in IMAGE.findall(page.read_text())}
    assert shown, "the pages show no picture"
    missing = [path for path in shown if not (ROOT / "docs" / path).exists()]
    assert not missing, f"pictures missing from docs/: {missing}"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_doc_pictures.py"), "--output-dir",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_DISABLE_PROGRESS_BARS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    made = {f"images/{path.name}" for path in tmp_path.glob("*.png")}
    assert shown <= made, f"not made by the script: {shown - made}"
