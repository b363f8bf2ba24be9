"""What the seem_hf processors share."""

from __future__ import annotations


class PostProcessingMixin:
    """A processor's `post_process_*` methods are its image processor's (those it has)."""

    def post_process_semantic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_semantic_segmentation(*args, **kwargs)

    def post_process_instance_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_instance_segmentation(*args, **kwargs)

    def post_process_panoptic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_panoptic_segmentation(*args, **kwargs)


__all__ = ["PostProcessingMixin"]
