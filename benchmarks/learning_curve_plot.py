"""Learning-curve pictures: the held-out metrics of a fine-tuning run against the training step, read from the
run's `trainer_state.json` (the examples save it; `scripts/train_defaults.py` plots each default's run with this) or
from an embedded default's `learning_curve.json` (its evaluations, kept with the checkpoint: `scripts/
make_doc_pictures.py` draws the docs' curves from them).

    python benchmarks/learning_curve_plot.py outputs/defaults/seem --title "seem-shapes" \
        --output docs/images/learning_curve_seem.png

One panel per metric group: percentages (PQ, PQ things, PQ stuff, mIoU) and, where the run has them, SEEM's
prompt metrics in [0, 1] (referring precision@0.5, interactive mean IoU after 1, 3 and 5 clicks). Drawn with PIL
(no plotting library needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PANELS = (
    ("held-out %", 100.0, ("eval_pq", "eval_pq_things", "eval_pq_stuff", "eval_miou")),
    ("held-out, 0-1", 1.0, ("eval_referring_precision@0.5", "eval_interactive_miou@1", "eval_interactive_miou@3",
                            "eval_interactive_miou@5")),
)
COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def curves(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per evaluated metric, in step order."""
    found: dict[str, list[tuple[int, float]]] = {}
    for entry in history:
        for key, value in entry.items():
            if key.startswith("eval_") and isinstance(value, (int, float)):
                found.setdefault(key, []).append((int(entry["step"]), float(value)))
    return found


def evaluations(run_dir: str | Path) -> list[dict]:
    """The evaluation entries (step and `eval_*` metrics) of a run's `trainer_state.json`."""
    history = json.loads((Path(run_dir) / "trainer_state.json").read_text())["log_history"]
    return [entry for entry in history if any(key.startswith("eval_") for key in entry)]


def plot(run_dir: str | Path, output: str | Path, title: str) -> Path:
    """Draw the run's curves to `output` (PNG); panels without any of their metrics are left out."""
    history = evaluations(run_dir)
    if not history:
        raise SystemExit(f"{run_dir}/trainer_state.json has no evaluation in its history (--eval_strategy no?).")
    return plot_history(history, output, title)


def plot_history(history: list[dict], output: str | Path, title: str) -> Path:
    """Draw `history`'s evaluations (dicts with `step` and `eval_*` metrics) to `output` (PNG)."""
    found = curves(history)
    panels = [(name, top, [key for key in keys if key in found]) for name, top, keys in PANELS]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        raise ValueError("The history has no evaluated metric to draw.")
    last_step = max(step for values in found.values() for step, _ in values) or 1
    width, height, margin = 560, 300, 50
    image = Image.new("RGB", (width * len(panels), height + 30), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((10, 6), title, fill="black", font=font)
    for index, (name, top, keys) in enumerate(panels):
        left, right, upper, lower = index * width + margin, (index + 1) * width - 20, 40, height - 10
        draw.rectangle((left, upper, right, lower), outline="black")
        for tick in range(0, 6):
            y = lower - (lower - upper) * tick / 5
            draw.line((left - 4, y, left, y), fill="black")
            draw.text((left - 40, y - 6), f"{top * tick / 5:g}", fill="black", font=font)
        for tick in range(0, 5):
            x = left + (right - left) * tick / 4
            draw.text((x - 10, lower + 2), f"{last_step * tick / 4:.0f}", fill="black", font=font)
        draw.text((left, upper - 14), f"{name} vs step", fill="black", font=font)
        for number, key in enumerate(keys):
            color = COLORS[number % len(COLORS)]
            points = [(left + (right - left) * step / last_step, lower - (lower - upper) * min(value / top, 1.0))
                      for step, value in found[key]]
            if len(points) > 1:
                draw.line(points, fill=color, width=2)
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=color)
            label = f"{key.removeprefix('eval_')} {found[key][-1][1]:.3g}"
            draw.text((left + 8, upper + 6 + 13 * number), label, fill=color, font=font)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a fine-tuning run's --output_dir (holding trainer_state.json)")
    parser.add_argument("--output", required=True, help="the PNG to write")
    parser.add_argument("--title", default="", help="line at the top of the picture")
    options = parser.parse_args()
    print(plot(options.run_dir, options.output, options.title or str(options.run_dir)))


if __name__ == "__main__":
    main()
