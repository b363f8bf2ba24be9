"""The one image reader of seem_hf: every image processor and pipeline reads its images here.

transformers' PIL backend accepts PIL images, numpy arrays and torch tensors, but reads some of them wrongly without a
word: a float image on [0, 1] is rescaled as if it were on [0, 255] (a black image), a 16-bit PNG or a uint16 array
is clipped to white, the alpha of a PIL image is handled differently by the pipelines and the processors. Here every
image becomes one (height, width, 3) uint8 RGB array by a single rule, or is refused with an error that names the
problem:

- Layout: (H, W), (H, W, C) or (C, H, W) with 1, 3 or 4 channels; a numpy shape that could be either layout, such
  as (3, 4, 3), is (H, W, C) (PIL, OpenCV, imageio), a torch one (C, H, W) (torchvision). A 4-D array or tensor
  is a batch. Grayscale is repeated to RGB; alpha (RGBA arrays, PIL modes RGBA, LA, PA, P or L with transparency)
  is composited onto white, as transformers' `convert_to_rgb` does.
- Values: uint8 as they are; bool as black and white; uint16 (and PIL's 16-bit modes I;16 and I) on their full
  16-bit range, scaled to 8 bits (a warning when no value exceeds 255: such an image reads nearly black); other
  integer dtypes must hold values in [0, 255]; floating dtypes (float16/32/64, bfloat16) are on [0, 1] when every
  value lies in [-0.25, 1.25] (`UNIT_RANGE_SLACK`: values outside [0, 1], the overshoot that bicubic or Lanczos
  resampling leaves, are clipped, with a warning that counts them) and on [0, 255] otherwise, and other values
  (normalised pixel values, for instance) are refused. `do_rescale=False` says, as in transformers, that the images
  are already on [0, 1]: they must then be floating with values in [-0.25, 1.25] (clipped as above). Byte order does
  not matter (big-endian arrays read as native ones).
- `input_data_format` is "channels_first", "channels_last" (or transformers' `ChannelDimension`) or None; the axis
  it names must hold 1, 3 or 4 channels.
- PIL images are turned upright by their EXIF orientation (as transformers' `load_image`) and converted from
  every mode PIL can convert; a file that cannot be read (missing, truncated, not an image) is named in the error,
  and a file of several frames (an animated GIF, a multi-page TIFF) gives its first, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import io
import os
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps

# PIL modes that carry an alpha band (LAB's "A" band is a colour axis, so the bands alone cannot say)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_EXIF_ORIENTATION = 0x0112
# How far a float image may overshoot [0, 1] (resampling ringing) and still be read as an image on [0, 1], clipped.
# Normalised pixel values reach -1 (mean = std = 0.5) or about -2 (ImageNet's), well outside it.
UNIT_RANGE_SLACK = 0.25


def open_image(source, timeout: float | None = None) -> PIL.Image.Image:
    """A path (`str` or `os.PathLike`), an http(s) URL, or base64 image data (optionally a `data:image/...` URI)
    -> a decoded PIL image. Errors name the source: a missing file, a file PIL cannot identify, a truncated one."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(f"Expected a path, a URL or base64 data, got {type(source).__name__}.")
    if source.startswith(("http://", "https://")):
        from huggingface_hub.utils import httpx

        try:
            response = httpx.get(source, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except Exception as error:
            raise ValueError(f"Could not download the image at {source}: {error}") from error
        return _decoded(io.BytesIO(response.content), source)
    if os.path.isfile(source):
        return _decoded(source, source)
    if os.path.isdir(source):
        raise IsADirectoryError(f"{source!r} is a directory, not an image file: give the path of an image (a list of "
                                "paths is a batch).")
    data = source.split(",", 1)[1] if source.startswith("data:image/") else source
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if not raw or len(data) < 16:  # a short string is a mistyped path, not image data
        raise FileNotFoundError(
            f"No image file at {source!r} (it is not an http(s) URL or base64 image data either); check the path."
        )
    return _decoded(io.BytesIO(raw), "the base64 image data")


def _decoded(file, name: str) -> PIL.Image.Image:
    """Open and fully decode (`PIL.Image.open` is lazy, so a truncated file would fail later with no name), then close
    the file: PIL keeps a file of several frames (an animated GIF, a multi-page TIFF) open after decoding one, one
    open file per image read. Such a file gives its first frame, with a warning saying how to read every frame."""
    try:
        with PIL.Image.open(file) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot read the image {name}: {error}") from error
    if frames > 1:
        warnings.warn(
            f"The image {name} holds {frames} frames (an animation or a multi-page file); only the first is read. To "
            "segment every frame, open the file with PIL and pass its frames: "
            "[frame.convert('RGB') for frame in PIL.ImageSequence.Iterator(PIL.Image.open(path))].",
            stacklevel=2,
        )
    return image


def validate_image(image, index: int | None = None):
    """Raise a `ValueError` naming the problem when `image` is not one image the processors can read.

    Accepts a PIL image (any mode), or a numpy array / torch tensor of shape (height, width), (height, width,
    channels) or (channels, height, width) with 1, 3 or 4 channels and finite numeric or bool values. Returns the
    image unchanged; `read_image` applies the value rule.
    """
    where = "" if index is None else f" (image {index})"
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Empty image{where}: size {image.size}.")
        return image
    if not (isinstance(image, np.ndarray) or _is_tensor(image)):
        if isinstance(image, (str, os.PathLike)):
            hint = " (the pipelines and processors read paths and URLs; here, open the file with PIL.Image.open)"
        elif isinstance(image, (bytes, bytearray, memoryview)):
            hint = " (for the encoded bytes of an image file, PIL.Image.open(io.BytesIO(data)))"
        else:
            hint = " (or a path or URL where the pipeline accepts one)"
        raise ValueError(
            f"Unsupported image type {type(image).__name__}{where}: expected a PIL image, a numpy array or a torch "
            f"tensor{hint}."
        )
    shape = tuple(image.shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"An image must have 2 or 3 dimensions (H, W), (H, W, C) or (C, H, W); got shape {shape}{where}. "
            "Pass a batch as a list of images."
        )
    if 0 in shape:
        raise ValueError(f"Empty image{where}: shape {shape}.")
    if len(shape) == 3 and shape[0] not in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        raise ValueError(f"Images must have 1, 3 or 4 channels (first or last axis); got shape {shape}{where}.")
    values = _as_numpy(image)
    if values.dtype != np.bool_ and not (np.issubdtype(values.dtype, np.integer)
                                         or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"Image values must be numbers or bool, got dtype {image.dtype}{where}.")
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise ValueError(f"Image contains NaN or infinite values{where}.")
    return image


def _is_tensor(image) -> bool:
    return type(image).__module__.split(".")[0] == "torch" and hasattr(image, "shape")


def _as_numpy(image) -> np.ndarray:
    """A numpy view of an array or tensor (bfloat16, which numpy lacks, and float16 become float32)."""
    if isinstance(image, np.ndarray):
        image = np.asarray(image)  # subclasses (np.matrix keeps two dimensions through every reshape) as plain arrays
        return image.astype(np.float32) if image.dtype == np.float16 else image
    import torch

    tensor = image.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.numpy()


def _ambiguous(shape) -> bool:
    """A 3-D shape whose first and last axes could both be channels, e.g. (3, 4, 3) or (1, 1, 3)."""
    return len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] in (1, 3, 4)


_DATA_FORMATS = ("channels_first", "channels_last")


def _data_format(input_data_format) -> str | None:
    """`input_data_format` as "channels_first", "channels_last" or None (transformers' `ChannelDimension` or its
    string), or an error naming the accepted values."""
    if input_data_format is None:
        return None
    value = str(getattr(input_data_format, "value", input_data_format))
    if value not in _DATA_FORMATS:
        raise ValueError(f"input_data_format must be one of {_DATA_FORMATS} (or None to infer it from the shape), "
                         f"got {input_data_format!r}.")
    return value


def _channels_first(image, input_data_format=None) -> bool:
    """Whether a 3-D array or tensor is (C, H, W): as told by `input_data_format`, else by its shape, an ambiguous
    shape being (H, W, C) for numpy and (C, H, W) for torch. A format whose channel axis cannot be one (not 1, 3 or
    4 entries) is an error."""
    shape = tuple(image.shape)
    data_format = _data_format(input_data_format)
    if data_format is not None:
        first = data_format == "channels_first"
        if len(shape) == 3 and shape[0 if first else -1] not in (1, 3, 4):
            raise ValueError(
                f"input_data_format={data_format!r} says the {'first' if first else 'last'} axis holds the channels, "
                f"but the image has shape {shape}: channels are 1, 3 or 4. Pass the other format, or leave "
                "input_data_format out to infer it from the shape."
            )
        return first
    if _ambiguous(shape):
        return not isinstance(image, np.ndarray)
    return shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4)


def _upright(image: PIL.Image.Image) -> PIL.Image.Image:
    """The image turned by its EXIF orientation tag (a photo as its camera meant it), as transformers' `load_image`."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # unreadable EXIF: the pixels as stored
        return image
    return PIL.ImageOps.exif_transpose(image) if orientation not in (None, 1) else image


def image_size(image, input_data_format=None) -> tuple[int, int]:
    """(height, width) of one PIL image, numpy array or torch tensor as `read_image` reads it (PIL images upright by
    their EXIF orientation; an ambiguous numpy shape is (H, W, C)), without reading the pixels. A path, URL or
    base64 string (which the pipelines and processors read) is opened for it: a local file's header only."""
    if isinstance(image, (str, os.PathLike)):
        if os.path.isfile(image):
            try:
                with PIL.Image.open(image) as header:  # lazy: the size and EXIF, not the pixels
                    return image_size(header)
            except (OSError, SyntaxError, ValueError) as error:
                raise ValueError(f"Cannot read the image {os.fspath(image)}: {error}") from error
        return image_size(open_image(image))
    if isinstance(image, PIL.Image.Image):
        try:
            turned = image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
        except Exception:
            turned = False
        return (image.width, image.height) if turned else (image.height, image.width)
    shape = tuple(int(side) for side in image.shape)
    if len(shape) == 3 and _channels_first(image, input_data_format):
        return shape[1], shape[2]
    return shape[0], shape[1]


def _values_to_uint8(values: np.ndarray, what: str, unit_range: bool = False, sixteen_bit: bool = False) -> np.ndarray:
    """Pixel values of any dtype -> uint8 by the module's rule (see the module docstring)."""
    if values.dtype.byteorder not in ("=", "|"):  # big-endian arrays: the dtype tests below compare native types
        values = values.astype(values.dtype.newbyteorder("="))
    dtype = values.dtype
    if dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    floating = np.issubdtype(dtype, np.floating)
    in_unit_range = floating and low >= -UNIT_RANGE_SLACK and high <= 1 + UNIT_RANGE_SLACK
    if unit_range:
        if not in_unit_range:
            raise ValueError(
                f"do_rescale=False says the images are already on [0, 1], but {what} has dtype {dtype} and values in "
                f"[{low}, {high}]. Leave do_rescale at its default for images on [0, 255]."
            )
        return _unit_to_uint8(values, what, low, high)
    if dtype == np.uint8:
        return values
    if floating:
        if in_unit_range:
            return _unit_to_uint8(values, what, low, high)
        if low >= 0 and high <= 255:
            return np.round(values).astype(np.uint8)
        raise ValueError(
            f"{what} has float values in [{low}, {high}]; images must be on [0, 1] or [0, 255] (on [0, 1], up to "
            f"{UNIT_RANGE_SLACK:g} of resampling overshoot on either side is clipped). Normalised pixel values (after "
            "mean and std) are not images: give the image itself, or call the model with pixel_values. For a "
            "resampled image that overshoots [0, 255], clip it first (np.clip(image, 0, 255))."
        )
    if sixteen_bit or (dtype.kind == "u" and dtype.itemsize == 2):
        if low < 0 or high > 65535:
            raise ValueError(f"{what} is a 16-bit image with values in [{low}, {high}], outside [0, 65535].")
        if high <= 255 and high > 0:
            warnings.warn(
                f"{what} is a 16-bit image (read on [0, 65535]) whose values are all at most {high}: it reads nearly "
                "black. If it holds 8-bit values, convert it to uint8 first.",
                stacklevel=4,
            )
        return np.round(values.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    if low < 0 or high > 255:
        hint = " For a 16-bit image use dtype uint16." if 0 <= low and high <= 65535 else ""
        raise ValueError(
            f"{what} has integer values in [{low}, {high}]; integer images (other than uint16) must be on [0, 255]."
            + hint
        )
    return values.astype(np.uint8)


def _unit_to_uint8(values: np.ndarray, what: str, low, high) -> np.ndarray:
    """Float values on [0, 1] -> uint8; values overshooting [0, 1] by up to `UNIT_RANGE_SLACK` (bicubic or Lanczos
    resampling of an image on [0, 1]) are clipped, with a warning that counts them."""
    if low < 0 or high > 1:
        outside = int(np.count_nonzero((values < 0) | (values > 1)))
        warnings.warn(
            f"{what} is read as a float image on [0, 1], but {outside} of its values lie outside it (in [{low}, "
            f"{high}], as resampling overshoot leaves them); they were clipped to [0, 1].",
            stacklevel=5,
        )
        values = np.clip(values, 0, 1)
    return np.round(values.astype(np.float32) * 255).astype(np.uint8)


def _to_rgb(values: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> (H, W, 3) uint8; alpha composited onto white."""
    if values.ndim == 2:
        values = values[..., None]
    channels = values.shape[-1]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(values, 3, axis=-1))
    if channels == 4:
        alpha = values[..., 3:].astype(np.float32) / 255
        return np.round(values[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(values)


def _pil_to_rgb(image: PIL.Image.Image, what: str, upright: bool = True) -> np.ndarray:
    name = getattr(image, "filename", None) or what
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"Cannot read the image {name}: {error}") from error
    except AssertionError as error:  # PIL's lazy loader asserts that its file is still open
        raise ValueError(
            f"Cannot read the image {name}: the PIL image was closed before its pixels were loaded (its `with "
            "PIL.Image.open(...)` block ended, or it was closed). Use it inside the block, or call image.load() "
            "before closing it."
        ) from error
    if upright:
        image = _upright(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _to_rgb(_values_to_uint8(np.asarray(image), what, sixteen_bit=True))
    if mode == "F":
        return _to_rgb(_values_to_uint8(np.asarray(image), what))
    try:
        if mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("LA").convert("RGBA") if mode == "La" else image.convert("RGBA")
            return _to_rgb(np.asarray(rgba))
        return np.asarray(image.convert("RGB"))
    except ValueError as error:
        raise ValueError(f"{what} has PIL mode {mode}, which cannot be converted to RGB: {error}") from error


def read_image(image, input_data_format=None, unit_range: bool = False, timeout: float | None = None,
               index: int | None = None, allow_paths: bool = False, upright: bool = True) -> np.ndarray:
    """One image -> a (height, width, 3) uint8 RGB array, by the rule of the module docstring.

    `image` is a PIL image, a numpy array or a torch tensor (with `allow_paths`, also a path, `os.PathLike`, URL or
    base64 string, opened with `open_image`); `input_data_format` ("channels_first" / "channels_last") settles the
    layout of an array; `unit_range=True` (the processors' `do_rescale=False`) says the values are on [0, 1];
    `upright=False` keeps a PIL image's pixels as stored, ignoring its EXIF orientation.
    """
    what = "the image" if index is None else f"image {index}"
    _data_format(input_data_format)
    if allow_paths and isinstance(image, (str, os.PathLike)):
        try:
            image = open_image(image, timeout=timeout)
        except (ValueError, OSError) as error:
            if index is None:
                raise
            raise type(error)(f"{error} ({what} of the batch)") from error
    validate_image(image, index)
    if isinstance(image, PIL.Image.Image):
        if unit_range:
            raise ValueError(f"do_rescale=False says the images are already on [0, 1]; {what} is a PIL image.")
        return _pil_to_rgb(image, what, upright)
    values = _as_numpy(image)
    if values.ndim == 3 and _channels_first(image, input_data_format):
        values = values.transpose(1, 2, 0)
    return _to_rgb(_values_to_uint8(values, what, unit_range))


def image_batch(images) -> list | None:
    """`images` as a list when it is a batch, None when it is one image (or something else, for `read_image` to
    name). A batch is a list, a tuple or another sequence (a `datasets` column, `dataset["image"]`, is one since
    datasets 4), a one-dimensional array of objects or strings (a pandas column of images or paths), or
    a 4-D array or tensor, as transformers reads it; strings and bytes are not batches."""
    if isinstance(images, (str, bytes, bytearray, PIL.Image.Image)):
        return None
    if isinstance(images, collections.abc.Sequence) or getattr(images, "ndim", None) == 4:
        return list(images)
    if getattr(images, "ndim", None) == 1 and getattr(getattr(images, "dtype", None), "kind", None) in ("O", "U"):
        return list(images)  # objects or strings (pandas' string columns are of kind "O"), not pixel values
    return None


def opened(image, timeout: float | None = None):
    """`image` opened by `open_image` when it is a path (`str`, `os.PathLike`), URL or base64 string, else as it is:
    what the processors do first, as transformers' image processors read paths and URLs."""
    return open_image(image, timeout=timeout) if isinstance(image, (str, os.PathLike)) else image


def read_images(images, input_data_format=None, unit_range: bool = False) -> list[np.ndarray]:
    """One image, or a batch (`image_batch`: a list, tuple or other sequence of them, or a 4-D array or tensor) ->
    a list of `read_image` arrays. Paths and URLs are read too (`open_image`), as transformers' processors read
    them."""
    items = image_batch(images)
    if items is None:
        return [read_image(images, input_data_format, unit_range, allow_paths=True)]
    if not items:
        shape = getattr(images, "shape", None)
        raise ValueError("No images given: got " + ("an empty list." if shape is None else
                                                    f"a batch of shape {tuple(shape)}."))
    return [read_image(image, input_data_format, unit_range, index=index if len(items) > 1 else None, allow_paths=True)
            for index, image in enumerate(items)]


class CheckedImagesMixin:
    """For subclasses of transformers' `PilBackend` image processors: the images are read by `read_images` (the
    rule of this module) before transformers sees them, so transformers gets (H, W, 3) uint8 RGB arrays."""

    def _preprocess_image_like_inputs(self, images, *args, **kwargs):
        from transformers.image_utils import ChannelDimension

        unit_range = kwargs.get("do_rescale") is False
        images = read_images(images, kwargs.get("input_data_format"), unit_range=unit_range)
        kwargs["input_data_format"] = ChannelDimension.LAST
        if unit_range:  # the reader brought [0, 1] images to [0, 255]; rescaling brings them back
            kwargs.update(do_rescale=True, rescale_factor=1 / 255)
        return super()._preprocess_image_like_inputs(images, *args, **kwargs)

    def _prepare_image_like_inputs(self, images, *args, expected_ndims: int = 3, **kwargs):
        if expected_ndims == 2:  # segmentation maps: checked, and given a channel axis nothing can misread
            maps = list(images) if isinstance(images, (list, tuple)) or getattr(images, "ndim", 0) == 3 else [images]
            for index, segmentation_map in enumerate(maps):
                validate_image(segmentation_map, index if len(maps) > 1 else None)
                if getattr(segmentation_map, "ndim", None) == 2:
                    maps[index] = segmentation_map[None]
            images = maps
        return super()._prepare_image_like_inputs(images, *args, expected_ndims=expected_ndims, **kwargs)

    def resize(self, image, size, *args, **kwargs):
        # transformers' shortest/longest-edge resize rounds a very thin image's short side to 0 pixels and then
        # fails with a message about size keys; keep at least one pixel instead.
        if getattr(size, "shortest_edge", None) and getattr(size, "longest_edge", None):
            from transformers.image_utils import SizeDict
            from transformers.models.detr.image_processing_pil_detr import get_size_with_aspect_ratio

            height, width = get_size_with_aspect_ratio(image.shape[-2:], size.shortest_edge, size.longest_edge)
            size = SizeDict(height=max(1, height), width=max(1, width))
        elif kwargs.get("keep_aspect_ratio") and getattr(size, "height", None) and getattr(size, "width", None):
            # DPT's aspect-keeping resize has the same flaw; settle the size here, at least one multiple per side
            from transformers.image_utils import SizeDict
            from transformers.models.dpt.image_processing_pil_dpt import get_resize_output_image_size

            multiple = kwargs.get("ensure_multiple_of") or 1
            fitted = get_resize_output_image_size(image, (size.height, size.width), True, multiple)
            size = SizeDict(height=max(multiple, fitted.height), width=max(multiple, fitted.width))
            kwargs["keep_aspect_ratio"] = False
        return super().resize(image, size, *args, **kwargs)


__all__ = [
    "CheckedImagesMixin", "image_batch", "image_size", "open_image", "opened", "read_image", "read_images",
    "validate_image",
]


def read_annotated_image(image, height: int, width: int, both_fit: str = "upright") -> np.ndarray:
    """A training image as `read_image` reads it, for annotations of `height` x `width`.

    A PIL image with an EXIF orientation has two readings: upright (what labelling tools show and annotate) and as
    stored (what COCO's own annotations and transformers' examples, which apply no EXIF, are made on). When only
    one has the annotation's size, that one is used. When both have it (a square image turned by 90 degrees, or
    any image flipped or turned by 180), `both_fit` decides: `"upright"` (folders: the convention of labelling
    tools) or `"stored"` (rows of a `datasets` dataset in transformers' layouts: their maps follow the stored
    pixels). Any other size is an error naming both."""
    if both_fit not in ("upright", "stored"):
        raise ValueError(f"both_fit is 'upright' or 'stored', got {both_fit!r}.")
    pixels = read_image(image, upright=both_fit == "upright")
    if pixels.shape[:2] == (height, width):
        return pixels
    if isinstance(image, PIL.Image.Image):
        other = read_image(image, upright=both_fit != "upright")
        if other.shape[:2] == (height, width):
            return other
    name = getattr(image, "filename", None) or "the image"
    raise ValueError(f"{name} is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but its annotation is "
                     f"{width}x{height}: the panoptic PNG must have the image's size (check the file pairing and any "
                     "resizing done after annotation).")
