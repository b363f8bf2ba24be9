"""The image-segmentation pipeline, extended to take numpy arrays and torch tensors.

transformers' `ImageSegmentationPipeline` reads only paths, URLs and PIL images. `import seem_hf` installs this
subclass as the task's implementation; it hands arrays and tensors straight to the image processor (which
checks them and turns grayscale or RGBA into RGB) and behaves exactly as transformers' pipeline otherwise.
"""

from __future__ import annotations

import inspect

import numpy as np
import PIL.Image
from transformers.image_utils import get_image_size, infer_channel_dimension_format
from transformers.pipelines import PIPELINE_REGISTRY, ImageSegmentationPipeline

from seem_hf.image_utils import validate_image


class ArrayImageSegmentationPipeline(ImageSegmentationPipeline):
    """`pipeline("image-segmentation")` that also accepts numpy arrays (H, W), (H, W, C), (C, H, W) and torch
    tensors (C, H, W), besides paths, URLs and PIL images.

    For panoptic and instance results of a model whose forward takes `mask_score_threshold` (DETR-panoptic),
    the pipeline's score threshold is passed to it, so masks are computed only for queries that can pass it;
    the results are those of the full forward.
    """

    def _sanitize_parameters(self, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        accepts = "mask_score_threshold" in inspect.signature(self.model.forward).parameters
        if accepts and kwargs.get("subtask") != "semantic":
            # Masks may be skipped only below the threshold postprocess will apply, so read its default rather
            # than restating it.
            default = inspect.signature(self.postprocess).parameters["threshold"].default
            forward = {**forward, "mask_score_threshold": kwargs.get("threshold", default)}
        return preprocess, forward, postprocess

    def _forward(self, model_inputs, mask_score_threshold=None):
        if mask_score_threshold is None:
            return super()._forward(model_inputs)
        target_size = model_inputs.pop("target_size")
        model_outputs = self.model(**model_inputs, mask_score_threshold=mask_score_threshold)
        model_outputs["target_size"] = target_size
        return model_outputs

    def preprocess(self, image, subtask=None, timeout=None):
        if isinstance(image, (str, PIL.Image.Image)):
            return super().preprocess(image, subtask=subtask, timeout=timeout)
        validate_image(image)
        array = image if isinstance(image, np.ndarray) else image.detach().cpu().numpy()
        if array.ndim == 2:
            target_size = array.shape
        else:
            target_size = get_image_size(array, infer_channel_dimension_format(array, num_channels=(1, 3, 4)))
        inputs = self.image_processor(images=[image], return_tensors="pt").to(self.dtype)
        inputs["target_size"] = [tuple(target_size)]
        return inputs


def register_pipeline() -> None:
    """Make `pipeline("image-segmentation")` build `ArrayImageSegmentationPipeline` (a strict superset of
    transformers' pipeline: every input it accepted is handled by transformers' own code)."""
    PIPELINE_REGISTRY.supported_tasks["image-segmentation"]["impl"] = ArrayImageSegmentationPipeline


__all__ = ["ArrayImageSegmentationPipeline", "register_pipeline"]
