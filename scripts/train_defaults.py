"""Train the embedded default checkpoints: each model built from its small "shapes default" config below (random
weights, seeded), its backbone pretrained on the stream's object crops (`scripts/pretrain_backbone.py`, what ImageNet
is to the released models), then trained by its own example script on the unlimited shapes stream (`--stream`: new
256 px images every step) and evaluated on the stream's fixed held-out set, then copied (model, processor, model card
with the command, wall time and held-out metrics; no bundled code: inside the package `import seem_hf` registers the
models) to `seem_hf/checkpoints/<model>-shapes/`, and its learning curve to `docs/images/learning_curve_<model>.png`.

    python scripts/train_defaults.py --models detr_panoptic [--steps 1000] [--workdir outputs/defaults] [--resume] \
        [--start_from outputs/first/detr_panoptic-shapes] [--config_overrides JSON]

One model at a time (2 CPU cores). `--resume` continues a stopped run from its last saved checkpoint instead of
starting again (with `--steps` at that checkpoint's step it only evaluates and installs it); the wall time in the
card counts from the run's start. `--start_from` trains a folder this script wrote further, with the same recipe (a
second warm-up, constant rate and decay); its card gives both commands and its learning curve both runs.
`--config_overrides '{"d_model": 128}'` trains a variant of the shapes config from random weights (an ablation of the
model's size); its card's command carries them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import CLIPTextConfig, ResNetConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning_curve_plot import evaluations, plot  # noqa: E402
from make_tiny_checkpoints import (  # noqa: E402
    fit_lseg_text_projection,
    fit_seem_label_embeddings,
    separate_detr_panoptic_masks,
    sharpen_detr_panoptic,
)
from pretrain_backbone import pretrain_backbone  # noqa: E402
from pretrain_text import pretrain_text_tower  # noqa: E402

from seem_hf import (  # noqa: E402
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
    LSegConfig,
    LSegForSemanticSegmentation,
    LSegImageProcessor,
    LSegProcessor,
    SeemForUniversalSegmentation,
    SeemImageProcessor,
    SeemProcessor,
)
from seem_hf.clip_tokenizer import clip_tokenizer  # noqa: E402
from seem_hf.data.shapes import SHAPES_VOCABULARY  # noqa: E402
from seem_hf.models.lseg import lseg_vision_config  # noqa: E402
from seem_hf.models.lseg.configuration_lseg import CLIP_B32_TEXT  # noqa: E402
from seem_hf.remote_code import remove_bundle  # noqa: E402

DESTINATION = ROOT / "seem_hf" / "checkpoints"
IMAGE_SIZE = 256
"""The defaults train and run at 256 px: the shapes data's images, up to 2 stuff regions and 5 things each."""


def shapes_detr_panoptic_config() -> DetrPanopticConfig:
    """DETR-panoptic for the shapes data: a 4-stage ResNet of 16-128 channels (stride 32: an 8x8 map at 256 px), width
    64, 2 encoder and 3 decoder layers, 20 queries (about 3 per segment of a 7-segment image), no dropout. Not DC5
    (`dilation=True`, a 16x16 map): from random weights its stuff masks collapsed (stuff PQ 8-22 over 1,600 steps), and
    trained on from this model it found no more small things (benchmarks/RESULTS.md)."""
    return DetrPanopticConfig(
        backbone_config=ResNetConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], embedding_size=16,
                                     out_features=["stage1", "stage2", "stage3", "stage4"]),
        d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=8, decoder_attention_heads=8,
        encoder_ffn_dim=128, decoder_ffn_dim=128, num_queries=20, dropout=0.0,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )


def shapes_text_config(projection_dim: int) -> CLIPTextConfig:
    """The frozen text tower of the LSeg and SEEM defaults: CLIP's vocabulary (so the real tokenizer drives it),
    2 layers of width 32 (its token table, 49,408 x 32, is most of a checkpoint's size)."""
    return CLIPTextConfig(**{**CLIP_B32_TEXT, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "projection_dim": projection_dim})


def shapes_lseg_config() -> LSegConfig:
    """LSeg for the shapes data: a 6-layer ViT of width 96 (patch 16: a 16x16 map at 256 px), DPT neck of 32-96
    channels fused at 64, meeting the text tower in a 64-d space."""
    return LSegConfig(
        vision_config=lseg_vision_config(
            "vit_l16", hidden_size=96, num_hidden_layers=6, num_attention_heads=4, intermediate_size=192,
            image_size=IMAGE_SIZE, backbone_out_indices=[1, 3, 4, 5], neck_hidden_sizes=[32, 64, 96, 96],
            fusion_hidden_size=64,
        ),
        text_config=shapes_text_config(64),
        embedding_dim=64,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )


def shapes_seem_config():
    """SEEM for the shapes data: a 4-stage FocalNet of 24-192 channels (1, 1, 2, 1 blocks), pixel decoder and
    decoder of width 64 (2 encoder layers, 3 decoder layers), 16 object queries (about 2 per segment), 8 spatial
    memories."""
    from seem_hf.models.seem.configuration_seem import FOCAL_L, SEEM_TEXT, SeemConfig

    backbone = dict(FOCAL_L, embed_dim=24, depths=[1, 1, 2, 1], hidden_sizes=[24, 48, 96, 192],
                    focal_levels=[2] * 4, drop_path_rate=0.0)
    text = dict(SEEM_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                projection_dim=64)
    return SeemConfig(
        backbone_config=backbone, text_config=text, conv_dim=64, mask_dim=64, hidden_dim=64, dim_proj=64,
        pixel_decoder_layers=2, norm_groups=16, num_queries=16, num_heads=4, dim_feedforward=128, decoder_layers=3,
        spatial_memories=8, max_spatial_tokens=16, train_num_points=112 * 112 // 4,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )


CONFIGS = {"detr_panoptic": shapes_detr_panoptic_config, "lseg": shapes_lseg_config, "seem": shapes_seem_config}


def configured(name: str, overrides: dict | None = None):
    """`name`'s shapes config with `overrides` applied (an ablation's `{"d_model": 128}`; a nested config by a nested
    dict: `{"backbone_config": {"hidden_sizes": [32, 64, 128, 256]}}`). An unknown key is an error, not a new field."""
    config = CONFIGS[name]()

    def apply(target, changes: dict, where: str) -> None:
        for key, value in changes.items():
            if not hasattr(target, key):
                raise SystemExit(f"--config_overrides: {where} has no field {key!r}.")
            current = getattr(target, key)
            if isinstance(value, dict) and not isinstance(current, dict):
                apply(current, value, f"{where}.{key}")
            elif isinstance(value, dict) and isinstance(current, dict):
                current.update(value)
            else:
                setattr(target, key, value)

    apply(config, overrides or {}, f"shapes_{name}_config()")
    return config


def initial_checkpoint(name: str, folder: Path, pretrain_steps: int = 0, config_overrides: dict | None = None) -> Path:
    """The starting point of `name`'s segmentation training: its shapes config with seeded random weights (the frozen
    text towers' projections fitted to keep the vocabulary's names apart, DETR's queries and mask output sharpened, as
    `scripts/make_tiny_checkpoints.py` does for the tiny ones, and DETR's mask head made to tell queries apart), the
    backbone pretrained on the stream's object crops for `pretrain_steps` steps (`scripts/pretrain_backbone.py`; its
    held-out accuracies go to `backbone_pretraining.json`), and its processor at `IMAGE_SIZE` with the shapes
    vocabulary."""
    torch.manual_seed(0)
    shutil.rmtree(folder, ignore_errors=True)
    size = {"shortest_edge": IMAGE_SIZE, "longest_edge": IMAGE_SIZE}
    if name == "detr_panoptic":
        model = DetrPanopticForSegmentation(configured(name, config_overrides))
        sharpen_detr_panoptic(model)
        separate_detr_panoptic_masks(model)
        processor = DetrPanopticProcessor(DetrPanopticImageProcessor(
            id2label=model.config.id2label, thing_label_ids=SHAPES_VOCABULARY.thing_label_ids,
            label_colors=SHAPES_VOCABULARY.label_colors, size=size))
    elif name == "lseg":
        model = LSegForSemanticSegmentation(configured(name, config_overrides))
        processor = LSegProcessor(LSegImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
                                  clip_tokenizer())
        processor.set_default_labels(list(SHAPES_VOCABULARY.id2label.values()))
        fit_lseg_text_projection(model, processor)
    elif name == "seem":
        model = SeemForUniversalSegmentation(configured(name, config_overrides))
        processor = SeemProcessor(SeemImageProcessor(id2label=dict(SHAPES_VOCABULARY.id2label),
                                                     thing_label_ids=SHAPES_VOCABULARY.thing_label_ids, size=size),
                                  clip_tokenizer())
        fit_seem_label_embeddings(model, processor)
        text_history = pretrain_text_tower(model, processor, TEXT_PRETRAIN_STEPS)
    else:
        raise SystemExit(f"Unknown model {name!r}: choose detr_panoptic, lseg or seem.")
    history = pretrain_backbone(model, pretrain_steps) if pretrain_steps else []
    model.eval().save_pretrained(folder)
    record = {"steps": pretrain_steps, "held_out_accuracy": history}
    if name == "seem":
        record["text"] = {"steps": TEXT_PRETRAIN_STEPS, "history": text_history}
    (folder / PRETRAINING).write_text(json.dumps(record) + "\n")
    processor.save_pretrained(folder)
    remove_bundle(folder)
    return folder


COMMON = ["--stream", "true", "--image_size", str(IMAGE_SIZE), "--num_val", "16", "--disable_tqdm", "true",
          "--report_to", "none", "--seed", "0", "--backbone_lr_multiplier", "0.1", "--logging_steps", "5",
          "--save_strategy", "steps", "--save_total_limit", "1", "--dataloader_num_workers", "0",
          "--lr_scheduler_type", "warmup_stable_decay"]
"""Every model: the stream, evaluated on its held-out set; the pretrained backbone at a tenth of the rate (SEEM's and
Mask2Former's multiplier for pretrained backbones); warm-up, a constant rate, then a cosine decay to 0 over the last
quarter (`DECAY`). Until the decay starts, a run is the same whatever its length: a run resumed with more
`--steps` before then is the longer run (the defaults' step counts were set by the time available)."""
DECAY = 0.25
# Per model: default steps, steps between evaluations and checkpoints (the learning curve's points; what a stopped
# run can lose), and the example's own arguments.
RECIPES = {
    "detr_panoptic": (2600, 100, ["--learning_rate", "1e-3", "--warmup_steps", "25"]),
    "lseg": (8000, 250, ["--learning_rate", "1e-3", "--warmup_steps", "25"]),
    "seem": (2000, 250, ["--learning_rate", "1e-3", "--warmup_steps", "25"]),
}
PRETRAIN_STEPS = {"detr_panoptic": 3000, "lseg": 3000, "seem": 3000}
"""Backbone pretraining steps (4 stream images' thing crops each) before each model's segmentation training."""
TEXT_PRETRAIN_STEPS = 1000
"""SEEM's text tower pretraining steps (`scripts/pretrain_text.py`, 64 sentences and class prompts each, ~20 s): without
it the frozen random tower gives two sentences of one image a cosine of 0.95 (median over the held-out images), with
it 0.56."""
PRETRAINING = "backbone_pretraining.json"
LEARNING_CURVE = "learning_curve.json"
"""Kept with each embedded default: its run's held-out evaluations (`{"title", "history"}`), drawn into the docs."""
KEEP = (".json", ".safetensors", ".txt")
DROP = ("training_args.bin", "trainer_state.json", "all_results.json", "train_results.json", "eval_results.json")


def train(name: str, workdir: Path, steps: int | None, resume: bool, destination: Path = DESTINATION,
          overrides: list[str] = (), pretrain_steps: int | None = None, start_from: Path | None = None,
          config_overrides: dict | None = None) -> Path:
    default_steps, every, arguments = RECIPES[name]
    arguments = [*arguments, *overrides]
    steps = steps or default_steps
    output, start, clock = workdir / name, workdir / f"{name}-init", workdir / f"{name}.started"
    checkpoints = sorted(output.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    if not (resume and checkpoints):
        shutil.rmtree(output, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        clock.write_text(f"{time.time():.0f}\n")  # when the run started: wall time counts from here
        if start_from:
            shutil.rmtree(start, ignore_errors=True)
            shutil.copytree(start_from, start)
        else:
            initial_checkpoint(name, start, PRETRAIN_STEPS[name] if pretrain_steps is None else pretrain_steps,
                               config_overrides)
    command = [f"examples/finetune_{name}.py", "--model_name_or_path", str(start.relative_to(ROOT)),
               "--output_dir", str(output.relative_to(ROOT)), "--max_steps", str(steps), "--eval_steps", str(every),
               "--save_steps", str(every), *COMMON,
               "--lr_scheduler_kwargs", json.dumps({"num_decay_steps": int(steps * DECAY)}), *arguments]
    if resume and checkpoints:
        command += ["--resume_from_checkpoint", str(checkpoints[-1].relative_to(ROOT))]
    print(f"{name}: python {' '.join(command)}", flush=True)
    # One thread: on a shared machine a second one mostly waits for the first (OpenMP spinning).
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                       OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if subprocess.run([sys.executable, *command], cwd=ROOT, env=environment).returncode:
        raise SystemExit(f"{name}: training failed (its log is above); rerun with --resume to continue.")
    seconds = time.time() - float(clock.read_text())
    pretraining = json.loads((start / PRETRAINING).read_text()) if (start / PRETRAINING).exists() else None
    folder = package(name, output, steps, seconds, destination, arguments, pretraining,
                     continued=(start, start_from) if start_from else None, config_overrides=config_overrides)
    # The docs' copy is drawn by scripts/make_doc_pictures.py from the folder's learning_curve.json.
    print(plot(output, workdir / f"learning_curve_{name}.png", curve_title(name, steps)), flush=True)
    return folder


def held_out_set():
    """The held-out rows the examples evaluate on with `--stream` (16 images, unaugmented)."""
    from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, ShapesStream

    return AugmentedPanopticDataset(ShapesStream.held_out(16, seed=0, image_size=IMAGE_SIZE),
                                    LargeScaleJitter(IMAGE_SIZE, 1.0, 1.0, flip_probability=0.0))


def referring_by_kind(folder: Path) -> dict[str, float]:
    """SEEM's referring metrics on the held-out set for sentences about things ("the red circle") and about stuff
    ("the sky") apart: each image asked with only that kind's sentences."""
    from seem_hf.data.shapes import STUFF
    from seem_hf.models.seem.evaluation_seem import evaluate_referring

    model = SeemForUniversalSegmentation.from_pretrained(folder).eval()
    processor = SeemProcessor.from_pretrained(folder)
    held_out = held_out_set()
    rows = [held_out[index] for index in range(len(held_out))]
    results = {}
    for kind in ("things", "stuff"):
        items = []
        for row in rows:
            keep = [(sentences[0].split()[-1] in STUFF) == (kind == "stuff") for sentences in row["sentences"]]
            items.append({**row, "sentences": [text for text, kept in zip(row["sentences"], keep) if kept],
                          "grounding_masks": row["grounding_masks"][keep]})
        for metric, value in evaluate_referring(model, processor, items).items():
            results[metric.replace("referring_", f"referring_{kind}_")] = value
    return results


def _pretraining(pretraining: dict | None) -> str:
    """The model card's words for the pretraining stages (empty when there was none)."""
    if not pretraining or not pretraining["steps"]:
        return ""
    accuracy = pretraining["held_out_accuracy"][-1][1]
    words = (f"the backbone pretrained for {pretraining['steps']} steps on the stream's thing crops "
             f"(`scripts/pretrain_backbone.py`; held-out shape accuracy {accuracy:.2f}, chance 0.25), ")
    if text := pretraining.get("text"):
        (_, before), (_, after) = text["history"][0], text["history"][-1]
        words += (f"the text tower pretrained for {text['steps']} steps on the shapes sentences and class prompts "
                  f"(`scripts/pretrain_text.py`; the largest cosine between two sentences of a held-out image, "
                  f"median over the images, {before['sentence_max_cosine']:.2f} before, "
                  f"{after['sentence_max_cosine']:.2f} after), ")
    return words


def package(name: str, output: Path, steps: int, seconds: float, destination: Path = DESTINATION,
            arguments: list[str] | None = None, pretraining: dict | None = None,
            continued: tuple[Path, Path] | None = None, config_overrides: dict | None = None) -> Path:
    """Copy the trained folder's model and processor to the package, and write the model card with the command,
    the wall time and the held-out metrics. `continued`: (the copy trained from, the `--start_from` argument) of a
    run that trained a packaged folder further: its card's training paragraph and learning curve come first."""
    from transformers import AutoModel

    from seem_hf.model_card import write_model_card

    target = destination / f"{name}-shapes"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in output.iterdir():
        if path.is_file() and path.suffix in KEEP and path.name not in DROP:
            shutil.copyfile(path, target / path.name)
    remove_bundle(target)
    metrics = json.loads((output / "eval_results.json").read_text())
    metrics = {key.removeprefix("eval_"): value for key, value in metrics.items()
               if key.startswith("eval_") and "runtime" not in key and "per_second" not in key}
    if name == "seem":
        metrics.update(referring_by_kind(target))
    model = AutoModel.from_pretrained(target)
    (target / "README.md").unlink(missing_ok=True)
    parameters = sum(parameter.numel() for parameter in model.parameters()) / 1e6
    write_model_card(
        model, target, repo_id=f"seem_hf/checkpoints/{name}-shapes", metrics=metrics,
        training_data=("The synthetic shapes stream (`seem_hf.data.ShapesStream`, seed 0): a new 256 px image for "
                       "every sample (2 of 4 stuff classes, 1 to 5 things of 4 shapes, 4 colours and 2 sizes, with "
                       "referring sentences), large-scale jitter 0.5-2.0. Metrics are on the stream's fixed held-out "
                       "set (`ShapesStream.held_out(16, seed=0, image_size=256)`), which no training step saw."),
        training=_training_words(name, steps, seconds, parameters, pretraining, arguments, continued,
                                 config_overrides),
    )
    (target / "eval_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
    curve = {"title": curve_title(name, steps), "history": evaluations(output)}
    if continued:
        before = json.loads((continued[0] / LEARNING_CURVE).read_text())["history"]
        first_steps = before[-1]["step"]
        curve = {"title": curve_title(name, f"{first_steps} + {steps}"),
                 "history": before + [{**entry, "step": entry["step"] + first_steps} for entry in curve["history"]]}
    (target / LEARNING_CURVE).write_text(json.dumps(curve) + "\n")
    return target


def _training_words(name, steps, seconds, parameters, pretraining, arguments, continued,
                    config_overrides: dict | None = None) -> str:
    """The model card's training paragraph: the command, the wall time, the stages and the recipe."""
    recipe = (f"{steps} steps of 4 images by `examples/finetune_{name}.py` with "
              f"`{' '.join(arguments or RECIPES[name][2])}` and `{' '.join(COMMON)}` (cosine decay over the last "
              f"{int(steps * DECAY)} steps)")
    # the arguments given after `--` (train() appends them to the recipe's): part of the command that reproduces it
    overrides = list(arguments or [])[len(RECIPES[name][2]):]
    extra = f" -- {' '.join(overrides)}" if overrides else ""
    if config_overrides:
        extra = f" --config_overrides '{json.dumps(config_overrides)}'{extra}"
    if continued:
        card = (continued[0] / "README.md").read_text()
        earlier = card.split("## Training\n\n", 1)[1].split("\n\n## ", 1)[0].strip()
        command = f"python scripts/train_defaults.py --models {name} --steps {steps} --start_from {continued[1]}"
        return (f"`{command}{extra}`, "
                f"on the folder that this earlier run wrote (`--destination` its parent): {earlier} Then, in "
                f"{seconds / 60:.0f} minutes more, {recipe}, from those weights ({parameters:.2f} M parameters).")
    config = f"config `shapes_{name}_config` in that script{' with those overrides' if config_overrides else ''}"
    return (f"`python scripts/train_defaults.py --models {name} --steps {steps}{extra}` from random weights "
            f"({parameters:.2f} M parameters, {config}), in "
            f"{seconds / 60:.0f} minutes wall time on 2 shared CPU cores (one thread): "
            f"{_pretraining(pretraining)}then {recipe}.")


def curve_title(name: str, steps: int | str) -> str:
    return f"{name}-shapes: held-out metrics vs training step (scripts/train_defaults.py, {steps} steps of 4 images)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="detr_panoptic,lseg,seem", help="comma-separated, trained in order")
    parser.add_argument("--steps", type=int, help="training steps (default: each model's recipe)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "defaults")
    parser.add_argument("--resume", action="store_true", help="continue from the last saved checkpoint")
    parser.add_argument("--pretrain_steps", type=int,
                        help=f"backbone pretraining steps before training (default {PRETRAIN_STEPS}; 0: none)")
    parser.add_argument("--start_from", type=Path, metavar="FOLDER",
                        help="a <model>-shapes folder this script wrote: train it further instead of from scratch")
    parser.add_argument("--destination", type=Path, default=DESTINATION,
                        help="where the <model>-shapes folders go (default: the package's embedded checkpoints)")
    parser.add_argument("--config_overrides", type=json.loads, metavar="JSON",
                        help='fields of the shapes config to change, e.g. \'{"d_model": 128}\' (from random weights)')
    parser.add_argument("overrides", nargs="*", metavar="-- EXAMPLE_ARGUMENT",
                        help="after `--`: more arguments for the example script, overriding the recipe's (an "
                             "ablation's `-- --learning_rate 2e-4`)")
    arguments = parser.parse_args()
    arguments.workdir = arguments.workdir.resolve()
    for name in arguments.models.split(","):
        folder = train(name.strip(), arguments.workdir, arguments.steps, arguments.resume, arguments.destination,
                       arguments.overrides, arguments.pretrain_steps, arguments.start_from,
                       arguments.config_overrides)
        print(f"{name}: {folder}", flush=True)


if __name__ == "__main__":
    main()
