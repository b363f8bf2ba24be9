"""What each fine-tuning strategy buys: transfer from the first shapes domain to the second (`terrain`: other
shapes, stuff, colours and sentences; `seem_hf.data.SHAPES_DOMAINS`), from the embedded defaults, through the example
scripts.

    python benchmarks/transfer.py --models seem lseg detr_panoptic --steps 250 --seeds 0 1 2 \
        --results benchmarks/RESULTS.md
    python benchmarks/transfer.py --models seem --strategies freeze_backbone_adapt_head --processes 2 \
        --steps 250 --seeds 0 1 2 --results benchmarks/RESULTS.md   # one row on 2 processes (torchrun): same metrics?
    python benchmarks/transfer.py --models seem --seeds 0 1 2 --reuse   # seeds 1 and 2 added to a seed-0 run
    python benchmarks/transfer.py --tiny          # tiny fixtures, N = 1, two SEEM rows: a half-minute smoke run

Every row fine-tunes one model with one strategy on the terrain stream (`--stream --domain terrain`: the same data
order for every row of a seed) for 4 x `--steps` steps, evaluating the terrain held-out set every `--steps` steps,
then evaluates the first domain's held-out set with the row's adapter active and (PEFT rows) disabled: what was
forgotten. Rows per model: the strategies of `seem_hf.adapters` (`full` and the four), and for SEEM also LoRA on the
decoder's self-attention output projection and MLP at two ranks (`--lora-ranks`; the cross-attention is
`nn.MultiheadAttention`, whose fused projections LoRA cannot wrap), with the decoder's norms trained.

Each row runs in its own process (`python benchmarks/transfer.py --row ...`), so that its peak memory is its own:
the example's `main` with `--strategy`, and for the LoRA rows the example's `prepare_for_fine_tuning` replaced by
`lora_by_pattern`. Reported per row: trainable parameters, the saved weights' size on disk (the adapter for PEFT rows,
the whole model otherwise), seconds per training step (training time less the evaluations), peak resident memory
(peak CUDA memory on a GPU), terrain metrics after N and 4N steps, first-domain metrics afterwards. DETR-panoptic's
classifier has one row per label, so it starts from a copy of its default whose labels are renamed to the terrain
classes (the rows keep their weights: the model knows the task, not the classes).

With several seeds each cell is mean ± standard deviation, and a line per model says which rows trail the best
one by more than the two rows' standard deviations together. `--processes 2` runs rows under torchrun with the
same global batch (the per-device batch halved); peak memory is then the first process's.

Writes `<workdir>/transfer.json` (every row and seed), a markdown table with the command (appended to `--results`),
learning curves per row (`learning_curve_plot.py`) and a cost/quality scatter per model, as PNGs in `<workdir>`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import record_table  # noqa: E402
from learning_curve_plot import COLORS, plot

from seem_hf.training import exit_process  # noqa: E402

STRATEGIES = ("full", "freeze_backbone_tune_head", "freeze_backbone_adapt_head", "adapt_backbone_tune_head",
              "adapt_backbone_adapt_head")
SEEM_LORA_PATTERN = (r"decoder\.transformer_(self_attention_layers\.\d+\.self_attn\.out_proj"
                     r"|ffn_layers\.\d+\.linear[12])")
MODEL_CLASSES = {"seem": "SeemForUniversalSegmentation", "lseg": "LSegForSemanticSegmentation",
                 "detr_panoptic": "DetrPanopticForSegmentation"}
ROW_COLORS = (*COLORS, (255, 127, 14), (140, 86, 75), (227, 119, 194), (127, 127, 127))  # up to 8 rows per model
HEADLINE = {"seem": "eval_pq", "detr_panoptic": "eval_pq", "lseg": "eval_miou"}
NEW_DOMAIN_KEYS = ("eval_pq", "eval_pq_things", "eval_pq_stuff", "eval_miou", "eval_referring_precision@0.5",
                   "eval_interactive_miou@1")
ORIGINAL_KEYS = ("eval_pq", "eval_miou")
HEADERS = {"eval_pq": "PQ", "eval_pq_things": "PQ th", "eval_pq_stuff": "PQ st", "eval_miou": "mIoU",
           "eval_referring_precision@0.5": "ref P@0.5", "eval_interactive_miou@1": "1-click IoU"}


def rows_of(model: str, lora_ranks: list[int]) -> list[str]:
    return list(STRATEGIES) + ([f"lora_r{rank}" for rank in lora_ranks] if model == "seem" else [])


def _example(model: str):
    path = ROOT / "examples" / f"finetune_{model}.py"
    spec = importlib.util.spec_from_file_location(f"finetune_{model}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _peak_memory_gb() -> float:
    import torch
    from common import peak_resident_gb

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1024**3
    return peak_resident_gb()


def start_folder(model: str, tiny: bool, workdir: Path) -> Path:
    """The model the rows start from: the embedded default (`--tiny`: the test fixture); for DETR-panoptic a copy
    with the terrain label names on its classifier rows."""
    from seem_hf.testing import FIXTURES
    from seem_hf.training.arguments import EMBEDDED_CHECKPOINTS

    source = FIXTURES / f"tiny-random-{model}" if tiny else EMBEDDED_CHECKPOINTS / f"{model}-shapes"
    if model != "detr_panoptic":
        return source
    from transformers import AutoProcessor

    from seem_hf import DetrPanopticForSegmentation
    from seem_hf.data import TERRAIN_VOCABULARY

    target = workdir / "start" / model
    if not (target / "config.json").exists():
        detr = DetrPanopticForSegmentation.from_pretrained(source)
        detr.config.id2label = dict(TERRAIN_VOCABULARY.id2label)
        detr.config.label2id = {name: index for index, name in TERRAIN_VOCABULARY.id2label.items()}
        detr.save_pretrained(target)
        AutoProcessor.from_pretrained(source).save_pretrained(target)
    return target


def _common_arguments(options) -> list[str]:
    return ["--stream", "--image_size", str(options.image_size), "--num_val", str(options.num_val),
            "--per_device_train_batch_size", str(options.batch_size), "--per_device_eval_batch_size",
            str(options.batch_size), "--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no",
            "--logging_steps", str(options.steps)] + (["--eval_max_clicks", "1"] if options.model == "seem" else [])


def _time_steps(example) -> list[float]:
    """Make the example's Trainer time each training step (forward, backward, optimiser; not the evaluations that
    follow some steps); returns the list it fills."""
    import time

    from transformers import TrainerCallback

    durations: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            durations.append(time.perf_counter() - self.started)

    class TimedTrainer(example.SegmentationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(StepTimer())

    example.SegmentationTrainer = TimedTrainer
    return durations


def run_row(options) -> dict:
    """One row in this process: train on terrain, evaluate terrain every N steps, then the first domain."""
    import torch
    from transformers import set_seed

    from seem_hf.adapters import count_parameters, load_adapter, lora_by_pattern
    from seem_hf.data import SHAPES_VOCABULARY

    model_name, strategy, out = options.model, options.strategy, Path(options.output)
    base = Path(options.start)
    example = _example(model_name)
    counts = {}
    original_prepare = example.prepare_for_fine_tuning

    def prepare(model, chosen, **kwargs):
        if strategy.startswith("lora_r"):
            prepared = lora_by_pattern(model, SEEM_LORA_PATTERN, rank=int(strategy.removeprefix("lora_r")),
                                       trainable_norms=r"decoder\..*")
        else:
            prepared = original_prepare(model, chosen, **kwargs)
        counts.update(count_parameters(prepared))
        return prepared

    example.prepare_for_fine_tuning = prepare
    step_seconds = _time_steps(example)
    common = _common_arguments(options)
    chosen = "full" if strategy.startswith("lora_r") else strategy
    example.main(["--model_name_or_path", str(base), "--output_dir", str(out), "--domain", "terrain", "--strategy",
                  chosen, "--max_steps", str(4 * options.steps), "--eval_steps", str(options.steps), "--seed",
                  str(options.seed), *common])
    peak = _peak_memory_gb()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    evaluations = {str(entry["step"]): {k: v for k, v in entry.items() if k.startswith("eval_")}
                   for entry in history if "eval_loss" in entry}
    timed = step_seconds[1:] or step_seconds  # the first step pays for warming up
    adapter = out / "adapter_model.safetensors"
    weights = adapter if adapter.exists() else out / "model.safetensors"

    # The first domain afterwards, through the same example (its model class answers with the trained model).
    model_class = getattr(example, MODEL_CLASSES[model_name])
    trained = (load_adapter(model_class.from_pretrained(base), out) if adapter.exists()
               else model_class.from_pretrained(out)).eval()
    _answer_with(example, model_name, trained, SHAPES_VOCABULARY)

    def evaluate_original(folder: str) -> dict:
        set_seed(options.seed)
        return example.main(["--model_name_or_path", str(base), "--output_dir", str(out / folder), "--domain",
                             "shapes", "--evaluate_only", "true", *common])

    original = {"active": evaluate_original("original_active")}
    if adapter.exists():
        with trained.disable_adapter():
            original["disabled"] = evaluate_original("original_disabled")
    return {
        "model": model_name, "strategy": strategy, "seed": options.seed, "steps": options.steps,
        "trainable": counts.get("trainable"), "total": counts.get("total"),
        "weights_file": weights.name, "weights_mb": weights.stat().st_size / 1024**2,
        "seconds_per_step": statistics.median(timed), "peak_gb": peak,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "terrain": evaluations, "original": original,
    }


def _answer_with(example, model_name: str, model, vocabulary) -> None:
    """Make the example evaluate `model` (already built) under `vocabulary`'s label names: its model class answers
    `from_pretrained` with it, and its strategy step leaves it as it is."""
    model.config.id2label = dict(vocabulary.id2label)
    model.config.label2id = {name: index for index, name in vocabulary.id2label.items()}
    setattr(example, MODEL_CLASSES[model_name], types.SimpleNamespace(from_pretrained=lambda *args, **kwargs: model))
    example.prepare_for_fine_tuning = lambda model, *args, **kwargs: model


def run_base(options) -> dict:
    """The starting model on both held-out sets (step 0 of every row)."""
    from seem_hf.data import SHAPES_DOMAINS

    example = _example(options.model)
    start = getattr(example, MODEL_CLASSES[options.model]).from_pretrained(options.start).eval()
    common = _common_arguments(options)
    results = {}
    for domain in ("terrain", "shapes"):
        _answer_with(example, options.model, start, SHAPES_DOMAINS[domain].vocabulary)
        results[domain] = example.main(["--model_name_or_path", options.start, "--output_dir",
                                        str(Path(options.output) / domain), "--domain", domain, "--evaluate_only",
                                        "true", *common])
    return {"model": options.model, "strategy": "base", **results}


def _child(arguments: list[str], environment: dict, output: Path, processes: int = 1, reuse: bool = False) -> dict:
    """Run one row (or the start's evaluation) in its own process(es) and read the result it wrote. With `reuse`, a
    row already in `output` from the same arguments is read instead of run again (seeds added to a table, a stopped
    benchmark continued)."""
    done, asked = output / "row.json", output / "arguments.json"
    called = {"arguments": arguments, "processes": processes}
    if reuse and done.exists() and asked.exists() and json.loads(asked.read_text()) == called:
        return json.loads(done.read_text())
    done.unlink(missing_ok=True)
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", "29561"]
    result = subprocess.run([*launcher, str(Path(__file__).resolve()), *arguments, "--output", str(output)], cwd=ROOT,
                            env=environment, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"transfer.py {' '.join(arguments)} failed:\n{result.stdout[-3000:]}{result.stderr[-5000:]}")
    asked.write_text(json.dumps(called))
    return json.loads(done.read_text())


def _label(row: dict) -> str:
    processes = row.get("processes", 1)
    return row["strategy"] if processes == 1 else f"{row['strategy']} ({processes} processes)"


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [value * scale for value in values if value is not None]
    if not values:
        return "-"
    mean, spread = _spread(values)
    return f"{mean:.{digits}f}" + (f" ± {spread:.{digits}f}" if len(values) > 1 else "")


def table(model: str, rows: list[dict], base: dict, steps: int) -> list[str]:
    """The markdown table of one model: mean ± standard deviation over seeds."""
    keys = [key for key in NEW_DOMAIN_KEYS if key in base["terrain"]]
    headline = HEADLINE[model]
    lines = [
        f"| {model} strategy | trainable params | weights on disk | s/step | peak GB | terrain {HEADERS[headline]} "
        f"@{steps} | " + " | ".join(f"terrain {HEADERS[key]} @{4 * steps}" for key in keys)
        + " | shapes " + " / ".join(HEADERS[key] for key in ORIGINAL_KEYS if key in base["shapes"])
        + " active | same, adapter disabled |",
        "|---" * (8 + len(keys)) + "|",
    ]
    original_keys = [key for key in ORIGINAL_KEYS if key in base["shapes"]]
    digits = {key: 3 if key in ("eval_referring_precision@0.5", "eval_interactive_miou@1") else 1 for key in keys}
    lines.append(f"| start (no training) | - | - | - | - | {base['terrain'][headline]:.1f} | "
                 + " | ".join(_cell([base["terrain"][key]], digits=digits[key]) for key in keys) + " | "
                 + " / ".join(f"{base['shapes'][key]:.1f}" for key in original_keys) + " | - |")
    by_strategy: dict[str, list[dict]] = {}
    for row in rows:
        by_strategy.setdefault(_label(row), []).append(row)
    for strategy, runs in by_strategy.items():
        def at(step, key, runs=runs):
            return [run["terrain"].get(str(step), {}).get(key) for run in runs]

        original = " / ".join(_cell([run["original"]["active"].get(key) for run in runs]) for key in original_keys)
        disabled = (" / ".join(_cell([run["original"]["disabled"].get(key) for run in runs]) for key in original_keys)
                    if "disabled" in runs[0]["original"] else "no adapter")
        lines.append(
            f"| {strategy} | {runs[0]['trainable'] / 1e6:.3f} M | {runs[0]['weights_mb']:.2f} MB "
            f"({runs[0]['weights_file']}) | {_cell([run['seconds_per_step'] for run in runs], digits=3)} | "
            f"{_cell([run['peak_gb'] for run in runs], digits=2)} | {_cell(at(steps, headline))} | "
            + " | ".join(_cell(at(4 * steps, key), digits=digits[key]) for key in keys)
            + f" | {original} | {disabled} |"
        )
    return lines + ["", beyond_seed_spread(model, by_strategy, steps)]


def beyond_seed_spread(model: str, by_strategy: dict[str, list[dict]], steps: int) -> str:
    """Which rows differ from the best one (terrain headline after 4N steps) by more than their seed spread: the
    difference of the means against the sum of the two standard deviations."""
    headline = HEADLINE[model]
    values = {label: [run["terrain"].get(str(4 * steps), {}).get(headline) for run in runs]
              for label, runs in by_strategy.items()}
    values = {label: [v for v in found if v is not None] for label, found in values.items()}
    values = {label: found for label, found in values.items() if found}
    if not values or min(len(found) for found in values.values()) < 2:
        return f"{model}: one seed per row, so no difference can be told from seed noise (run with --seeds)."
    spread = {label: _spread(found) for label, found in values.items()}
    best = max(spread, key=lambda label: spread[label][0])
    behind = [label for label in spread if label != best
              and spread[best][0] - spread[label][0] > spread[best][1] + spread[label][1]]
    within = [label for label in spread if label != best and label not in behind]
    beyond = [f"{label} ({spread[label][0] - spread[best][0]:+.1f})" for label in behind]
    return (f"{model}: best terrain {HEADERS[headline]} after {4 * steps} steps: {best} ({spread[best][0]:.1f}); "
            f"behind it by more than the seed spread: {', '.join(beyond) or 'none'}; within it: "
            f"{', '.join(within) or 'none'}.")


def scatter(model: str, rows: list[dict], steps: int, output: Path) -> Path:
    """Cost/quality: trainable parameters (log scale) against the terrain headline metric after 4N steps."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    headline = HEADLINE[model]
    points: dict[str, tuple[float, float]] = {}
    for strategy in dict.fromkeys(_label(row) for row in rows):
        runs = [row for row in rows if _label(row) == strategy]
        values = [run["terrain"].get(str(4 * steps), {}).get(headline) for run in runs]
        points[strategy] = (max(runs[0]["trainable"], 1), statistics.mean(v for v in values if v is not None))
    width, height, left, right, upper, lower = 640, 360, 60, 620, 40, 320
    image = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((10, 6), f"{model}: terrain {HEADERS[headline]} after {4 * steps} steps vs trainable parameters",
              fill="black", font=font)
    draw.rectangle((left, upper, right, lower), outline="black")
    low = math.floor(math.log10(min(count for count, _ in points.values())))
    high = math.ceil(math.log10(max(count for count, _ in points.values()))) + (0 if len(points) > 1 else 1)
    high = max(high, low + 1)
    for power in range(low, high + 1):
        x = left + (right - left) * (power - low) / (high - low)
        draw.text((x - 10, lower + 4), f"1e{power}", fill="black", font=font)
    for tick in range(6):
        y = lower - (lower - upper) * tick / 5
        draw.text((left - 30, y - 6), f"{20 * tick}", fill="black", font=font)
    for number, (strategy, (count, value)) in enumerate(points.items()):
        x = left + (right - left) * (math.log10(count) - low) / (high - low)
        y = lower - (lower - upper) * min(max(value, 0.0), 100.0) / 100.0
        color = ROW_COLORS[number % len(ROW_COLORS)]
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=color)
        draw.text((x + 6, y - 6), f"{strategy} {value:.1f}", fill=color, font=font)
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    return output


def strategy_curves(model: str, rows: list[dict], base: dict, steps: int, output: Path) -> Path:
    """The terrain headline metric against the step, one line per row (mean over seeds) from the start's value at
    step 0: the learning curves of every strategy in one picture (each run's own curves of every metric:
    `learning_curve_<row>-seed<seed>.png`)."""
    from PIL import Image, ImageDraw, ImageFont

    headline = HEADLINE[model]
    width, height, left, right, upper, lower = 640, 360, 60, 620, 40, 320
    image = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((10, 6), f"{model}: terrain held-out {HEADERS[headline]} vs training step", fill="black", font=font)
    draw.rectangle((left, upper, right, lower), outline="black")
    last = 4 * steps
    for tick in range(6):
        y = lower - (lower - upper) * tick / 5
        draw.text((left - 30, y - 6), f"{20 * tick}", fill="black", font=font)
    for tick in range(5):
        draw.text((left + (right - left) * tick / 4 - 10, lower + 4), f"{last * tick / 4:.0f}", fill="black", font=font)
    for number, label in enumerate(dict.fromkeys(_label(row) for row in rows)):
        runs = [row for row in rows if _label(row) == label]
        points = [(left, lower - (lower - upper) * min(max(base["terrain"][headline], 0.0), 100.0) / 100.0)]
        for step in sorted({int(step) for run in runs for step in run["terrain"]}):
            values = [run["terrain"].get(str(step), {}).get(headline) for run in runs]
            values = [value for value in values if value is not None]
            if values:
                points.append((left + (right - left) * step / last,
                               lower - (lower - upper) * min(max(statistics.mean(values), 0.0), 100.0) / 100.0))
        color = ROW_COLORS[number % len(ROW_COLORS)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=color)
        draw.text((left + 8, upper + 6 + 13 * number), label, fill=color, font=font)
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODEL_CLASSES), help="default: all three (--tiny: seem)")
    parser.add_argument("--strategies", nargs="+", help="rows to run (default: every row of each model)")
    parser.add_argument("--steps", type=int, default=250, help="N: terrain metrics after N and 4N steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lora-ranks", type=int, nargs=2, default=[4, 16])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "transfer")
    parser.add_argument("--results", type=Path, help="markdown file the table is appended to")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes per row (torchrun, CPU or one GPU each); the per-device batch is "
                             "--batch-size / processes, so the global batch and data order stay those of one process")
    parser.add_argument("--reuse", action="store_true",
                        help="read rows already run in --workdir with the same arguments instead of running them again")
    parser.add_argument("--tiny", action="store_true", help="smoke run: tiny fixtures, N=1, 64 px, two SEEM rows")
    # one row or the start, in this process (what the parent runs per row)
    parser.add_argument("--row", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-folder", dest="start", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.row or options.base:
        result = run_row(options) if options.row else run_base(options)
        if os.environ.get("RANK", "0") == "0":  # with several processes, the first one writes
            result["processes"] = int(os.environ.get("WORLD_SIZE", "1"))
            (Path(options.output) / "row.json").write_text(json.dumps(result))
        exit_process()  # a multi-process row leaves without gloo's teardown deadlock (seem_hf.training.processes)
        return
    if options.tiny:
        options.steps, options.image_size, options.num_val, options.batch_size = 1, 64, 2, 2
        options.lora_ranks = [2, 4]
        options.models = options.models or ["seem"]
        options.strategies = options.strategies or ["freeze_backbone_adapt_head", "lora_r2"]

    options.models = options.models or list(MODEL_CLASSES)
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                       TOKENIZERS_PARALLELISM="false")
    if options.batch_size % options.processes:
        raise SystemExit(f"--batch-size {options.batch_size} must be a multiple of --processes {options.processes}.")
    shared = ["--steps", str(options.steps), "--image-size", str(options.image_size), "--num-val",
              str(options.num_val), "--batch-size", str(options.batch_size // options.processes)]
    report = {"command": "python benchmarks/transfer.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "models": {}}
    lines = [(f"### Transfer from the shapes domain to terrain, per fine-tuning strategy "
              f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)"), "",
             f"Command: `{report['command']}`  ",
             (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; N = {options.steps} "
              f"steps of batch {options.batch_size} at {options.image_size} px; terrain held-out "
              f"{options.num_val} images; seeds {options.seeds} (mean ± standard deviation)."), ""]
    for model in options.models:
        start = start_folder(model, options.tiny, options.workdir)
        model_dir = options.workdir / model
        base = _child(["--base", "--model", model, "--start-folder", str(start), *shared], environment,
                      model_dir / "base", reuse=options.reuse)
        rows = []
        for strategy in options.strategies or rows_of(model, options.lora_ranks):
            if strategy not in rows_of(model, options.lora_ranks):
                raise SystemExit(f"{model} has no row {strategy!r}; its rows: {rows_of(model, options.lora_ranks)}.")
            for seed in options.seeds:
                output = model_dir / f"{strategy}-seed{seed}" if options.processes == 1 else \
                    model_dir / f"{strategy}-seed{seed}-{options.processes}processes"
                rows.append(_child(["--row", "--model", model, "--strategy", strategy, "--seed", str(seed),
                                    "--start-folder", str(start), *shared], environment, output, options.processes,
                                   options.reuse))
                plot(output, model_dir / f"learning_curve_{output.name}.png",
                     f"{model} {strategy} seed {seed}: terrain held-out vs step")
        scatter(model, rows, options.steps, model_dir / "cost_quality.png")
        strategy_curves(model, rows, base, options.steps, model_dir / "learning_curves.png")
        report["models"][model] = {"base": base, "rows": rows}
        lines += table(model, rows, base, options.steps) + [""]
    lines.append(f"Pictures: `{options.workdir}/<model>/learning_curves.png` (every row), "
                 f"`{options.workdir}/<model>/learning_curve_<row>-seed<seed>.png` (every metric of one run), "
                 f"`{options.workdir}/<model>/cost_quality.png`.")
    text = "\n".join(lines) + "\n"
    options.workdir.mkdir(parents=True, exist_ok=True)
    (options.workdir / "transfer.json").write_text(json.dumps(report, indent=1))
    record_table(text, options.results)


if __name__ == "__main__":
    main()
