"""SEEM's visual prompts as masks: user prompts given in image coordinates rasterised onto the model's padded input,
random prompts drawn from a target mask for training (SEEM's visual sampler), and the corrective-click simulator
used in training and for NoC evaluation.

Every prompt becomes a binary mask over the padded input, one channel per object: a click is a 3 x 3 square (the
click simulator's dilation), a scribble a 3-pixel-wide polyline, a polygon its filled area, a mask itself, and a
box one click at the point inside it farthest from its border (its centre), as SEEM reduces boxes.
"""

from __future__ import annotations

import random

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

STROKE_WIDTH = 3  # STROKE_SAMPLER.DILATION


def _mapped(points, scale_y, scale_x):
    """Image coordinates (x, y) -> resized-image coordinates (pixel centres stay pixel centres)."""
    return [((x + 0.5) * scale_x - 0.5, (y + 0.5) * scale_y - 0.5) for x, y in points]


def _check_points(points, image_size, what):
    """`points` as a list of finite (x, y) inside the image, or a `ValueError` naming the problem. Pixel centres are
    at integer coordinates, so the image spans half a pixel beyond them on each side ([-0.5, width - 0.5], as
    matplotlib shows an image); a point in that outer half of a border pixel is moved to the pixel's centre."""
    height, width = image_size
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"{what} must be a non-empty list of (x, y) points (numbers), got {points!r}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: points must be finite numbers, got {points!r}.")
    outside = [tuple(p) for p in array.tolist() if not (-0.5 <= p[0] <= width - 0.5 and -0.5 <= p[1] <= height - 0.5)]
    if outside:
        raise ValueError(f"{what}: points {outside} lie outside the image (width {width}, height {height}; x in "
                         f"[0, {width - 1}], y in [0, {height - 1}], pixel centres, up to half a pixel beyond).")
    return np.clip(array, 0, [width - 1, height - 1]).tolist()


def _check_box(box, image_size) -> np.ndarray:
    """A box (x0, y0, x1, y1) as a float array, or a `ValueError` naming the problem. Its corners may lie on the
    image's outer edges, (0, 0, width, height) being the whole image, as COCO and detectors give boxes."""
    height, width = image_size
    try:
        array = np.asarray(box, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (4,) or not np.isfinite(array).all() or array[2] < array[0] or (
            array[3] < array[1]):
        raise ValueError(f"box must be (x0, y0, x1, y1), finite, with x0 <= x1 and y0 <= y1, got {box!r} (a box "
                         "(x, y, width, height) is (x, y, x + width, y + height)).")
    if array[0] < -0.5 or array[1] < -0.5 or array[2] > width or array[3] > height:
        raise ValueError(f"box {box!r} reaches outside the image (width {width}, height {height}; x in [0, {width}], "
                         f"y in [0, {height}]).")
    return array


def _draw_clicks(draw, points):
    for x, y in points:
        column, row = int(round(x)), int(round(y))
        draw.rectangle([column - 1, row - 1, column + 1, row + 1], fill=1)


def _binary_mask(mask, key: str) -> np.ndarray:
    """A prompt mask as bool: bool and integer masks are their nonzero pixels (0/1 or 0/255), float masks (soft
    masks, probabilities) their pixels above 0.5, as SEEM thresholds its own mask probabilities."""
    if hasattr(mask, "detach"):  # a torch tensor
        mask = mask.detach().cpu().float().numpy() if mask.is_floating_point() else mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype.kind == "f":
        if mask.size and not (np.isfinite(mask).all() and mask.min() >= 0 and mask.max() <= 1):
            raise ValueError(f"{key}: a float mask holds probabilities in [0, 1] (pixels above 0.5 are the prompt), "
                             f"got values in [{mask.min()}, {mask.max()}]. Give a bool mask for other encodings.")
        return mask > 0.5
    if mask.dtype.kind not in "biu":
        raise ValueError(f"{key} must be a bool, integer or float array of the image's size, got dtype {mask.dtype}.")
    return mask.astype(bool)


def rasterize_prompt(prompt: dict, image_size, resized_size, padded_size) -> tuple[np.ndarray, np.ndarray]:
    """One object's prompt -> (positive, negative) bool masks of `padded_size`.

    `prompt` keys, all optional, coordinates in pixels of the original image (x right, y down): `points`,
    `negative_points` (lists of (x, y)); `box` (x0, y0, x1, y1); `scribbles`, `negative_scribbles` (lists of
    polylines); `polygons` (lists of (x, y) vertices); `mask`, `negative_mask` (arrays of the image's size: bool or
    integer masks mark their nonzero pixels, float masks, such as probabilities on [0, 1], their pixels above 0.5).
    """
    known = {"points", "negative_points", "box", "scribbles", "negative_scribbles", "polygons", "mask",
             "negative_mask"}
    if not isinstance(prompt, dict) or not prompt or set(prompt) - known:
        raise ValueError(f"A visual prompt is a dict with keys among {sorted(known)}, got {prompt!r}.")
    height, width = image_size
    scale_y, scale_x = resized_size[0] / height, resized_size[1] / width
    canvases = {sign: PIL.Image.new("1", (padded_size[1], padded_size[0])) for sign in ("positive", "negative")}
    draws = {sign: PIL.ImageDraw.Draw(canvas) for sign, canvas in canvases.items()}
    for sign, prefix in (("positive", ""), ("negative", "negative_")):
        if prompt.get(prefix + "points") is not None:
            _draw_clicks(draws[sign], _mapped(_check_points(prompt[prefix + "points"], image_size, prefix + "points"),
                                              scale_y, scale_x))
        for stroke in prompt.get(prefix + "scribbles") or ():
            mapped = _mapped(_check_points(stroke, image_size, prefix + "scribbles"), scale_y, scale_x)
            draws[sign].line(mapped if len(mapped) > 1 else mapped * 2, fill=1, width=STROKE_WIDTH)
            _draw_clicks(draws[sign], mapped[:1] + mapped[-1:])  # PIL leaves the ends of wide lines open
    if prompt.get("box") is not None:
        box = _check_box(prompt["box"], image_size)
        centre = _check_points([((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)], image_size, "box")
        _draw_clicks(draws["positive"], _mapped(centre, scale_y, scale_x))
    for polygon in prompt.get("polygons") or ():
        vertices = _check_points(polygon, image_size, "polygons")
        if len(vertices) < 3:
            raise ValueError(f"A polygon needs at least 3 vertices, got {polygon!r}.")
        draws["positive"].polygon(_mapped(vertices, scale_y, scale_x), fill=1, outline=1)
    masks = {sign: np.array(canvas, dtype=bool) for sign, canvas in canvases.items()}
    for sign, key in (("positive", "mask"), ("negative", "negative_mask")):
        if prompt.get(key) is None:
            continue
        mask = _binary_mask(prompt[key], key)
        if mask.shape != tuple(image_size):
            raise ValueError(f"{key} must have the image's size {tuple(image_size)}, got {mask.shape}.")
        resized = PIL.Image.fromarray(mask).resize((resized_size[1], resized_size[0]), PIL.Image.NEAREST)
        masks[sign][: resized_size[0], : resized_size[1]] |= np.array(resized, dtype=bool)
    if not masks["positive"].any():
        raise ValueError(f"The visual prompt {sorted(prompt)} marks no positive pixel: give points, a box, "
                         "scribbles, polygons or a mask.")
    return masks["positive"], masks["negative"]


# ------------------------------------------------------------------------------------------------ training sampler
def _stroke(mask: np.ndarray, rng: random.Random, points: list[tuple[float, float]], closed: bool) -> np.ndarray:
    canvas = PIL.Image.new("1", (mask.shape[1], mask.shape[0]))
    draw = PIL.ImageDraw.Draw(canvas)
    draw.line(points + points[:1] if closed else points, fill=1, width=STROKE_WIDTH)
    return np.array(canvas, dtype=bool) & mask


def sample_visual_prompt(mask: np.ndarray, rng: random.Random) -> np.ndarray:
    """A random visual prompt inside a target mask `(H, W)`, in the manner of SEEM's training sampler: with equal
    probability 1-20 clicked pixels, a filled polygon of up to 9 of its pixels, a scribble (a random walk between
    its pixels), or a circle around an inner point; strokes are 3 pixels wide and clipped to the mask. An empty
    mask gives an empty prompt."""
    rows, columns = np.nonzero(mask)
    if len(rows) == 0:
        return np.zeros_like(mask, dtype=bool)
    pick = lambda count: [(float(columns[i]), float(rows[i])) for i in  # noqa: E731
                          (rng.randrange(len(rows)) for _ in range(count))]
    kind = rng.choice(("point", "polygon", "scribble", "circle"))
    if kind == "point":
        prompt = np.zeros_like(mask, dtype=bool)
        for x, y in pick(rng.randint(1, 20)):
            prompt[int(y), int(x)] = True
        return prompt
    if kind == "polygon":
        canvas = PIL.Image.new("1", (mask.shape[1], mask.shape[0]))
        PIL.ImageDraw.Draw(canvas).polygon(pick(rng.randint(3, 9)), fill=1, outline=1)
        prompt = np.array(canvas, dtype=bool) & mask
    elif kind == "scribble":
        prompt = _stroke(mask, rng, pick(rng.randint(2, 5)), closed=False)
    else:
        (x, y), = pick(1)
        radius = max(2.0, 0.25 * np.sqrt(len(rows)))
        steps = [2 * np.pi * i / 16 for i in range(16)]
        prompt = _stroke(mask, rng, [(x + radius * np.cos(t), y + radius * np.sin(t)) for t in steps], closed=True)
    if not prompt.any():  # a stroke can miss a thin mask entirely: fall back to one click
        x, y = pick(1)[0]
        prompt[int(y), int(x)] = True
    return prompt


# ------------------------------------------------------------------------------------------------- click simulator
def next_click(prediction: torch.Tensor, target: torch.Tensor, clicked: torch.Tensor):
    """SEEM's corrective click for one object (all `(H, W)` bool): the larger of the false-negative and
    false-positive regions (not yet clicked) decides the sign, and the click goes where that region is farthest
    from its border (a distance-transform maximum), as a 3 x 3 square. Returns `(click_mask, is_positive)`, or
    `None` when there is no error left. With an empty prediction this is the first click: the target's innermost
    point."""
    from scipy.ndimage import distance_transform_edt  # training and evaluation only: the model loads without scipy

    false_negative = target & ~prediction & ~clicked
    false_positive = ~target & prediction & ~clicked
    positive = bool(false_negative.sum() > false_positive.sum())
    region = (false_negative if positive else false_positive).cpu().numpy()
    if not region.any():
        return None
    distance = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    row, column = np.unravel_index(int(distance.argmax()), distance.shape)
    click = torch.zeros_like(target)
    click[max(0, row - 1) : row + 2, max(0, column - 1) : column + 2] = True
    return click, positive


def add_corrective_clicks(predictions, targets, positive, negative, stop_iou: float = 0.925) -> torch.Tensor:
    """One round of SEEM's click protocol for the objects of one image (all `(N, H, W)`): each object whose target
    is not empty and whose predicted mask is below `stop_iou` IoU gets a `next_click`, added in place to `positive`
    or `negative`. Returns the IoUs `(N,)` before the clicks (1 where prediction and target are both empty)."""
    targets = targets.bool().to(predictions.device)
    intersection = (predictions & targets).flatten(1).sum(1).double()
    union = (predictions | targets).flatten(1).sum(1).double()
    ious = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    for index in range(len(targets)):
        if ious[index] >= stop_iou or not targets[index].any():
            continue
        click = next_click(predictions[index], targets[index], positive[index] | negative[index])
        if click is not None:
            (positive if click[1] else negative)[index] |= click[0]
    return ious


__all__ = ["STROKE_WIDTH", "add_corrective_clicks", "next_click", "rasterize_prompt", "sample_visual_prompt"]
