"""Train the embedded default checkpoints: each model fine-tuned on the bundled shapes dataset by its own example
script, from the shipped tiny checkpoint, then copied (model, processor, model card with the command and the
validation metrics; no bundled code: inside the package `import seem_hf` registers the models) to `seem_hf/checkpoints/<model>-shapes/`.

    python scripts/train_defaults.py [--models seem,lseg,detr_panoptic] [--workdir outputs/defaults]

CPU, 2 cores: about 10 (DETR-panoptic), 5 (LSeg) and 15 (SEEM) minutes.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seem_hf.testing import FIXTURES  # noqa: E402

DESTINATION = ROOT / "seem_hf" / "checkpoints"
COMMON = ["--num_train", "64", "--num_val", "16", "--disable_tqdm", "true", "--report_to", "none", "--seed", "0",
          "--backbone_lr_multiplier", "1.0", "--warmup_steps", "50", "--save_strategy", "no"]
# Per model: the image size it trains and runs at, and the example's arguments.
RECIPES = {
    "detr_panoptic": (256, ["--max_steps", "1000", "--eval_steps", "1000"]),
    "lseg": (128, ["--max_steps", "1000", "--eval_steps", "1000", "--learning_rate", "1e-3"]),
    "seem": (128, ["--max_steps", "3000", "--eval_steps", "3000", "--learning_rate", "1e-3"]),
}
KEEP = (".json", ".safetensors", ".txt")
DROP = ("training_args.bin", "trainer_state.json", "all_results.json", "train_results.json")


def train(name: str, workdir: Path) -> Path:
    size, arguments = RECIPES[name]
    output = workdir / name
    shutil.rmtree(output, ignore_errors=True)
    command = [f"examples/finetune_{name}.py", "--model_name_or_path",
               str((FIXTURES / f"tiny-random-{name}").relative_to(ROOT)), "--image_size", str(size),
               "--output_dir", str(output), *COMMON, *arguments]
    started = time.perf_counter()
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-4000:])
    minutes = (time.perf_counter() - started) / 60
    return package(name, output, size, "python " + " ".join(command).replace(str(workdir), "<workdir>"), minutes)


def package(name: str, output: Path, size: int, command: str, minutes: float) -> Path:
    """Copy the trained folder's model, processor and code, set the processor to the training size, and write
    the model card with the command and the validation metrics."""
    import seem_hf  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel, AutoProcessor

    from seem_hf.model_card import write_model_card
    from seem_hf.remote_code import remove_bundle

    target = DESTINATION / f"{name}-shapes"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in output.iterdir():
        if path.is_file() and path.suffix in KEEP and path.name not in DROP:
            shutil.copyfile(path, target / path.name)
    processor = AutoProcessor.from_pretrained(target)
    image_processor = getattr(processor, "image_processor", processor)
    if name == "lseg":
        image_processor.size = {"height": size, "width": size}
    else:
        image_processor.size = {"shortest_edge": size, "longest_edge": size}
    processor.save_pretrained(target)
    remove_bundle(target)
    metrics = json.loads((output / "eval_results.json").read_text())
    metrics = {key: value for key, value in metrics.items() if key.startswith("eval_") and "runtime" not in key
               and "per_second" not in key}
    model = AutoModel.from_pretrained(target)
    (target / "README.md").unlink(missing_ok=True)
    write_model_card(
        model, target, repo_id=f"seem_hf/checkpoints/{name}-shapes", metrics=metrics,
        training_data="The bundled synthetic shapes dataset (`seem_hf.data.make_shapes_dataset`, seed 0): 64 "
                      f"training and 16 validation images of {size} px, 4 stuff and 4 thing classes, with referring "
                      "sentences. Metrics are on its validation split.",
        training=f"`{command}` (about {minutes:.0f} minutes on 2 CPU cores), from the shipped tiny random checkpoint; "
                 "made by `scripts/train_defaults.py`.",
    )
    (target / "eval_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="detr_panoptic,lseg,seem")
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "defaults")
    arguments = parser.parse_args()
    for name in arguments.models.split(","):
        print(f"{name}: {train(name.strip(), arguments.workdir)}", flush=True)


if __name__ == "__main__":
    main()
