"""The code on README.md and docs/*.md works as written, from the repository root:

- every ```python block runs on its own, in a fresh namespace (what a user pastes): its imports, its model and its
  image are in the block;
- every ```bash block runs, except one right below an HTML comment `<!-- not run: WHY -->` (a long training run, a
  released checkpoint the tests do not have); only the venv's programs run (`.venv/bin/python`, `accelerate`,
  `torchrun`, as `./run` makes them): any other command (`./run`, `pip`, a system `python3.11`) needs the comment,
  and no block assumes an activated environment (a bare `python`);
- every command on the pages, run or not (in bash blocks and in inline code such as `python -m seem_hf.demo`), names
  a script or module that exists and only options its `--help` lists, and `./run` only the commands it has; an
  option named alone in inline code (`--strategy`) is one of those commands' options;
- every `seem_hf.…` name in inline code imports, every repository path and relative link exists;
- every picture the pages show exists and scripts/make_doc_pictures.py makes it.

The blocks of a page run in page order (a bash block may read what a python block above it wrote). When the tests
run under another interpreter than `.venv/bin/python` (`SEEM_HF_VENV`), that interpreter's folder stands in for
`.venv/bin/` in the bash blocks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:^<!--\s*not run:(?P<why>.*?)-->\n)?^```(?P<language>\w*)[^\n]*\n(?P<code>.*?)^```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\((images/[^)]+)\)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)")
VENV_BIN = ".venv/bin/"
# The venv's programs: the only ones a docs block runs, and (bare) a sign that a block assumes an activated venv.
VENV_PROGRAMS = ("python", "accelerate", "torchrun")
PYTHON = re.compile(r"^python(?:3(?:\.\d+)?)?$")  # python, python3, python3.11: checked, never run bare
SEPARATORS = ("&&", "||", ";", "|")
PACKAGE_NAME = re.compile(r"^seem_hf(?:\.[A-Za-z_]\w*)+")
REPOSITORY_PATH = re.compile(r"^(?:examples|scripts|benchmarks|seem_hf|tests|docs|requirements)/[\w./{},*-]*$")


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    run: bool  # False below a `<!-- not run: WHY -->` comment


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(page.name, text[:match.start("code")].count("\n") + 1, match["language"], match["code"],
                  match["why"] is None) for match in FENCE.finditer(text)]


def prose_of(page: Path) -> str:
    """The page without its fenced blocks."""
    return FENCE.sub("", page.read_text())


def commands_of(code: str) -> list[list[str]]:
    """The commands of a shell block or inline span, as words: continuation lines joined, comments dropped."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = []
        for word in [*shlex.split(line, comments=True), ";"]:
            if word in SEPARATORS:
                if words:
                    commands.append(words)
                words = []
            else:
                words.append(word)
    return commands


def _program(word: str) -> str:
    return word[len(VENV_BIN):] if word.startswith(VENV_BIN) else word


@dataclass
class Target:
    """What a command runs and the options it gives: `kind` is module, script, torchrun or accelerate launch."""
    kind: str
    name: str
    options: list[str]


def is_checked(words: list[str]) -> bool:
    """Whether the docs test checks this command's targets (python, accelerate launch, torchrun, ./run)."""
    program = _program(words[0])
    return program in ("./run", "accelerate", "torchrun") or bool(PYTHON.match(program))


def targets_of(words: list[str], where: str) -> list[Target]:
    """A command's targets (the launcher, then the script), checked against their `--help`."""
    program, rest = _program(words[0]), words[1:]
    if program == "./run":
        return [Target("run", rest[0] if rest else "", [])]
    if program == "accelerate":
        assert rest[:1] == ["launch"], f"{where}: only `accelerate launch` is checked, got {words}"
        program, rest = "accelerate launch", rest[1:]
    if program in ("accelerate launch", "torchrun"):
        scripts = [index for index, word in enumerate(rest) if word.endswith(".py")]
        assert scripts, f"{where}: {program} without a script: {words}"
        launcher = Target(program, program, _options(rest[:scripts[0]]))
        return [launcher, Target("script", rest[scripts[0]], _options(rest[scripts[0] + 1:]))]
    assert PYTHON.match(program), f"{where}: a command the docs test does not check: {words}"
    if rest[:1] == ["-m"]:
        return [Target("module", rest[1], _options(rest[2:]))]
    return [Target("script", rest[0], _options(rest[1:]))]


def _options(words: list[str]) -> list[str]:
    return [word.strip("[]").split("=")[0] for word in words if word.strip("[]").startswith("--")]


def all_commands() -> list[tuple[str, list[str]]]:
    """(where, words) for every command on the pages: in bash blocks, in text blocks, in inline code."""
    found = []
    for page in PAGES:
        for block in blocks_of(page):
            if block.language in ("bash", "text", "console", "sh", "shell"):
                for words in commands_of(block.code):
                    if is_checked(words):
                        found.append((f"{page.name} line {block.line} ({block.language})", words))
        for match in INLINE.finditer(prose_of(page)):
            try:
                words = commands_of(match[1].replace("\n", " "))
            except ValueError:  # not shell words (an unbalanced quote)
                continue
            if words and len(words[0]) > 1 and is_checked(words[0]):
                found.append((f"{page.name} inline `{match[1]}`", words[0]))
    return found


HELP_DRIVER = """
import contextlib, io, json, runpy, sys
texts = {}
for kind, name in json.loads(sys.argv[1]):
    output = io.StringIO()
    arguments = {"torchrun": ["torchrun", "--help"], "accelerate launch": ["accelerate", "launch", "--help"],
                 "pip": ["pip", name, "--help"]}
    sys.argv = arguments.get(kind, [name, "--help"])
    code = None
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            if kind == "module":
                runpy.run_module(name, run_name="__main__", alter_sys=True)
            elif kind == "script":
                runpy.run_path(name, run_name="__main__")
            elif kind == "pip":
                runpy.run_module("pip", run_name="__main__", alter_sys=True)
            elif kind == "torchrun":
                runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
            else:
                from accelerate.commands.accelerate_cli import main
                main()
    except SystemExit as exit:
        code = exit.code
    except BaseException as error:
        code = repr(error)
    texts[kind + " " + name] = [code, output.getvalue()]
print("HELP" + json.dumps(texts))
"""


def _environment() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                HF_HUB_DISABLE_PROGRESS_BARS="1", COLUMNS="200")


def test_there_are_pages():
    assert {page.name for page in PAGES} >= {"README.md", "getting_started.md", "seem.md", "lseg.md",
                                              "detr_panoptic.md", "training.md"}


def test_block_parser_sees_markers_and_commands(tmp_path):
    """The parser the other tests rely on: languages, the `not run` marker, continuation lines, comments."""
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nprint(1)\n```\n\n<!-- not run: slow -->\n```bash\n.venv/bin/python x.py \\\n"
                    "    --a 1  # why\n./run demo\n```\n\n```bash\necho hi\n```\n")
    blocks = blocks_of(page)
    assert [(b.language, b.run, b.line) for b in blocks] == [("python", True, 4), ("bash", False, 9),
                                                              ("bash", True, 15)]
    assert commands_of(blocks[1].code) == [[".venv/bin/python", "x.py", "--a", "1"], ["./run", "demo"]]
    assert [(t.kind, t.name, t.options) for t in targets_of(
        [".venv/bin/accelerate", "launch", "--config_file", "c.yaml", "e.py", "--max_steps", "2", "..."], "here")] == [
        ("accelerate launch", "accelerate launch", ["--config_file"]), ("script", "e.py", ["--max_steps"])]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_code_blocks_run(page):
    blocks = [block for block in blocks_of(page) if block.language in ("python", "bash")]
    assert blocks, f"{page.name} has no code to run"
    for block in blocks:
        for words in commands_of(block.code) if block.language == "bash" else []:
            where, command = f"{page.name} line {block.line}", " ".join(words)
            assert words[0] not in VENV_PROGRAMS, (
                f"{where}: `{command}` assumes an activated environment; write {VENV_BIN}{words[0]}")
            assert not block.run or _program(words[0]) in VENV_PROGRAMS and words[0].startswith(VENV_BIN), (
                f"{where}: the docs test runs only the venv's programs ({VENV_BIN}python, accelerate, torchrun), not "
                f"`{command}`; put `<!-- not run: WHY -->` above the block if it should not run")
    bin_dir = Path(sys.executable).parent
    run = [(block.language, block.code if block.language == "python" or bin_dir == ROOT / ".venv" / "bin"
            else block.code.replace(VENV_BIN, f"{bin_dir}/"), f"{page.name} line {block.line}")
           for block in blocks if block.run]
    driver = textwrap.dedent("""
        import subprocess, sys
        for language, code, where in {run!r}:
            print("running", where, flush=True)
            if language == "python":
                exec(compile(code, where, "exec"), {{"__name__": "__main__"}})  # a fresh namespace per block
            else:
                subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True)
        print("ran", len({run!r}), "blocks")
    """).format(run=run)
    result = subprocess.run([sys.executable, "-c", driver], cwd=ROOT, env=_environment(), capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{page.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert f"ran {len(run)} blocks" in result.stdout


def test_commands_name_scripts_modules_and_options_that_exist():
    """Run or not, every command on the pages names what exists: the script or module (its `--help` works) and
    each option (its `--help` lists it), and `./run` only its own commands."""
    commands = all_commands()
    assert len(commands) >= 10, commands
    run_commands = set(re.findall(r"^\s+(\w+)\)", (ROOT / "run").read_text(), re.MULTILINE))
    targets = []
    for where, words in commands:
        for target in targets_of(words, where):
            if target.kind == "run":
                assert target.name in run_commands, f"{where}: ./run has no command {target.name!r} ({run_commands})"
            else:
                if target.kind == "script":
                    assert (ROOT / target.name).is_file(), f"{where}: no script {target.name}"
                targets.append((where, target))
        for word in words:
            if REPOSITORY_PATH.match(word):
                assert (ROOT / word).exists(), f"{where}: {word} does not exist"
    wanted = sorted({(target.kind, target.name) for _, target in targets})
    # pip's options, for the pages that show pip commands and name their options in prose
    wanted += sorted({("pip", words[1]) for page in PAGES for block in blocks_of(page) if block.language == "bash"
                      for words in commands_of(block.code) if words[0] == "pip" and len(words) > 1})
    result = subprocess.run([sys.executable, "-c", HELP_DRIVER, json.dumps(wanted)], cwd=ROOT, env=_environment(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    texts = json.loads(result.stdout.split("HELP", 1)[1])
    problems = []
    every_option, inline_options = "\n".join(text for _, text in texts.values()), 0
    for page in PAGES:
        for match in INLINE.finditer(prose_of(page)):
            for option in _options(match[1].split()) if match[1].startswith("--") else []:
                inline_options += 1
                if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", every_option):
                    problems.append(f"{page.name}: `{match[1]}` names {option}, an option of none of the pages' commands")
    for where, target in targets:
        code, text = texts[f"{target.kind} {target.name}"]
        if code not in (0, None) or "usage" not in text.lower():
            problems.append(f"{where}: `{target.name} --help` failed ({code}): {text[-500:]}")
            continue
        for option in target.options:
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                problems.append(f"{where}: {target.name} has no option {option}")
    assert inline_options >= 5, "the pages name fewer options in prose than expected: is INLINE still right?"
    assert not problems, "\n".join(problems)


def _expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^}]*)\}", path)
    if not match:
        return [path]
    return [expanded for part in match[1].split(",")
            for expanded in _expand_braces(path[:match.start()] + part + path[match.end():])]


def test_names_paths_and_links_exist():
    """Inline `seem_hf.x.y` names import, inline repository paths and relative links exist."""
    names, problems = set(), []
    for page in PAGES:
        base = page.parent
        prose = prose_of(page)
        for match in INLINE.finditer(prose):
            span = match[1].strip()
            name = PACKAGE_NAME.match(span)
            if name:
                names.add((page.name, name[0]))
            elif REPOSITORY_PATH.match(span):
                for path in _expand_braces(span.rstrip(".,")):
                    if "*" not in path and not (ROOT / path).exists():
                        problems.append(f"{page.name}: `{span}` names {path}, which does not exist")
        for target in LINK.findall(prose):
            if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
                if not (base / target.split("#")[0]).exists():
                    problems.append(f"{page.name}: the link {target} leads nowhere")
    program = textwrap.dedent("""
        import importlib, json, sys
        missing = []
        for page, name in json.loads(sys.argv[1]):
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                try:
                    value = importlib.import_module(".".join(parts[:end]))
                    break
                except ModuleNotFoundError:
                    continue
            try:
                for part in parts[end:]:
                    value = getattr(value, part)
            except AttributeError:
                missing.append(f"{page}: `{name}` does not exist")
        print(json.dumps(missing))
    """)
    result = subprocess.run([sys.executable, "-c", program, json.dumps(sorted(names))], cwd=ROOT,
                            env=_environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    problems += json.loads(result.stdout.splitlines()[-1])
    assert len(names) >= 5, names
    assert not problems, "\n".join(problems)


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
