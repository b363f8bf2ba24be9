"""Input checks shared by the seem_hf image processors.

transformers' PIL backend accepts PIL images, numpy arrays and torch tensors, and turns them into channel-first
numpy arrays; what it does not do is refuse input it cannot mean (a 4-D array passed as one image, an empty
image, NaN pixels) or turn grayscale and RGBA arrays into the three channels the models expect. These helpers
do both, with errors that name the problem.
"""

from __future__ import annotations

import numpy as np
import PIL.Image


def validate_image(image, index: int | None = None):
    """Raise a `ValueError` naming the problem when `image` is not one image the processors can read.

    Accepts a PIL image (any mode: it is converted to RGB later), or a numpy array / torch tensor of shape
    (height, width), (height, width, channels) or (channels, height, width) with 1, 3 or 4 channels and finite
    values. Returns the image unchanged.
    """
    where = "" if index is None else f" (image {index})"
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Empty image{where}: size {image.size}.")
        return image
    module = type(image).__module__.split(".")[0]
    if not (isinstance(image, np.ndarray) or module == "torch"):
        raise ValueError(
            f"Unsupported image type {type(image).__name__}{where}: expected a PIL image, a numpy array or a "
            "torch tensor (or a path or URL where the pipeline accepts one)."
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
    array = image if isinstance(image, np.ndarray) else image.detach().cpu().numpy()
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"Image values must be numeric, got dtype {array.dtype}{where}.")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"Image contains NaN or infinite values{where}.")
    return image


def _ambiguous(image) -> bool:
    """A 3-D shape whose first and last axes could both be channels, e.g. (3, 4, 3) or (1, 1, 3)."""
    shape = getattr(image, "shape", ())
    return len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] in (1, 3, 4)


def image_size(image) -> tuple[int, int]:
    """(height, width) of one PIL image, numpy array or torch tensor, as the seem_hf processors read it (a numpy
    shape that could be either layout is (H, W, C), see `CheckedImagesMixin`)."""
    if isinstance(image, PIL.Image.Image):
        return image.height, image.width
    shape = tuple(image.shape)
    if len(shape) == 2 or (isinstance(image, np.ndarray) and _ambiguous(image)):
        return shape[:2]
    from transformers.image_utils import get_image_size, infer_channel_dimension_format

    array = image if isinstance(image, np.ndarray) else image.detach().cpu().numpy()
    return tuple(get_image_size(array, infer_channel_dimension_format(array, num_channels=(1, 3, 4))))


def to_three_channels(image: np.ndarray) -> np.ndarray:
    """Turn a channel-first (1|3|4, H, W) array into (3, H, W): grayscale is repeated, alpha is dropped."""
    channels = image.shape[0]
    if channels == 3:
        return image
    if channels == 1:
        return np.repeat(image, 3, axis=0)
    if channels == 4:
        return image[:3]
    raise ValueError(f"Images must have 1, 3 or 4 channels, got {channels}.")


class CheckedImagesMixin:
    """For subclasses of transformers' `PilBackend` image processors: every image is checked with
    `validate_image` before transformers reads it, a 4-D array or tensor is read as a batch, and grayscale or
    RGBA images become RGB."""

    def _prepare_image_like_inputs(self, images, *args, expected_ndims: int = 3, **kwargs):
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError("No images given: got an empty list.")
            images = list(images)
        elif getattr(images, "ndim", None) == 4:
            images = list(images)  # a 4-D array or tensor is a batch, as transformers reads it
        else:
            images = [images]
        explicit = kwargs.get("input_data_format") is not None
        for index, image in enumerate(images):
            if not isinstance(image, (list, tuple)):
                validate_image(image, index if len(images) > 1 else None)
                if getattr(image, "ndim", None) == 2:
                    images[index] = image[None]  # grayscale: a channel axis first, which nothing can misread
                elif not explicit and _ambiguous(image) and isinstance(image, np.ndarray):
                    # transformers reads a shape like (3, 4, 3) as channels-first; a numpy image is (H, W, C) by
                    # convention (PIL, OpenCV, imageio), so say so by moving its channels first
                    images[index] = np.ascontiguousarray(image.transpose(2, 0, 1))
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

    def process_image(self, image, *args, **kwargs) -> np.ndarray:
        return to_three_channels(super().process_image(image, *args, **kwargs))


__all__ = ["CheckedImagesMixin", "image_size", "to_three_channels", "validate_image"]
