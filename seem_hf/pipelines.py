"""The image-segmentation pipeline, extended to take numpy arrays and torch tensors.

transformers' `ImageSegmentationPipeline` reads only paths, URLs and PIL images. `import seem_hf` installs this
subclass as the task's implementation; it hands arrays and tensors straight to the image processor (which
checks them and turns grayscale or RGBA into RGB) and behaves exactly as transformers' pipeline otherwise.
"""

from __future__ import annotations

import inspect

import numpy as np
import PIL.Image
import torch
from transformers import AutoModelForUniversalSegmentation, AutoProcessor
from transformers.image_utils import load_image
from transformers.pipelines import PIPELINE_REGISTRY, ImageSegmentationPipeline, Pipeline

from seem_hf.image_utils import image_size, validate_image
from seem_hf.processing_utils import check_label_set


class ArrayImageSegmentationPipeline(ImageSegmentationPipeline):
    """`pipeline("image-segmentation")` that also accepts numpy arrays (H, W), (H, W, C), (C, H, W) and torch
    tensors (C, H, W), besides paths, URLs and PIL images.

    For panoptic and instance results of a model whose forward takes `mask_score_threshold` (DETR-panoptic),
    the pipeline's score threshold is passed to it, so masks are computed only for queries that can pass it;
    the results are those of the full forward.

    Open-vocabulary models (LSeg) segment over the label set stored with their processor by default;
    `segmenter(image, labels=["cat", "sofa", "other"])` segments over another set for that call.
    """

    def _sanitize_parameters(self, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if kwargs.get("labels") is not None:
            if "input_ids" not in inspect.signature(self.model.forward).parameters:
                raise ValueError(f"{type(self.model).__name__} has a fixed label set; it takes no labels=.")
            preprocess = {**preprocess, "labels": list(kwargs["labels"])}
            postprocess = {**postprocess, "labels": list(kwargs["labels"])}
        accepts = "mask_score_threshold" in inspect.signature(self.model.forward).parameters
        if accepts and kwargs.get("subtask") != "semantic":
            # Masks may be skipped only below the threshold postprocess will apply, so read its default rather
            # than restating it.
            default = inspect.signature(ImageSegmentationPipeline.postprocess).parameters["threshold"].default
            forward = {**forward, "mask_score_threshold": kwargs.get("threshold", default)}
        return preprocess, forward, postprocess

    def _forward(self, model_inputs, mask_score_threshold=None):
        if "input_ids" in model_inputs and hasattr(self.model, "get_text_features"):
            model_inputs["class_embeddings"] = self._label_embeddings(
                model_inputs.pop("input_ids"), model_inputs.pop("attention_mask", None)
            )
        if mask_score_threshold is None:
            return super()._forward(model_inputs)
        target_size = model_inputs.pop("target_size")
        model_outputs = self.model(**model_inputs, mask_score_threshold=mask_score_threshold)
        model_outputs["target_size"] = target_size
        return model_outputs

    def _label_embeddings(self, input_ids, attention_mask):
        """The label set's text embeddings, computed once while the label set and the model's weights stay the
        same. SEEM averages 81 prompt templates per label, so encoding COCO's 133 labels is ~10,000 prompts: the
        original encodes them once too. Any in-place change to a parameter (an optimizer step, `load_state_dict`)
        bumps its version counter, which invalidates the cache."""
        versions = tuple(parameter._version for parameter in self.model.parameters())
        cached = getattr(self, "_label_cache", None)
        if (
            cached is not None
            and cached[0] == versions
            and cached[1].shape == input_ids.shape
            and torch.equal(cached[1], input_ids)
            and (cached[2] is None) == (attention_mask is None)
            and (attention_mask is None or torch.equal(cached[2], attention_mask))
        ):
            return cached[3]
        if "attention_mask" in inspect.signature(self.model.get_text_features).parameters:
            embeddings = self.model.get_text_features(input_ids, attention_mask)
        else:
            embeddings = self.model.get_text_features(input_ids)
        self._label_cache = (versions, input_ids, attention_mask, embeddings)
        return embeddings

    def preprocess(self, image, subtask=None, timeout=None, labels=None):
        inputs = self._preprocess_image(image, subtask, timeout)
        takes_text = "input_ids" in inspect.signature(self.model.forward).parameters
        if takes_text and (labels is not None or "input_ids" not in inputs):
            inputs.update(self._label_set_inputs(labels))
        return inputs

    def _label_set_inputs(self, labels) -> dict:
        """The label set (this call's, or the model's default `id2label`) tokenised by the model's processor."""
        if labels is None:
            labels = [self.model.config.id2label[index] for index in sorted(self.model.config.id2label)]
        processor = getattr(self, "processor", None)
        if processor is None or not hasattr(processor, "tokenize_labels"):
            try:
                processor = AutoProcessor.from_pretrained(self.model.name_or_path)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"{type(self.model).__name__} reads a label set: give the pipeline its processor (processor=...)."
                ) from error
            self.processor = processor
        labels = tuple(check_label_set(labels))
        cached = getattr(self, "_tokenized_labels", None)
        if cached is None or cached[0] != labels:
            text = processor(text=list(labels), return_tensors="pt")
            cached = self._tokenized_labels = (
                labels, {key: text[key] for key in ("input_ids", "attention_mask") if key in text}
            )
        return dict(cached[1])

    def postprocess(self, model_outputs, labels=None, **kwargs):
        if labels is None:
            return super().postprocess(model_outputs, **kwargs)
        if kwargs.get("subtask") not in (None, "semantic"):
            raise ValueError("A per-call label set gives semantic segmentation only.")
        segmentation = self.image_processor.post_process_semantic_segmentation(
            model_outputs, target_sizes=model_outputs["target_size"]
        )[0].numpy()
        return [
            {"score": None, "label": labels[label],
             "mask": PIL.Image.fromarray(((segmentation == label) * 255).astype(np.uint8), mode="L")}
            for label in np.unique(segmentation)
        ]

    def _preprocess_image(self, image, subtask, timeout):
        if isinstance(image, (str, PIL.Image.Image)):
            return super().preprocess(image, subtask=subtask, timeout=timeout)
        validate_image(image)
        target_size = image_size(image)
        inputs = self.image_processor(images=[image], return_tensors="pt").to(self.dtype)
        inputs["target_size"] = [tuple(target_size)]
        return inputs


class ReferringSegmentationPipeline(Pipeline):
    """`pipeline("referring-segmentation", model=...)`: a mask for each sentence that describes something in the
    image (SEEM's grounding queries).

    `segmenter(image, sentences=["the red circle", "the squares"], top_k=1)` returns, per sentence, a list of
    `{"sentence", "score", "mask"}` (a PIL "L" image at the input's size); `top_k` > 1 returns the next-best
    matches too (every car for "cars", not one). Images as in the image-segmentation pipeline.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, sentences=None, top_k=None, mask_threshold=None, timeout=None, **kwargs):
        if kwargs:
            raise ValueError(f"Unknown arguments for referring segmentation: {sorted(kwargs)}.")
        preprocess = {"sentences": sentences, "timeout": timeout}
        postprocess = {key: value for key, value in (("top_k", top_k), ("mask_threshold", mask_threshold))
                       if value is not None}
        return preprocess, {}, postprocess

    def preprocess(self, image, sentences=None, timeout=None):
        if sentences is None:
            raise ValueError("Referring segmentation needs sentences=[...] describing what to segment.")
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        if isinstance(image, (str, PIL.Image.Image)):
            image = load_image(image, timeout=timeout)
        else:
            validate_image(image)
        inputs = self.processor(images=image, sentences=sentences, return_tensors="pt").to(self.dtype)
        inputs["target_size"] = [tuple(int(side) for side in image_size(image))]
        inputs["sentences"] = sentences
        return inputs

    def _forward(self, model_inputs):
        target_size, sentences = model_inputs.pop("target_size"), model_inputs.pop("sentences")
        outputs = self.model(**model_inputs)
        outputs["target_size"], outputs["sentences"] = target_size, sentences
        return outputs

    def postprocess(self, model_outputs, top_k=1, mask_threshold=0.5):
        results = self.processor.post_process_referring_segmentation(
            model_outputs, target_sizes=model_outputs["target_size"], top_k=top_k, mask_threshold=mask_threshold
        )[0]
        return [
            [{"sentence": model_outputs["sentences"][result["sentence_index"]], "score": float(score),
              "mask": PIL.Image.fromarray((mask.numpy() * 255).astype(np.uint8), mode="L")}
             for mask, score in zip(result["masks"], result["scores"])]
            for result in results
        ]


def register_pipeline() -> None:
    """Make `pipeline("image-segmentation")` build `ArrayImageSegmentationPipeline` (a strict superset of
    transformers' pipeline: every input it accepted is handled by transformers' own code), and register
    `pipeline("referring-segmentation")`."""
    PIPELINE_REGISTRY.supported_tasks["image-segmentation"]["impl"] = ArrayImageSegmentationPipeline
    PIPELINE_REGISTRY.register_pipeline(
        "referring-segmentation", pipeline_class=ReferringSegmentationPipeline,
        pt_model=AutoModelForUniversalSegmentation, type="multimodal",
    )


__all__ = ["ArrayImageSegmentationPipeline", "ReferringSegmentationPipeline", "register_pipeline"]
