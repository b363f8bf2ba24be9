"""An interactive demo page for SEEM (clicks, boxes, scribbles, sentences) and LSeg (a label list) on the embedded
default checkpoints (or any others).

    python -m seem_hf.app [--port 7860] [--seem FOLDER] [--lseg FOLDER]

Needs gradio (`pip install seem_hf[demo]`). Clicking the SEEM image adds a prompt of the chosen kind (positive or
negative click, or a box corner: two corners make a box); drawing on the scribble pad adds a scribble; "Segment"
runs every prompt given (sentence and visual prompts together, one object) and shows the masks.
"""

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from seem_hf.demo import DEFAULTS
from seem_hf.visualize import overlay_masks, overlay_semantic

PROMPT_KINDS = ("positive click", "negative click", "box corner")


class Segmenters:
    """The models behind the page; each call is one request."""

    def __init__(self, seem_folder: Path = DEFAULTS["seem"], lseg_folder: Path = DEFAULTS["lseg"]):
        import seem_hf  # noqa: F401  (registers the Auto classes)
        from transformers import AutoModel, AutoProcessor

        self.seem, self.seem_processor = AutoModel.from_pretrained(seem_folder).eval(), AutoProcessor.from_pretrained(
            seem_folder)
        self.lseg, self.lseg_processor = AutoModel.from_pretrained(lseg_folder).eval(), AutoProcessor.from_pretrained(
            lseg_folder)

    def seem_prompts(self, prompts: list[tuple[str, float, float]], scribble: np.ndarray | None) -> dict:
        """The page's clicks, box corners and scribble pad -> one object's prompt dict (image coordinates)."""
        prompt = {}
        positive = [(x, y) for kind, x, y in prompts if kind == "positive click"]
        negative = [(x, y) for kind, x, y in prompts if kind == "negative click"]
        corners = [(x, y) for kind, x, y in prompts if kind == "box corner"]
        if positive:
            prompt["points"] = positive
        if negative:
            prompt["negative_points"] = negative
        if len(corners) >= 2:
            (x0, y0), (x1, y1) = corners[-2:]
            prompt["box"] = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if scribble is not None and scribble.any():
            prompt["mask"] = scribble
        return prompt

    @torch.inference_mode()
    def segment_seem(self, image: PIL.Image.Image, sentence: str = "", prompts=(), scribble=None):
        """(overlay, summary): the referring mask of `sentence` and the interactive mask of the visual prompts."""
        if image is None:
            raise ValueError("Give an image.")
        image = image.convert("RGB")
        sentence = (sentence or "").strip()
        visual = self.seem_prompts(list(prompts), scribble)
        if not sentence and not visual:
            raise ValueError("Give a sentence, click on the image, mark a box or draw a scribble.")
        processor = self.seem_processor
        labels = processor.default_labels
        inputs = processor(images=image, text=labels, sentences=[sentence] if sentence else None,
                           visual_prompts=[visual] if visual else None)
        outputs = self.seem(**inputs, generator=torch.Generator().manual_seed(0))
        size = [(image.height, image.width)]
        masks, names, lines = [], [], []
        if sentence:
            answer = processor.post_process_referring_segmentation(outputs, target_sizes=size)[0][0]
            masks.append(answer["masks"][0])
            names.append(sentence)
            lines.append(f"sentence {sentence!r}: {int(answer['masks'][0].sum())} pixels, score "
                         f"{float(answer['scores'][0]):.3f}")
        if visual:
            answer = processor.post_process_interactive_segmentation(outputs, target_sizes=size)[0]
            label = labels[int(answer["labels"][0])]
            masks.append(answer["masks"][0])
            names.append(label)
            lines.append(f"visual prompt ({', '.join(sorted(visual))}): {label}, {int(answer['masks'][0].sum())} "
                         "pixels")
        points = [(x, y, kind != "negative click") for kind, x, y in prompts]
        return overlay_masks(image, torch.stack(masks), names, points=points), "\n".join(lines)

    @torch.inference_mode()
    def segment_lseg(self, image: PIL.Image.Image, labels: str):
        """(overlay, summary) of LSeg over a comma-separated label list."""
        if image is None:
            raise ValueError("Give an image.")
        names = [label.strip() for label in (labels or "").split(",") if label.strip()]
        image = image.convert("RGB")
        inputs = self.lseg_processor(images=image, text=names)
        outputs = self.lseg(**inputs)
        semantic = self.lseg_processor.post_process_semantic_segmentation(
            outputs, target_sizes=[(image.height, image.width)])[0]
        counts = {names[label]: int((semantic == label).sum()) for label in torch.unique(semantic).tolist()}
        summary = ", ".join(f"{name}: {count} pixels" for name, count in counts.items())
        return overlay_semantic(image, semantic, dict(enumerate(names))), summary


def build_app(segmenters: Segmenters, example: PIL.Image.Image | None = None):
    """The gradio Blocks page."""
    import gradio as gr

    # gradio passes the click's position to a parameter annotated gr.SelectData (hence no postponed annotations in
    # this module)
    def add_prompt(prompts, kind, event: gr.SelectData):
        x, y = event.index
        prompts = list(prompts) + [(kind, float(x), float(y))]
        return prompts, f"{len(prompts)} prompt(s): " + "; ".join(f"{k} ({x:.0f}, {y:.0f})" for k, x, y in prompts)

    def run_seem(image, sentence, prompts, pad):
        scribble = None
        if pad is not None and pad.get("layers"):
            layer = np.asarray(pad["layers"][0].convert("RGBA"))
            scribble = layer[..., 3] > 0
            if image is not None and scribble.shape != (image.height, image.width):
                scribble = np.asarray(PIL.Image.fromarray(scribble).resize(image.size, PIL.Image.NEAREST))
        try:
            return segmenters.segment_seem(image, sentence, prompts, scribble)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    def run_lseg(image, labels):
        try:
            return segmenters.segment_lseg(image, labels)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    with gr.Blocks(title="seem_hf") as app:
        gr.Markdown("# seem_hf: SEEM and LSeg on the embedded defaults")
        with gr.Tab("SEEM"):
            prompts = gr.State([])
            with gr.Row():
                with gr.Column():
                    image = gr.Image(value=example, type="pil", label="image (click to add a prompt)",
                                     elem_id="seem-image")
                    kind = gr.Radio(list(PROMPT_KINDS), value=PROMPT_KINDS[0], label="a click adds")
                    sentence = gr.Textbox(label="sentence", elem_id="seem-sentence")
                    pad = gr.ImageEditor(value=example, type="pil", label="scribble (optional)", elem_id="seem-pad")
                    with gr.Row():
                        segment = gr.Button("Segment", variant="primary", elem_id="seem-run")
                        clear = gr.Button("Clear prompts")
                with gr.Column():
                    result = gr.Image(type="pil", label="masks", elem_id="seem-result")
                    summary = gr.Textbox(label="result", elem_id="seem-summary")
            image.select(add_prompt, [prompts, kind], [prompts, summary])
            clear.click(lambda: ([], "no prompts"), None, [prompts, summary])
            segment.click(run_seem, [image, sentence, prompts, pad], [result, summary])
        with gr.Tab("LSeg"):
            with gr.Row():
                with gr.Column():
                    lseg_image = gr.Image(value=example, type="pil", label="image", elem_id="lseg-image")
                    labels = gr.Textbox(value=", ".join(segmenters.lseg_processor.id2label.values()), label="labels",
                                        elem_id="lseg-labels")
                    lseg_run = gr.Button("Segment", variant="primary", elem_id="lseg-run")
                with gr.Column():
                    lseg_result = gr.Image(type="pil", label="labels per pixel", elem_id="lseg-result")
                    lseg_summary = gr.Textbox(label="result", elem_id="lseg-summary")
            lseg_run.click(run_lseg, [lseg_image, labels], [lseg_result, lseg_summary])
    return app


def example_image() -> PIL.Image.Image:
    """The first validation image of the bundled shapes dataset."""
    import tempfile

    from seem_hf.data import make_shapes_dataset

    with tempfile.TemporaryDirectory() as folder:
        paths = make_shapes_dataset(folder, num_train=0, num_val=1, image_size=256, seed=0)["val"]
        return PIL.Image.open(next(paths["image_dir"].glob("*.jpg"))).convert("RGB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seem", type=Path, default=DEFAULTS["seem"])
    parser.add_argument("--lseg", type=Path, default=DEFAULTS["lseg"])
    arguments = parser.parse_args(argv)
    app = build_app(Segmenters(arguments.seem, arguments.lseg), example_image())
    app.launch(server_name=arguments.host, server_port=arguments.port)


if __name__ == "__main__":
    main()
