"""Learning curve of a fine-tuning example on the bundled dataset: training loss and validation metrics of an
untrained model and after every `--eval-every` steps, from the example script run as a user runs it.

    python benchmarks/learning_curve.py [--model detr_panoptic|lseg] [--steps 1500] [--eval-every 250] \
        [--results benchmarks/RESULTS.md]

The model starts from random weights, saved with the bundled vocabulary, so every point shows what training on
the bundled dataset alone achieves: DETR-panoptic with d_model 64, 2 + 3 layers, 20 queries and a 4-stage
ResNet of 16-128 channels; LSeg with a 6-layer ViT of width 96 (patch 16) and a 2-layer CLIP text tower of
width 64 (frozen, as LSeg's: its random label embeddings act as a fixed classifier). Appends a table (step,
mean training loss since the last point, PQ for the panoptic model, mIoU, pixel accuracy, eval loss) and the
command to `--results`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import ResNetConfig

from seem_hf import (
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
    LSegConfig,
    LSegForSemanticSegmentation,
    LSegImageProcessor,
    LSegProcessor,
)
from seem_hf.clip_tokenizer import clip_tokenizer
from seem_hf.data.shapes import SHAPES_VOCABULARY
from seem_hf.models.lseg import lseg_vision_config
from seem_hf.models.lseg.configuration_lseg import CLIP_B32_TEXT
from seem_hf.testing import FIXTURES

ROOT = Path(__file__).resolve().parents[1]


def small_detr_panoptic(folder: Path, image_size: int, mask_loss: str = "focal") -> Path:
    from seem_hf import DetrPanopticConfig

    torch.manual_seed(0)
    config = DetrPanopticConfig(
        backbone_config=ResNetConfig(
            hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], embedding_size=16,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        ),
        d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=8, decoder_attention_heads=8,
        encoder_ffn_dim=128, decoder_ffn_dim=128, num_queries=20, dropout=0.0, mask_loss=mask_loss,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )
    DetrPanopticForSegmentation(config).save_pretrained(folder)
    processor = DetrPanopticImageProcessor(
        id2label=config.id2label, thing_label_ids=SHAPES_VOCABULARY.thing_label_ids,
        label_colors=SHAPES_VOCABULARY.label_colors, size={"shortest_edge": image_size, "longest_edge": image_size},
    )
    DetrPanopticProcessor(image_processor=processor).save_pretrained(folder)
    return folder


def small_lseg(folder: Path, image_size: int) -> Path:
    from transformers import CLIPTextConfig

    torch.manual_seed(0)
    config = LSegConfig(
        vision_config=lseg_vision_config(
            "vit_l16", hidden_size=96, num_hidden_layers=6, num_attention_heads=4, intermediate_size=192,
            image_size=image_size, backbone_out_indices=[1, 3, 4, 5], neck_hidden_sizes=[32, 64, 96, 96],
            fusion_hidden_size=64,
        ),
        text_config=CLIPTextConfig(**{**CLIP_B32_TEXT, "hidden_size": 64, "intermediate_size": 128,
                                      "num_hidden_layers": 2, "num_attention_heads": 4, "projection_dim": 64}),
        embedding_dim=64,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )
    LSegForSemanticSegmentation(config).save_pretrained(folder)
    processor = LSegProcessor(LSegImageProcessor(size={"height": image_size, "width": image_size}), clip_tokenizer())
    processor.set_default_labels(list(SHAPES_VOCABULARY.id2label.values()))
    processor.save_pretrained(folder)
    return folder


def run(arguments: list[str], environment: dict) -> None:
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-4000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="detr_panoptic", choices=["detr_panoptic", "lseg", "seem"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--mask-loss", default="focal", choices=["focal", "points"])
    parser.add_argument("--start", default="small", choices=["small", "fixture"],
                        help="small: the random small config above; fixture: the tiny random test checkpoint "
                             "(tests/fixtures)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "learning_curve")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    untrained_folder = options.workdir / "untrained"
    if options.start == "fixture":
        start_folder = FIXTURES / f"tiny-random-{options.model}"
    elif options.model == "seem":
        raise SystemExit("SEEM starts from the shipped tiny checkpoint: pass --start fixture.")
    elif options.model == "detr_panoptic":
        start_folder = small_detr_panoptic(untrained_folder, options.image_size, options.mask_loss)
    else:
        start_folder = small_lseg(untrained_folder, options.image_size)
    script = str(ROOT / "examples" / f"finetune_{options.model}.py")
    common = ["--model_name_or_path", str(start_folder), "--image_size", str(options.image_size),
              "--num_train", str(options.num_train), "--num_val", str(options.num_val), "--disable_tqdm", "true",
              "--report_to", "none"]
    run([script, "--evaluate_only", "true", "--output_dir", str(options.workdir / "eval0"), *common], environment)
    untrained = json.loads((options.workdir / "eval0" / "eval_results.json").read_text())
    started = time.perf_counter()
    # From random weights the backbone must learn as fast as the rest (the 0.1x multiplier is for pretrained ones).
    run([script, "--output_dir", str(options.workdir / "run"), "--max_steps", str(options.steps),
         "--backbone_lr_multiplier", "1.0",
         "--eval_steps", str(options.eval_every), "--save_steps", str(options.steps),
         "--learning_rate", str(options.learning_rate), "--warmup_steps", "50", *common], environment)
    seconds = time.perf_counter() - started
    history = json.loads((options.workdir / "run" / "trainer_state.json").read_text())["log_history"]

    rows = [("0 (untrained)", "-", untrained)]
    losses = []
    for entry in history:
        if "loss" in entry:
            losses.append(entry["loss"])
        if "eval_miou" in entry:
            rows.append((str(entry["step"]), f"{sum(losses) / max(len(losses), 1):.2f}", entry))
            losses = []
    keys = ("eval_pq", "eval_pq_things", "eval_pq_stuff") if options.model != "lseg" else ()
    keys += ("eval_miou", "eval_pixel_accuracy", "eval_loss")
    headers = {"eval_pq": "PQ", "eval_pq_things": "PQ things", "eval_pq_stuff": "PQ stuff", "eval_miou": "mIoU",
               "eval_pixel_accuracy": "pixel acc.", "eval_loss": "eval loss"}
    lines = [
        f"### Learning curve: {options.model} on the bundled dataset ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); training took {seconds:.0f} s  ",
        "Command: `python benchmarks/learning_curve.py " + " ".join(sys.argv[1:]) + "`  ",
        f"Data: {options.num_train} training / {options.num_val} validation images of {options.image_size} px; "
        f"start: {'the tiny test checkpoint' if options.start == 'fixture' else 'the small config'}, random "
        "weights at step 0.",
        "",
        "| step | train loss | " + " | ".join(headers[key] for key in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for step, loss, metrics in rows:
        lines.append(f"| {step} | {loss} | " + " | ".join(f"{metrics[key]:.1f}" for key in keys) + " |")
    final = json.loads((options.workdir / "run" / "eval_results.json").read_text())
    prompt_keys = [key for key in untrained if key.startswith(("eval_referring_", "eval_interactive_"))]
    if prompt_keys:  # SEEM's referring and interactive evaluation runs once before and once after training
        lines += ["", "| prompt metric | untrained | trained |", "|---|---|---|"]
        lines += [f"| {key.removeprefix('eval_')} | {untrained[key]:.3f} | {final[key]:.3f} |" for key in prompt_keys]
    text = "\n".join(lines) + "\n"
    print(text)
    if options.results:
        with options.results.open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
