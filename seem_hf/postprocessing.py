"""Mask post-processing shared by every seem_hf model: pure functions over class and mask logits.

Inputs are the per-query outputs of a mask-classification model: `class_logits` (batch, queries, labels + 1),
the last label being "no object", and `mask_logits` (batch, queries, height, width). Results use transformers'
formats, so the image processors can hand them to `pipeline("image-segmentation")` unchanged:

- semantic: a (height, width) tensor of label ids per image;
- instance and panoptic: `{"segmentation": (height, width) int32 segment ids, "segments_info": [{"id",
  "label_id", "was_fused", "score"}]}`, ids starting at 1, 0 where no segment won, and -1 everywhere when no
  query passed the score threshold.

Two panoptic rules are offered:

- `panoptic_segmentation` (MaskFormer rule, the one transformers' DETR and Mask2Former processors use): keep
  queries whose best non-void score exceeds `threshold` (0.5); weigh each kept query's mask probabilities by
  its score; give every pixel to the query of highest weighted probability; keep a query's segment when the
  pixels it won are more than `overlap_mask_area_threshold` (0.8) of its own mask (weighted probability
  >= `mask_threshold`, 0.5), so that a mask mostly hidden behind others does not leave a sliver; fuse the
  segments of labels in `label_ids_to_fuse`.
- `detr_panoptic_segmentation` (the original DETR `PostProcessPanoptic`, with which DETR's PQ 43.4 was
  measured, reproduced step by step and tested against a transcription of it): keep queries whose score exceeds
  0.85; give every pixel of the processed size to the kept query of highest mask logit; resize that id map to
  the target size with PIL's nearest neighbour; drop queries of at most `min_area` (4) pixels and repeat until
  none is that small. The original merges the later queries of a stuff label into the first only in its first
  pass, which in effect drops them (see the function).

The MaskFormer rule's results equal transformers' (tested) with one fix: transformers lists a fused segment once
for every query that joined it and, after a fusion, can give the next segment an id already in use; here every
segment is listed once, with its own id. Where the target size differs from the mask size, values at segment
boundaries are interpolated here rather than by torch's resize and can differ from it in the last bit, so a
pixel whose two best queries tie within about 1e-6 may go to the other one (1 pixel in 852,800 in the
benchmark). The work is vectorised: the argmax over queries and the thresholded areas are read off 2x2 windows
of the low-resolution masks, and only boundary pixels are interpolated (see `_resized_argmax`); for semantic
maps, only the labels that can win somewhere are considered (see `_labels_that_can_win`).

Every threshold argument is checked (a number in [0, 1], `top_k` a whole number >= 1) with an error that names it;
a threshold given as None is not given: the rule's default applies (`check_threshold`'s `default`).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_outputs import SemanticSegmentationPostProcessorOutput
from transformers.utils import ModelOutput

# Defaults, named after the papers that set them.
MASKFORMER_SCORE_THRESHOLD = 0.5
MASKFORMER_MASK_THRESHOLD = 0.5
MASKFORMER_OVERLAP_THRESHOLD = 0.8
DETR_PANOPTIC_SCORE_THRESHOLD = 0.85
DETR_PANOPTIC_MIN_AREA = 4


class UnusedThresholdWarning(UserWarning):
    """A threshold was given to a rule that has none of that kind (DETR's own panoptic rule has no mask or overlap
    threshold): it changed nothing. The pipelines, which always pass transformers' defaults, name the thresholds a
    user gave in a warning of their own and silence this one."""


def model_outputs(outputs):
    """The outputs `post_process_*` read, by field name: a `ModelOutput` as the model returns it, or a mapping of its
    fields (`dict(outputs)`, outputs gathered or saved as a dict), read as one; other objects pass as they are. A
    tuple (the model called with `return_dict=False`) has no names to read, and is refused with the fix."""
    if isinstance(outputs, ModelOutput):
        return outputs
    if isinstance(outputs, Mapping):
        return ModelOutput(dict(outputs))
    if isinstance(outputs, (tuple, list)):
        raise TypeError(
            f"Post-processing reads the model's outputs by name, but got a {type(outputs).__name__} (the model was "
            "called with return_dict=False, or its outputs were turned into one): pass the model's output object "
            "(return_dict=True, the default), or a dict of its fields."
        )
    return outputs


def check_threshold(name: str, value, low: float = 0.0, high: float = 1.0, default: float | None = None) -> float:
    """`value` as a float, or an error naming the argument `name` when it is not a real number in [low, high]
    (every threshold of post-processing is a probability or a fraction of an area). None is "not given" where the
    rule has a `default`, which is returned: a wrapper that forwards its own optional arguments passes None, as
    transformers' pipelines do."""
    if value is None and default is not None:
        value = default
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number between {low:g} and {high:g}, got {type(value).__name__} {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}.")
    return float(value)


def check_top_k(top_k) -> int:
    """`top_k` as an int, or an error when it is not a whole number >= 1."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"top_k must be a whole number >= 1, got {type(top_k).__name__} {top_k!r}.")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}.")
    return int(top_k)


def check_label_ids(label_ids, num_labels: int, name: str = "label_ids_to_fuse") -> set[int]:
    """`label_ids` (an iterable of whole numbers, such as `label_ids_to_fuse`) as a set of ints, or an error naming
    the argument unless every id is a label of the model's `num_labels` (0 to num_labels - 1)."""
    if label_ids is None:
        return set()
    if isinstance(label_ids, (str, bytes)) or not isinstance(label_ids, Iterable):
        raise TypeError(f"{name} takes a list of label ids (whole numbers), got {label_ids!r}; for label names, "
                        "look their ids up in id2label.")
    if isinstance(label_ids, torch.Tensor):
        label_ids = label_ids.flatten().tolist()
    ids = set()
    for label in label_ids:
        if isinstance(label, torch.Tensor) and label.numel() == 1:
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(f"{name} takes label ids (whole numbers), got {label!r} in {label_ids!r}; for label "
                            "names, look their ids up in id2label.")
        if not 0 <= label < num_labels:
            raise ValueError(f"{name} has {label}, which is not a label id of these outputs: ids are 0 to "
                             f"{num_labels - 1} ({num_labels} labels).")
        ids.add(int(label))
    return ids


def check_sizes(sizes, batch: int, name: str = "target_sizes") -> None:
    """One positive (height, width) per image, or an error naming the argument `name`."""
    if sizes is None:
        return
    if isinstance(sizes, torch.Tensor) and sizes.ndim == 1 or (
        not isinstance(sizes, torch.Tensor) and len(sizes) == 2 and all(isinstance(v, numbers.Integral) for v in sizes)
    ):
        raise ValueError(f"{name} takes one (height, width) per image, e.g. [(480, 640)]; got {sizes!r}.")
    if len(sizes) != batch:
        raise ValueError(f"Got {len(sizes)} {name} for a batch of {batch}: pass one (height, width) per image.")
    for size in sizes:
        if len(size) != 2:
            raise ValueError(f"Each of {name} must be (height, width), got {tuple(size)}.")
        height, width = (int(v) for v in size)
        if height <= 0 or width <= 0:
            raise ValueError(f"Target sizes must be positive (height, width): {name} has {tuple(size)}.")


def check_orientation(target_sizes, read_sizes, slack: int = 1, first_index: int = 0) -> None:
    """A `ValueError` when a target size is the transpose of the size the model read the image at: (width, height)
    instead of (height, width), most often PIL's `image.size[::-1]` of a photo with an EXIF orientation, which the
    processors turn upright (PIL's `size` is the size as stored). `read_sizes` are each image's (height, width) as
    the model read it (after resizing, so only the aspect ratio is compared); `slack` is how many pixels each side
    may be off by the processor's rounding (32 where sides are rounded to multiples of 32). A target is refused
    only when its aspect ratio fits the transpose and not the image, so a square-ish image, whose two aspect ratios
    rounding cannot tell apart, is never refused. `first_index` numbers the images in the
    error when the sizes are a slice of a batch."""
    if target_sizes is None or read_sizes is None:
        return
    for index, (target, read) in enumerate(zip(target_sizes, read_sizes), start=first_index):
        (height, width), (read_height, read_width) = (tuple(int(v) for v in size) for size in (target, read))
        if min(height, width, read_height, read_width) <= 0:
            continue
        aspect, read_aspect = np.log(height / width), np.log(read_height / read_width)
        # how far rounding can move the log aspect ratio: each side of the read size off by `slack`, of the
        # target by 1 pixel, and 2% for resizing conventions
        tolerance = 0.02 + slack / read_height + slack / read_width + 1 / height + 1 / width
        if abs(aspect + read_aspect) <= tolerance < abs(aspect - read_aspect):
            raise ValueError(
                f"target_sizes[{index}] is {(height, width)} (height, width), but the model read that image "
                f"{'taller' if read_aspect > 0 else 'wider'} than that ({read_height}x{read_width} after resizing): "
                "the target size is transposed. A photo with an EXIF orientation is read upright while PIL's "
                "`image.size[::-1]` is its size as stored; target sizes are (height, width). Pass "
                "`seem_hf.image_utils.image_size(image)` for each image."
            )


def _all_finite(values: torch.Tensor) -> bool:
    """Whether every value is finite. A NaN or infinity anywhere makes the sum non-finite, and the sum is ~40x
    cheaper than an element-wise test of a (queries, h, w) stack; the element-wise test runs only when the sum
    is not finite (a NaN, or finite values whose sum overflows)."""
    return bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())


def _check_outputs(class_logits: torch.Tensor, mask_logits: torch.Tensor, target_sizes) -> None:
    if class_logits.ndim != 3 or mask_logits.ndim != 4:
        raise ValueError(
            "Expected class logits (batch, queries, labels + 1) and mask logits (batch, queries, height, width), "
            f"got shapes {tuple(class_logits.shape)} and {tuple(mask_logits.shape)}."
        )
    if class_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(
            f"Class logits {tuple(class_logits.shape)} and mask logits {tuple(mask_logits.shape)} disagree on "
            "batch size or number of queries."
        )
    if class_logits.shape[-1] < 2:
        raise ValueError("Class logits need at least one label besides the final 'no object' entry.")
    for name, logits in (("class", class_logits), ("mask", mask_logits)):
        if not _all_finite(logits):
            raise ValueError(f"The {name} logits contain NaN or infinite values; check the model's inputs and dtype.")
    check_sizes(target_sizes, class_logits.shape[0], "target_sizes")


def check_outputs(class_logits: torch.Tensor, mask_logits: torch.Tensor, target_sizes=None) -> None:
    """A `ValueError` naming the problem unless `class_logits` (batch, queries, labels + 1) and `mask_logits`
    (batch, queries, height, width) agree, are finite, and `target_sizes` has one (height, width) per image."""
    _check_outputs(class_logits, mask_logits, target_sizes)


def _target_size(target_sizes, index: int, mask_logits: torch.Tensor) -> tuple[int, int]:
    if target_sizes is None:
        return tuple(mask_logits.shape[-2:])
    return tuple(int(v) for v in target_sizes[index])


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (channels, h, w) maps, as transformers does (align_corners=False)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]


def _windows(maps: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The 2x2 source windows of a bilinear resize of `maps` (channels, h, w): the maps with their last row
    and column repeated (the resize clamps at the border), and its four corner views, each (channels, h, w)."""
    height, width = maps.shape[-2:]
    padded = torch.cat([maps, maps[:, -1:]], dim=1)
    padded = torch.cat([padded, padded[:, :, -1:]], dim=2)
    return padded, [padded[:, dy : dy + height, dx : dx + width] for dy in (0, 1) for dx in (0, 1)]


def _window_max(corners: list[torch.Tensor]) -> torch.Tensor:
    return torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))


def _labels_that_can_win(scores: torch.Tensor, slack: float = 1e-5) -> torch.Tensor:
    """Indices of the channels of `scores` (channels, h, w) that can be the per-pixel maximum after a
    bilinear resize to any size.

    A bilinearly resized pixel is a convex combination, with weights w_i, of a 2x2 window of source pixels i,
    so a channel's resized value is at most its maximum over the window. For the set S of channels that win
    one of the window's pixels, the winning value is at least
    max_{c in S} sum_i w_i v_ci >= (1/|S|) sum_i w_i sum_{c in S} v_ci >= (1/|S|) min_i sum_{c in S} v_ci,
    a floor that stays high inside a confident region and on the boundary between two. A channel whose
    window maximum is below the floor in every window never wins, and resizing it is wasted work. Channels
    are first screened against the lowest floor with their global maximum (one cheap pass), and only the
    survivors are tested window by window. `slack` widens the tests by a relative margin, so that rounding in
    the interpolation weights cannot exclude a true winner.
    """
    padded, corners = _windows(scores)
    _, corner_best = _windows(scores.max(0).indices[None])  # each window's 4 winners, (1, h, w) each
    distinct = [torch.ones_like(corner_best[0][0], dtype=torch.bool)]
    for j in range(1, 4):
        distinct.append(torch.stack([corner_best[j][0] != corner_best[k][0] for k in range(j)]).all(0))
    set_sums = []  # per window pixel: the sum of S's values there
    for values in corners:
        total = values.gather(0, corner_best[0])[0]
        for j in range(1, 4):
            total = total + values.gather(0, corner_best[j])[0] * distinct[j]
        set_sums.append(total)
    floor = torch.stack(set_sums).min(0).values / torch.stack(distinct).sum(0)
    floor = floor - slack * floor.abs()

    survivors = (scores.amax((1, 2)) >= floor.min()).nonzero().flatten()
    window_max = _window_max([values[survivors] for values in corners])
    can_win = (window_max >= floor).flatten(1).any(1)
    return survivors[can_win]


def _source_pixels(size_in: int, size_out: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output row (or column) of a bilinear resize with align_corners=False: the first source index
    of its 2-pixel window and the weight of the second pixel."""
    source = ((torch.arange(size_out, dtype=torch.float64, device=device) + 0.5) * (size_in / size_out) - 0.5).clamp(
        min=0
    )
    first = source.floor().long().clamp(max=size_in - 1)
    return first, (source - first).float()


@dataclass
class _ResizedArgmax:
    """The per-pixel argmax of maps resized to a target size, stored without the full-size map: the
    low-resolution argmax of the windows that decide every pixel they cover (`window_owner` where `decided`),
    and the owners of the other pixels, listed one by one."""

    window_owner: torch.Tensor  # (h, w)
    decided: torch.Tensor  # (h, w) bool
    pixels_per_window: torch.Tensor  # (h, w) int64
    rows: torch.Tensor  # (H,) source window row of each output row
    cols: torch.Tensor  # (W,)
    pixel_rows: torch.Tensor  # (n,) output pixels whose owner was computed one by one
    pixel_cols: torch.Tensor
    pixel_owner: torch.Tensor

    def counts(self, length: int) -> torch.Tensor:
        """How many output pixels each index owns."""
        weights = self.pixels_per_window[self.decided].to(torch.float64)
        counts = torch.bincount(self.window_owner[self.decided], weights=weights, minlength=length).round().long()
        return counts + torch.bincount(self.pixel_owner, minlength=length)

    def map(self, lookup: torch.Tensor) -> torch.Tensor:
        """The full-size map of `lookup[owner]`."""
        result = lookup[self.window_owner].index_select(0, self.rows).index_select(1, self.cols)
        result[self.pixel_rows, self.pixel_cols] = lookup[self.pixel_owner]
        return result


def _resized_argmax(
    maps: torch.Tensor, size: tuple[int, int], threshold: float | None = None, margin: float = 1e-5
) -> tuple[_ResizedArgmax, torch.Tensor | None]:
    """The per-pixel argmax of `maps` (queries, h, w) resized bilinearly to `size` and, per query, the number of
    resized pixels >= `threshold` (None when no threshold is given); equal to resizing then reducing, without
    resizing.

    Every resized pixel is a convex combination of a 2x2 window of source pixels, so a window where one
    query's minimum beats every other query's maximum (by `margin`) is owned by that query at every pixel it
    covers, and a query whose window minimum (maximum) clears (misses) the threshold by `margin` is above
    (below) it there. Only pixels of the remaining windows, the boundaries, are interpolated one by one.
    The values computed there may differ from torch's resize in the last bits, so a result can differ from
    resize-then-argmax only where two queries tie within about 1e-6.
    """
    queries, height, width = maps.shape
    if (height, width) == tuple(size):
        every = torch.arange(height, device=maps.device), torch.arange(width, device=maps.device)
        none = torch.zeros(0, dtype=torch.long, device=maps.device)
        argmax = _ResizedArgmax(
            window_owner=maps.max(0).indices,
            decided=torch.ones((height, width), dtype=torch.bool, device=maps.device),
            pixels_per_window=torch.ones((height, width), dtype=torch.long, device=maps.device),
            rows=every[0],
            cols=every[1],
            pixel_rows=none,
            pixel_cols=none,
            pixel_owner=none,
        )
        return argmax, None if threshold is None else (maps >= threshold).sum((1, 2))
    rows, row_weight = _source_pixels(height, size[0], maps.device)
    cols, col_weight = _source_pixels(width, size[1], maps.device)
    row_counts, col_counts = torch.bincount(rows, minlength=height), torch.bincount(cols, minlength=width)
    pixels_per_window = torch.outer(row_counts, col_counts)
    padded, corners = _windows(maps)
    window_max = _window_max(corners)
    window_min = torch.minimum(torch.minimum(corners[0], corners[1]), torch.minimum(corners[2], corners[3]))

    best_min, best = window_min.max(0)
    runner_up = window_max.scatter(0, best[None], float("-inf")).max(0).values
    decided = best_min >= runner_up + margin
    needs_values = ~decided
    area = None
    if threshold is not None:
        above = window_min >= threshold + margin
        uncertain = ~above & (window_max >= threshold - margin)
        needs_values |= uncertain.any(0)
        area = (above.flatten(1).to(torch.float64) @ pixels_per_window.flatten().to(torch.float64)).round().long()

    # The output pixels of the windows that need values: each window covers a block of rows by columns.
    window_rows, window_cols = needs_values.nonzero(as_tuple=True)
    block_height, block_width = row_counts[window_rows], col_counts[window_cols]
    block_sizes = block_height * block_width
    block = torch.repeat_interleave(torch.arange(len(window_rows), device=maps.device), block_sizes)
    offset = torch.arange(len(block), device=maps.device) - (block_sizes.cumsum(0) - block_sizes)[block]
    first_row, first_col = row_counts.cumsum(0) - row_counts, col_counts.cumsum(0) - col_counts
    y0, x0 = window_rows[block], window_cols[block]
    pixel_rows = first_row[y0] + offset // block_width[block]
    pixel_cols = first_col[x0] + offset % block_width[block]
    wy, wx = row_weight[pixel_rows], col_weight[pixel_cols]
    flat = padded.flatten(1)
    top_left = y0 * (width + 1) + x0

    def corner(dy: int, dx: int) -> torch.Tensor:
        return flat.index_select(1, top_left + dy * (width + 1) + dx)

    top = (1 - wx) * corner(0, 0) + wx * corner(0, 1)
    values = (1 - wy) * top + wy * ((1 - wx) * corner(1, 0) + wx * corner(1, 1))
    if area is not None:
        area += ((values >= threshold) & uncertain[:, y0, x0]).sum(1)
    argmax = _ResizedArgmax(
        window_owner=best,
        decided=decided & ~needs_values,
        pixels_per_window=pixels_per_window,
        rows=rows,
        cols=cols,
        pixel_rows=pixel_rows,
        pixel_cols=pixel_cols,
        pixel_owner=values.max(0).indices if len(block) else block,
    )
    return argmax, area


_RESIZE_BLOCK = 32  # output rows (columns) per block of the banded resize below


@functools.lru_cache(maxsize=64)
def _resize_operator(size: int, padded: int, kept: int, target: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One axis of `crop_and_resize_masks` as a block-banded matrix: output positions `[b * B, (b + 1) * B)`
    (B = `_RESIZE_BLOCK`) are `weights[b] @ input[starts[b] : starts[b] + K]`. Both resizes are separable and linear,
    so the chain is one such matrix per axis; it is read off torch's own `interpolate` applied to the basis vectors
    (one channel per input position, the other axis kept at its size, which both resizes leave as it is), so its
    weights are torch's. That axis has length 2: at length 1 the tensor is also "channels last", and torch's
    antialiased bicubic kernel then reads it wrongly. Returns (window indices `(blocks, K)`, weights
    `(blocks, B, K)`); rows past `target` are zero."""
    basis = torch.eye(size)[None, :, :, None].expand(1, size, size, 2).contiguous()  # channel j: unit vector e_j
    upsampled = F.interpolate(basis, size=(padded, 2), mode="bilinear", align_corners=False)[:, :, :kept]
    resized = F.interpolate(upsampled, size=(target, 2), mode=mode, align_corners=False, antialias=mode == "bicubic")
    matrix = resized[0, :, :, 0].t()  # (target, size)
    blocks = -(-target // _RESIZE_BLOCK)
    matrix = F.pad(matrix, (0, 0, 0, blocks * _RESIZE_BLOCK - target)).view(blocks, _RESIZE_BLOCK, size)
    used = (matrix != 0).any(1)  # (blocks, size): input positions each block reads
    first = torch.where(used.any(1), used.int().argmax(1), 0)
    last = torch.where(used.any(1), size - 1 - used.flip(1).int().argmax(1), 0)
    width = int((last - first).max()) + 1
    starts = first.clamp(max=size - width)
    windows = starts[:, None] + torch.arange(width)
    weights = matrix.gather(2, windows[:, None, :].expand(blocks, _RESIZE_BLOCK, width))
    return windows.contiguous(), weights.contiguous()


def crop_and_resize_masks(
    mask_logits: torch.Tensor,
    padded_size: tuple[int, int],
    image_size: tuple[int, int],
    target_size: tuple[int, int],
    mode: str = "bicubic",
) -> torch.Tensor:
    """SEEM's (Mask2Former's) resize of one image's mask logits `(queries, h, w)`: bilinear to the padded input
    size, crop the padding away (`image_size`, the resized image inside the padded batch), then bicubic with
    antialiasing to `target_size` (the original image); SEEM's interactive answers use `mode="bilinear"`.

    Computed as one banded linear map per axis (`_resize_operator`): columns at the mask resolution, then rows,
    as small matrix products, instead of two full-size resizes; equal to torch's two `interpolate` calls up to
    float rounding (~1e-6 of the logits, tested)."""
    target_size = tuple(int(v) for v in target_size)
    if mask_logits.shape[0] == 0:  # nothing to resize
        return mask_logits.new_zeros((0, *target_size))
    queries, height, width = mask_logits.shape
    device, dtype = mask_logits.device, mask_logits.dtype
    rows, row_weights = (t.to(device) for t in _resize_operator(
        int(height), int(padded_size[0]), int(image_size[0]), target_size[0], mode))
    columns, column_weights = (t.to(device) for t in _resize_operator(
        int(width), int(padded_size[1]), int(image_size[1]), target_size[1], mode))
    # columns: (Q, h, blocks, K) windows x (blocks, B, K) weights -> (Q, h, blocks * B)
    windows = mask_logits.index_select(2, columns.flatten()).view(queries * height, *columns.shape)
    resized = torch.bmm(windows.transpose(0, 1), column_weights.to(dtype).transpose(1, 2))  # (blocks, Q h, B)
    resized = resized.transpose(0, 1).reshape(queries, height, -1)[..., : target_size[1]]
    # rows: (blocks, B, K) weights x (Q, blocks, K, W) windows -> (Q, blocks * B, W)
    windows = resized.index_select(1, rows.flatten()).view(queries, *rows.shape, target_size[1])
    resized = torch.matmul(row_weights.to(dtype), windows).view(queries, -1, target_size[1])
    return resized[:, : target_size[0]]


def semantic_segmentation(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    target_sizes: Sequence[tuple[int, int]] | None = None,
    return_segmentation_scores: bool = False,
) -> list:
    """Per-pixel labels: `argmax_c sum_q softmax(class_q)[c] * sigmoid(mask_q)` over the real labels, after a
    bilinear resize to each target size. With `return_segmentation_scores`, each item is transformers'
    `SemanticSegmentationPostProcessorOutput` with `segmentation` and the resized per-label
    `segmentation_scores` (labels, height, width)."""
    _check_outputs(class_logits, mask_logits, target_sizes)
    class_probs = class_logits.softmax(-1)[..., :-1]
    scores = torch.einsum("bqc,bqhw->bchw", class_probs, mask_logits.sigmoid())
    results = []
    for index in range(scores.shape[0]):
        size = _target_size(target_sizes, index, mask_logits)
        if return_segmentation_scores:
            resized = _resize(scores[index], size)
            results.append(
                SemanticSegmentationPostProcessorOutput(
                    data={"segmentation": resized.max(0).indices, "segmentation_scores": resized}
                )
            )
            continue
        results.append(resized_argmax(scores[index], size))
    return results


_SCREENING_PAYS_ABOVE = 32
"""Channel count above which `resized_argmax` screens out channels that cannot win first: the screen costs about
what it saves at 32 channels with 5 winners, and 2.5x more than it saves at 8 or 16 channels (measured at 256x352 ->
480x640, one thread)."""


def resized_argmax(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The per-pixel argmax over channels of `scores` (channels, h, w) bilinearly resized to `size`
    (align_corners=False), without resizing every channel at full size: only the channels that can win somewhere
    (`_labels_that_can_win`), and only boundary pixels interpolated (`_resized_argmax`). Equal to resize then
    argmax but where two channels tie within about 1e-6."""
    if not _all_finite(scores):  # the window bounds below assume real numbers
        raise ValueError("The logits contain NaN or infinite values; check the model's inputs and dtype.")
    if len(scores) <= _SCREENING_PAYS_ABOVE:
        return _resized_argmax(scores, tuple(size))[0].map(torch.arange(len(scores), device=scores.device))
    candidates = _labels_that_can_win(scores)
    return _resized_argmax(scores[candidates], tuple(size))[0].map(candidates)


def keep_confident_queries(class_logits: torch.Tensor, threshold: float):
    """Per query: (scores, labels, keep), where keep marks queries whose best class is a real
    label with probability above `threshold` (the "no object" class counts in the softmax, as in DETR)."""
    scores, labels = class_logits.softmax(-1).max(-1)
    keep = labels.ne(class_logits.shape[-1] - 1) & (scores > threshold)
    return scores, labels, keep


def _empty_result(size: tuple[int, int], device) -> dict:
    return {"segmentation": torch.full(size, -1, dtype=torch.int32, device=device), "segments_info": []}


def _assign_segment_ids(
    query_labels: Iterable[int], query_scores: Iterable[float], kept: Iterable[bool], label_ids_to_fuse
) -> tuple[list[int], list[dict]]:
    """Give each kept query a segment id (1, 2, ...) in query order; queries of a label in `label_ids_to_fuse`
    share the id of the first one. Returns the id per query (0 for dropped ones) and the segments' info."""
    ids, segments, fused_ids = [], [], {}
    for label, score, keep in zip(query_labels, query_scores, kept):
        if not keep:
            ids.append(0)
            continue
        should_fuse = label in label_ids_to_fuse
        if should_fuse and label in fused_ids:
            ids.append(fused_ids[label])
            continue
        segment_id = len(segments) + 1
        segments.append({"id": segment_id, "label_id": label, "was_fused": should_fuse, "score": round(score, 6)})
        if should_fuse:
            fused_ids[label] = segment_id
        ids.append(segment_id)
    return ids, segments


def _segment_each_image(class_logits, mask_logits, threshold, target_sizes, segment_image) -> list[dict]:
    """The frame both panoptic rules share: check the outputs, keep each image's confident queries and call
    `segment_image(scores, labels, mask_logits, size)` on them; an image with none gets the empty result."""
    _check_outputs(class_logits, mask_logits, target_sizes)
    all_scores, all_labels, all_keep = keep_confident_queries(class_logits, threshold)
    results = []
    for index in range(class_logits.shape[0]):
        size = _target_size(target_sizes, index, mask_logits)
        keep = all_keep[index]
        if keep.any():
            result = segment_image(all_scores[index, keep], all_labels[index, keep], mask_logits[index, keep], size)
        else:
            result = None
        results.append(result or _empty_result(size, mask_logits.device))
    return results


def panoptic_segmentation(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    threshold: float | None = MASKFORMER_SCORE_THRESHOLD,
    mask_threshold: float | None = MASKFORMER_MASK_THRESHOLD,
    overlap_mask_area_threshold: float | None = MASKFORMER_OVERLAP_THRESHOLD,
    label_ids_to_fuse: Iterable[int] | None = None,
    target_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Panoptic (or, with no labels to fuse, instance) segmentation by the MaskFormer rule; see the module
    docstring. Equal to transformers' `post_process_panoptic_segmentation` of DETR and MaskFormer."""
    threshold = check_threshold("threshold", threshold, default=MASKFORMER_SCORE_THRESHOLD)
    mask_threshold = check_threshold("mask_threshold", mask_threshold, default=MASKFORMER_MASK_THRESHOLD)
    overlap_mask_area_threshold = check_threshold("overlap_mask_area_threshold", overlap_mask_area_threshold,
                                                  default=MASKFORMER_OVERLAP_THRESHOLD)
    label_ids_to_fuse = check_label_ids(label_ids_to_fuse, class_logits.shape[-1] - 1)

    def segment_image(scores, labels, masks, size):
        # Resizing is linear, so weighing before the resize gives the same maps.
        weighted = masks.sigmoid() * scores[:, None, None]
        owner, own_area = _resized_argmax(weighted, size, mask_threshold)
        won_area = owner.counts(len(scores))
        ratio = won_area / own_area.clamp(min=1)
        valid = (won_area > 0) & (own_area > 0) & (ratio.double() > overlap_mask_area_threshold)
        ids, segments = _assign_segment_ids(labels.tolist(), scores.tolist(), valid.tolist(), label_ids_to_fuse)
        lookup = torch.tensor(ids, dtype=torch.int32, device=weighted.device)
        return {"segmentation": owner.map(lookup), "segments_info": segments}

    return _segment_each_image(class_logits, mask_logits, threshold, target_sizes, segment_image)


def panoptic_segments_at_full_size(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_logits: torch.Tensor,
    mask_threshold: float = MASKFORMER_MASK_THRESHOLD,
    overlap_mask_area_threshold: float = MASKFORMER_OVERLAP_THRESHOLD,
    label_ids_to_fuse: Iterable[int] | None = None,
) -> dict:
    """`panoptic_segmentation`'s rule for one image whose kept queries (`scores`, `labels`, `(kept, H, W)`
    `mask_logits`) are already at the output size, as SEEM resizes them itself: the same steps as
    `panoptic_segmentation` with no resize, so the same result. `mask_logits` is overwritten (the weighted
    probabilities are computed in place); the caller checks the values (`_check_outputs`) before resizing them."""
    if len(scores) == 0:
        return _empty_result(tuple(mask_logits.shape[-2:]), mask_logits.device)
    weighted = mask_logits.sigmoid_().mul_(scores[:, None, None])
    owner = weighted.max(0).indices
    own_area = (weighted >= mask_threshold).flatten(1).sum(1, dtype=torch.int32).long()  # int32: 2x faster here
    won_area = torch.bincount(owner.flatten(), minlength=len(scores))
    ratio = won_area / own_area.clamp(min=1)
    valid = (won_area > 0) & (own_area > 0) & (ratio.double() > overlap_mask_area_threshold)
    ids, segments = _assign_segment_ids(labels.tolist(), scores.tolist(), valid.tolist(), set(label_ids_to_fuse or ()))
    lookup = torch.tensor(ids, dtype=torch.int32, device=weighted.device)
    return {"segmentation": lookup[owner], "segments_info": segments}


def semantic_segmentation_at_full_size(mask_logits: torch.Tensor, probabilities: torch.Tensor,
                                       strong_labels: int = 32, slack: float = 1e-5) -> torch.Tensor:
    """SEEM's (Mask2Former's) semantic map of one image, `argmax_c sum_q probabilities[q, c] * sigmoid(mask_q)`,
    from mask logits `(queries, H, W)` already at the output size (overwritten: the sigmoid is taken in place) and
    class probabilities `(queries, labels)`; `(H, W)` label ids.

    The (pixels x queries) x (queries x labels) product is most of the work, and few labels win anywhere. So only
    the `strong_labels` labels of highest probability in some query are scored, together with one bound for all
    the others: with `b_q = max_{c weak} p_qc`, every weak label's score is at most `sum_q b_q sigmoid(mask_q)`.
    Where the best strong score beats that bound (by the relative `slack`, so that float rounding cannot decide),
    it is the answer; the other pixels are scored over every label. Ties go to the lower label id, as over all
    labels; as with any change in the order of float sums, two labels within ~1e-6 may swap."""
    queries, height, width = mask_logits.shape
    probabilities = probabilities.to(mask_logits.dtype)
    masks = mask_logits.sigmoid_().flatten(1)
    if probabilities.shape[1] <= strong_labels + 1:
        return (masks.t() @ probabilities).argmax(-1).view(height, width)
    strong = probabilities.amax(0).topk(strong_labels).indices.sort().values
    weak = torch.ones(probabilities.shape[1], dtype=torch.bool, device=probabilities.device)
    weak[strong] = False
    bound = probabilities[:, weak].amax(1, keepdim=True)
    scores = masks.t() @ torch.cat([probabilities[:, strong], bound], 1)
    which = scores[:, :-1].argmax(1)
    best = scores.gather(1, which[:, None])[:, 0]
    labels = strong[which]
    unsure = (scores[:, -1] >= best - slack * best.abs()).nonzero().flatten()
    if len(unsure):
        labels[unsure] = (masks[:, unsure].t() @ probabilities).argmax(-1)
    return labels.view(height, width)


def instance_segmentation(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    threshold: float | None = MASKFORMER_SCORE_THRESHOLD,
    mask_threshold: float | None = MASKFORMER_MASK_THRESHOLD,
    overlap_mask_area_threshold: float | None = MASKFORMER_OVERLAP_THRESHOLD,
    target_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Instance segmentation: the panoptic MaskFormer rule with no label fused, as transformers' DETR does."""
    return panoptic_segmentation(
        class_logits, mask_logits, threshold, mask_threshold, overlap_mask_area_threshold, (), target_sizes
    )


def _nearest_resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's nearest-neighbour resize of a (height, width) id map, as the original DETR resizes its panoptic PNG
    (PIL and torch pick different source pixels, so torch's `nearest` would not do)."""
    if tuple(ids.shape) == tuple(size):
        return ids
    image = Image.fromarray(ids.to(device="cpu", dtype=torch.int32).numpy())
    resized = np.asarray(image.resize((size[1], size[0]), resample=Image.NEAREST))
    return torch.from_numpy(resized.copy()).to(ids.device)


def detr_panoptic_segmentation(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    threshold: float | None = DETR_PANOPTIC_SCORE_THRESHOLD,
    label_ids_to_fuse: Iterable[int] | None = None,
    target_sizes: Sequence[tuple[int, int]] | None = None,
    min_area: int = DETR_PANOPTIC_MIN_AREA,
    processed_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Panoptic segmentation by the original DETR rule (facebookresearch/detr `PostProcessPanoptic`), step by step:

    1. keep the queries whose best class is a real label with probability above `threshold` (0.85);
    2. resize their mask logits bilinearly to the processed size (the model's input size of the image) and give
       every pixel to the query of highest softmax over queries;
    3. first pass only: the pixels of every later query of a stuff label (`label_ids_to_fuse`) go to the first
       query of that label;
    4. resize the id map to the target size with PIL's nearest neighbour and count each query's pixels there;
    5. while some query has at most `min_area` (4) pixels, drop those queries and redo steps 2 and 4 without
       the stuff merge. A later query of a stuff label always has 0 pixels after step 3, so it is always
       dropped and its pixels are recomputed: they go to whichever remaining query wins them, which can be a
       thing. The first query of a stuff label is the only one left of it, so no segment is ever fused in the
       result, although step 3's merged area decides whether that query survives the first pass.

    `processed_sizes` defaults to `target_sizes`, and both to the mask size (the original defaults the target
    size to the processed size). Results are transformers' format: segment ids are the original's plus one
    (the original numbers the surviving queries 0, 1, ... in query order, and panopticapi reads 0 as void), so
    every pixel has a segment id >= 1, and -1 everywhere when no query survives (the original's map is then
    all 0 with no segment). `was_fused` is True for the segments of stuff labels; `score` is the query's class
    probability.
    """
    _check_outputs(class_logits, mask_logits, target_sizes)
    check_sizes(processed_sizes, class_logits.shape[0], "processed_sizes")
    threshold = check_threshold("threshold", threshold, default=DETR_PANOPTIC_SCORE_THRESHOLD)
    if isinstance(min_area, bool) or not isinstance(min_area, numbers.Integral) or min_area < 0:
        raise ValueError(f"min_area must be a whole number of pixels >= 0, got {min_area!r}.")
    label_ids_to_fuse = check_label_ids(label_ids_to_fuse, class_logits.shape[-1] - 1)
    all_scores, all_labels, all_keep = keep_confident_queries(class_logits, threshold)
    results = []
    for index in range(class_logits.shape[0]):
        if processed_sizes is not None:
            processed = tuple(int(v) for v in processed_sizes[index])
        else:
            processed = _target_size(target_sizes, index, mask_logits)
        target = processed if target_sizes is None else tuple(int(v) for v in target_sizes[index])
        keep = all_keep[index]
        if not keep.any():
            results.append(_empty_result(target, mask_logits.device))
            continue
        scores, labels = all_scores[index, keep].tolist(), all_labels[index, keep].tolist()
        masks = F.interpolate(mask_logits[index, keep][None], size=processed, mode="bilinear", align_corners=False)[0]
        first_of_label = {}
        merged_into = torch.tensor(
            [first_of_label.setdefault(label, q) if label in label_ids_to_fuse else q
             for q, label in enumerate(labels)],
            dtype=torch.long, device=masks.device,
        )

        def owners_and_areas(masks: torch.Tensor, merged_into: torch.Tensor | None):
            owner = masks.softmax(0).argmax(0)
            if merged_into is not None:
                owner = merged_into[owner]
            owner = _nearest_resize_ids(owner, target)
            return owner, torch.bincount(owner.flatten(), minlength=len(masks))[: len(masks)]

        owner, area = owners_and_areas(masks, merged_into)
        survivors = torch.arange(len(labels), device=masks.device)
        while len(survivors):
            small = area <= min_area
            if not small.any():
                break
            survivors, masks = survivors[~small], masks[~small]
            if len(survivors):
                owner, area = owners_and_areas(masks, None)
        if not len(survivors):
            results.append(_empty_result(target, mask_logits.device))
            continue
        segments = [
            {"id": rank + 1, "label_id": labels[q], "was_fused": labels[q] in label_ids_to_fuse,
             "score": round(scores[q], 6)}
            for rank, q in enumerate(survivors.tolist())
        ]
        results.append({"segmentation": (owner + 1).to(torch.int32), "segments_info": segments})
    return results


__all__ = [
    "UnusedThresholdWarning",
    "check_label_ids",
    "check_orientation",
    "check_outputs",
    "check_sizes",
    "check_threshold",
    "check_top_k",
    "crop_and_resize_masks",
    "DETR_PANOPTIC_MIN_AREA",
    "DETR_PANOPTIC_SCORE_THRESHOLD",
    "MASKFORMER_MASK_THRESHOLD",
    "MASKFORMER_OVERLAP_THRESHOLD",
    "MASKFORMER_SCORE_THRESHOLD",
    "detr_panoptic_segmentation",
    "model_outputs",
    "instance_segmentation",
    "keep_confident_queries",
    "panoptic_segmentation",
    "panoptic_segments_at_full_size",
    "resized_argmax",
    "semantic_segmentation",
    "semantic_segmentation_at_full_size",
]
