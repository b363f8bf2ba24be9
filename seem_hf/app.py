"""An interactive demo page for SEEM (clicks, boxes, scribbles, sentences) and LSeg (a label list) on the embedded
default checkpoints (or any others).

    python -m seem_hf.app [--host 127.0.0.1] [--port 7860] [--seem FOLDER] [--lseg FOLDER]

Needs gradio (`pip install seem_hf[demo]`). Clicking the SEEM image adds a prompt of the chosen kind (positive or
negative click, or a box corner: two corners make a box); drawing on the scribble pad adds a scribble; "Segment"
runs every prompt given (sentence and visual prompts together, one object) and shows the masks. A new image starts
afresh: no prompts, the scribble pad shows the new image, no result. A request the page cannot answer (no image, no
prompt, an empty label list) leaves the last result in place and says why in a warning; the server logs it as one
line (an unexpected error is logged with its traceback).
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from seem_hf.demo import DEFAULTS, example_image
from seem_hf.image_utils import read_image
from seem_hf.visualize import overlay_masks, overlay_semantic

PROMPT_KINDS = ("positive click", "negative click", "box corner")
NO_PROMPTS = "no prompts"
logger = logging.getLogger(__name__)


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
        image = PIL.Image.fromarray(read_image(image))  # EXIF-upright; 16-bit and alpha by the value rule
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
            if len(answer["scores"]):
                masks.append(answer["masks"][0])
                names.append(sentence)
                lines.append(f"sentence {sentence!r}: {int(answer['masks'][0].sum())} pixels, score "
                             f"{float(answer['scores'][0]):.3f}")
            else:
                lines.append(f"sentence {sentence!r}: no match (even the best candidate's mask is empty)")
        if visual:
            answer = processor.post_process_interactive_segmentation(outputs, target_sizes=size)[0]
            label = labels[int(answer["labels"][0])]
            masks.append(answer["masks"][0])
            names.append(label)
            lines.append(f"visual prompt ({', '.join(sorted(visual))}): {label}, {int(answer['masks'][0].sum())} "
                         "pixels")
        points = [(x, y, kind != "negative click") for kind, x, y in prompts]
        stacked = torch.stack(masks) if masks else torch.zeros((0, image.height, image.width), dtype=torch.bool)
        return overlay_masks(image, stacked, names, points=points), "\n".join(lines)

    @torch.inference_mode()
    def segment_lseg(self, image: PIL.Image.Image, labels: str):
        """(overlay, summary) of LSeg over a comma-separated label list."""
        if image is None:
            raise ValueError("Give an image.")
        names = [label.strip() for label in (labels or "").split(",") if label.strip()]
        if not names:
            raise ValueError("Give at least one label: a comma-separated list such as 'sky, grass, circle'.")
        image = PIL.Image.fromarray(read_image(image))  # EXIF-upright; 16-bit and alpha by the value rule
        inputs = self.lseg_processor(images=image, text=names)
        outputs = self.lseg(**inputs)
        semantic = self.lseg_processor.post_process_semantic_segmentation(
            outputs, target_sizes=[(image.height, image.width)])[0]
        counts = {names[label]: int((semantic == label).sum()) for label in torch.unique(semantic).tolist()}
        summary = ", ".join(f"{name}: {count} pixels" for name, count in counts.items())
        return overlay_semantic(image, semantic, dict(enumerate(names))), summary


def add_prompt(prompts: list, kind: str, x: float, y: float) -> tuple[list, str]:
    """A click on the image: (the prompts with this one added, the summary line listing them)."""
    if kind not in PROMPT_KINDS:
        raise ValueError(f"Unknown prompt kind {kind!r}: choose one of {', '.join(PROMPT_KINDS)}.")
    prompts = list(prompts) + [(kind, float(x), float(y))]
    return prompts, f"{len(prompts)} prompt(s): " + "; ".join(f"{k} ({x:.0f}, {y:.0f})" for k, x, y in prompts)


def scribble_of(pad: dict | None, image: PIL.Image.Image | None) -> np.ndarray | None:
    """The scribble pad's strokes (every layer) as a boolean mask of the image's size, or None when nothing is
    drawn."""
    layers = (pad or {}).get("layers") or []
    if not layers:
        return None
    scribble = np.zeros(np.asarray(layers[0]).shape[:2], dtype=bool)
    for layer in layers:
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        if alpha.shape == scribble.shape:
            scribble |= alpha
    if image is not None and scribble.shape != (image.height, image.width):
        scribble = np.asarray(PIL.Image.fromarray(scribble).resize(image.size, PIL.Image.NEAREST))
    return scribble if scribble.any() else None


def start_afresh(image: PIL.Image.Image | None) -> tuple:
    """A new image on the SEEM tab: (no prompts, their summary, the scribble pad showing the new image, no result)."""
    return [], NO_PROMPTS, image, None


def keep_last_result(outputs: int):
    """Decorate a page request: a problem with what the user gave (a `ValueError`: no image, no prompt, an empty
    label list) leaves the `outputs` components showing the last good result, tells the user why (`gr.Warning`,
    saying the result shown is the previous one) and logs one line; any other error does the same but logs the
    traceback, since it is a bug."""
    import functools

    def decorate(request):
        @functools.wraps(request)
        def answer(*arguments):
            import gradio as gr

            try:
                return request(*arguments)
            except ValueError as error:
                logger.warning("%s refused: %s", request.__name__, error)
                gr.Warning(f"{error} (the result shown is the previous one)", title="Nothing segmented")
            except Exception as error:  # a bug: the page stays usable, the log has the details
                logger.exception("%s failed", request.__name__)
                gr.Warning(f"Internal error: {type(error).__name__}: {error} (the server log has the details; the "
                           "result shown is the previous one)", title="Nothing segmented")
            return tuple(gr.skip() for _ in range(outputs))

        return answer

    return decorate


def build_app(segmenters: Segmenters, example: PIL.Image.Image | None = None):
    """The gradio Blocks page."""
    import gradio as gr

    # gradio passes the click's position to a parameter annotated gr.SelectData (hence no postponed annotations in
    # this module)
    def on_click(prompts, kind, event: gr.SelectData):
        x, y = event.index
        return add_prompt(prompts, kind, x, y)

    @keep_last_result(outputs=2)
    def run_seem(image, sentence, prompts, pad):
        return segmenters.segment_seem(image, sentence, prompts, scribble_of(pad, image))

    @keep_last_result(outputs=2)
    def run_lseg(image, labels):
        return segmenters.segment_lseg(image, labels)

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
                    pad = gr.ImageEditor(value=example, type="pil", label="scribble (optional; a new image clears it)",
                                         elem_id="seem-pad")
                    with gr.Row():
                        segment = gr.Button("Segment", variant="primary", elem_id="seem-run")
                        clear = gr.Button("Clear prompts")
                with gr.Column():
                    result = gr.Image(type="pil", label="masks", elem_id="seem-result")
                    summary = gr.Textbox(label="result", elem_id="seem-summary")
            # the page's own bookkeeping stays off the API page: only the two Segment requests are offered there
            image.select(on_click, [prompts, kind], [prompts, summary], api_visibility="private")
            image.change(start_afresh, [image], [prompts, summary, pad, result], api_visibility="private")
            clear.click(lambda picture: start_afresh(picture)[:3], [image], [prompts, summary, pad],
                        api_visibility="private")
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
            lseg_image.change(lambda picture: (None, ""), [lseg_image], [lseg_result, lseg_summary],
                              api_visibility="private")
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seem_hf.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to serve on (default: %(default)s, this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="the port to serve on (default: %(default)s)")
    parser.add_argument("--seem", type=Path, default=DEFAULTS["seem"], metavar="FOLDER",
                        help=f"the SEEM checkpoint folder (default: the embedded {DEFAULTS['seem'].name})")
    parser.add_argument("--lseg", type=Path, default=DEFAULTS["lseg"], metavar="FOLDER",
                        help=f"the LSeg checkpoint folder (default: the embedded {DEFAULTS['lseg'].name})")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(Segmenters(arguments.seem, arguments.lseg), example_image())
    app.launch(server_name=arguments.host, server_port=arguments.port)


if __name__ == "__main__":
    main()
