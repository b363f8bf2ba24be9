"""Collators: items of `seem_hf.data.AugmentedPanopticDataset` into model inputs."""

from __future__ import annotations

import numpy as np
import torch


def masks_to_normalized_boxes(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W) binary masks -> (N, 4) boxes as (center_x, center_y, width, height), normalised by the
    given `height` and `width` (the image without padding), as DETR's targets are."""
    if len(masks) == 0:
        return torch.zeros((0, 4))
    rows, cols = masks.any(2), masks.any(1)
    top = rows.float().argmax(1)
    bottom = rows.shape[1] - rows.flip(1).float().argmax(1)
    left = cols.float().argmax(1)
    right = cols.shape[1] - cols.flip(1).float().argmax(1)
    boxes = torch.stack([(left + right) / 2 / width, (top + bottom) / 2 / height, (right - left) / width,
                         (bottom - top) / height], dim=1)
    return boxes.clamp(0, 1)


class DetrPanopticCollator:
    """Batch for [`DetrPanopticForSegmentation`] training: `pixel_values` and `pixel_mask` from the image
    processor (images are already at their training size, so it only normalises and pads), and `labels`, one
    dict per image with `class_labels`, normalised `boxes` and `masks` (crowd segments left out, as DETR
    trains). Padding added by the augmentation is marked in `pixel_mask` too. With `boxes_only`, batches ask the
    model to skip its mask head (DETR's first training stage)."""

    def __init__(self, image_processor, boxes_only: bool = False):
        self.image_processor = image_processor
        self.boxes_only = boxes_only

    def __call__(self, rows: list[dict]) -> dict:
        processed = self.image_processor(images=[row["image"] for row in rows], do_resize=False, return_tensors="pt")
        # Pixels only: a saved SEEM image processor also returns its default label set's tokens (`input_ids`),
        # while the examples give the label set themselves (`LabelSetCollator`).
        inputs = {key: processed[key] for key in ("pixel_values", "pixel_mask")}
        height, width = inputs["pixel_values"].shape[-2:]
        labels = []
        for index, row in enumerate(rows):
            valid = torch.zeros((height, width), dtype=torch.bool)
            valid[: row["valid"].shape[0], : row["valid"].shape[1]] = torch.from_numpy(np.asarray(row["valid"]))
            inputs["pixel_mask"][index] &= valid.to(inputs["pixel_mask"].dtype)
            keep = ~np.asarray(row["iscrowd"], dtype=bool)
            masks = torch.zeros((int(keep.sum()), height, width))
            segment_masks = torch.from_numpy(np.asarray(row["masks"])[keep])
            masks[:, : segment_masks.shape[1], : segment_masks.shape[2]] = segment_masks.float()
            valid_rows, valid_cols = valid.any(1).sum().item(), valid.any(0).sum().item()
            labels.append({
                "class_labels": torch.as_tensor(np.asarray(row["labels"])[keep], dtype=torch.long),
                "boxes": masks_to_normalized_boxes(masks.bool(), valid_rows, valid_cols),
                "masks": masks,
            })
        inputs["labels"] = labels
        if self.boxes_only:
            inputs["boxes_only"] = True
        return dict(inputs)


class SemanticCollator:
    """Batch for per-pixel models over a label set (LSeg): `pixel_values` from the processor's image processor
    (images are already at their training size), the label set tokenised once per batch (`input_ids`,
    `attention_mask`), and `labels` (batch, height, width): each pixel's label index, `ignore_index` on
    unlabelled, crowd and padding pixels."""

    def __init__(self, processor, label_names: list[str], ignore_index: int = 255):
        self.processor, self.ignore_index = processor, ignore_index
        self.label_tokens = processor.tokenize_labels(label_names)

    def __call__(self, rows: list[dict]) -> dict:
        inputs = self.processor.image_processor(
            images=[row["image"] for row in rows], do_resize=False, return_tensors="pt"
        )
        height, width = inputs["pixel_values"].shape[-2:]
        labels = torch.full((len(rows), height, width), self.ignore_index, dtype=torch.long)
        for index, row in enumerate(rows):
            masks = torch.from_numpy(np.asarray(row["masks"], dtype=bool))
            for mask, label, crowd in zip(masks, row["labels"], row["iscrowd"]):
                labels[index, : mask.shape[0], : mask.shape[1]][mask] = self.ignore_index if crowd else int(label)
            valid = torch.from_numpy(np.asarray(row["valid"], dtype=bool))
            labels[index, : valid.shape[0], : valid.shape[1]][~valid] = self.ignore_index
        return {
            "pixel_values": inputs["pixel_values"],
            "input_ids": self.label_tokens["input_ids"],
            "attention_mask": self.label_tokens["attention_mask"],
            "labels": labels,
        }


class LabelSetCollator:
    """Adds a tokenised label set to every batch of `collator`, for open-vocabulary models whose class head reads
    text (SEEM): `text_inputs(rows)` returns the tensors to add; it may draw prompts from the batch's rows (their
    image ids and epoch), so that a resumed or distributed run draws what an uninterrupted one does."""

    def __init__(self, collator, text_inputs):
        self.collator, self.text_inputs = collator, text_inputs

    def __call__(self, rows: list[dict]) -> dict:
        return {**self.collator(rows), **self.text_inputs(rows)}


class SeemPromptCollator:
    """Adds SEEM's referring and visual prompts to every batch of `collator` (a `DetrPanopticCollator`), as SEEM's
    training mapper draws them, so that one pass trains the generic, grounding and spatial query groups.

    Per image: up to `max_sentences` (at least 1) of its referring expressions, one random sentence each, with
    their masks; an image without any uses class names in a random prompt template instead, each with the union
    of that class's segments. Up to `max_visual_prompts` of its segments, each prompted by a random click set,
    polygon, scribble or circle inside it (`sample_visual_prompt`), with the segment as target
    (`spatial_masks`) and its label (`spatial_class_labels`). Per batch:
    `click_rounds` drawn from 0..`max_click_rounds` (the model adds that many corrective clicks first).
    Each image's draws come from the seed, the epoch and its own image id, whatever batch it lands in (resumed and
    distributed runs, and one process given the union of several processes' batches, draw the same); `click_rounds`
    from the seed, the epoch and the batch's image ids."""

    def __init__(self, collator, processor, seed: int = 0, max_sentences: int = 4, max_visual_prompts: int = 10,
                 max_click_rounds: int = 5):
        self.collator, self.processor, self.seed = collator, processor, seed
        self.max_sentences, self.max_visual_prompts = max_sentences, max_visual_prompts
        self.max_click_rounds = max_click_rounds

    def _sentences(self, row, rng, height, width):
        from seem_hf.models.seem.prompts_seem import training_prompt

        label_names = self.processor.default_labels
        count = rng.randint(1, self.max_sentences)
        referring = [(mask, texts) for mask, texts in zip(row.get("grounding_masks", ()), row.get("sentences", ()))
                     if texts]
        if referring:
            rng.shuffle(referring)
            chosen = [(mask, rng.choice(texts).lower()) for mask, texts in referring[:count]]
        else:
            labels = sorted({int(label) for label, crowd in zip(row["labels"], row["iscrowd"]) if not crowd})
            rng.shuffle(labels)
            masks = np.asarray(row["masks"], dtype=bool)
            chosen = [(masks[np.asarray(row["labels"]) == label].any(0), training_prompt(label_names[label], rng))
                      for label in labels[:count]]
        targets = torch.zeros(len(chosen), height, width)
        for index, (mask, _) in enumerate(chosen):
            targets[index, : mask.shape[0], : mask.shape[1]] = torch.from_numpy(np.asarray(mask, dtype=np.float32))
        return [text for _, text in chosen], targets

    def _visual_prompts(self, row, rng, height, width):
        from seem_hf.models.seem.visual_sampler_seem import sample_visual_prompt

        candidates = [index for index, crowd in enumerate(row["iscrowd"]) if not crowd]
        rng.shuffle(candidates)
        chosen = candidates[: self.max_visual_prompts]
        prompts = torch.zeros(len(chosen), height, width, dtype=torch.bool)
        targets = torch.zeros(len(chosen), height, width)
        for index, segment in enumerate(chosen):
            mask = np.asarray(row["masks"][segment], dtype=bool)
            prompts[index, : mask.shape[0], : mask.shape[1]] = torch.from_numpy(sample_visual_prompt(mask, rng))
            targets[index, : mask.shape[0], : mask.shape[1]] = torch.from_numpy(mask.astype(np.float32))
        labels = torch.tensor([int(row["labels"][segment]) for segment in chosen], dtype=torch.long)
        return prompts, targets, labels

    def __call__(self, rows: list[dict]) -> dict:
        import random

        batch = self.collator(rows)
        height, width = batch["pixel_values"].shape[-2:]
        key = f"{self.seed}-{rows[0].get('epoch', 0)}"
        rng = random.Random(f"{key}-" + "-".join(str(r["image_id"]) for r in rows))
        sentences, prompts = [], []
        for row, target in zip(rows, batch["labels"]):
            image_rng = random.Random(f"{key}-{row['image_id']}")
            texts, target["grounding_masks"] = self._sentences(row, image_rng, height, width)
            positive, target["spatial_masks"], target["spatial_class_labels"] = self._visual_prompts(
                row, image_rng, height, width)
            sentences.append(texts)
            prompts.append(positive)
        batch.update(self.processor.tokenize_sentences(sentences, allow_empty=True))
        positive = torch.zeros(len(rows), max(1, max(len(p) for p in prompts)), height, width, dtype=torch.bool)
        for index, image_prompts in enumerate(prompts):
            positive[index, : len(image_prompts)] = image_prompts
        batch["spatial_positive_masks"] = positive
        batch["click_rounds"] = rng.randint(0, self.max_click_rounds)
        return batch


__all__ = [
    "DetrPanopticCollator",
    "LabelSetCollator",
    "SeemPromptCollator",
    "SemanticCollator",
    "masks_to_normalized_boxes",
]
