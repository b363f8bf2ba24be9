"""SEEM's referring and interactive evaluation on a COCO-panoptic dataset with grounding sentences: referring cIoU
(SEEM answers each sentence with its best grounding query) and the click protocol behind NoC@85/90 (a first click
at the object's innermost point, then one corrective click per round, up to `max_clicks`; seem.md section 2.3).

Both read items of `seem_hf.data.AugmentedPanopticDataset` (the validation rows of the fine-tuning examples) and
split them across processes when run distributed, gathering the results.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seem_hf.metrics.segmentation import ReferringAccumulator, number_of_clicks

from .visual_sampler_seem import add_corrective_clicks


def _shard(items):
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        return [items[index] for index in range(rank, len(items), world)]
    return [items[index] for index in range(len(items))]


def _pixels(processor, item, device, dtype):
    inputs = processor.image_processor(images=[item["image"]], do_resize=False, return_tensors="pt")
    return inputs["pixel_values"].to(device, dtype), tuple(np.asarray(item["valid"]).shape)


def _padded(mask, size):
    out = torch.zeros(size, dtype=torch.bool)
    mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    out[: mask.shape[0], : mask.shape[1]] = mask
    return out


@torch.no_grad()
def evaluate_referring(model, processor, items) -> dict:
    """cIoU, mIoU and precision@0.5/0.6/0.7/0.8/0.9 over every item's grounding sentences (the first sentence of
    each referring annotation, as SEEM's RefCOCOg evaluation reads them)."""
    accumulator = ReferringAccumulator()
    device, dtype = model.device, model.dtype
    for item in _shard(items):
        if not item["sentences"]:
            continue
        pixel_values, size = _pixels(processor, item, device, dtype)
        text = processor.tokenize_sentences([[sentences[0] for sentences in item["sentences"]]])
        outputs = model(pixel_values=pixel_values, **{key: value.to(device) for key, value in text.items()})
        chosen = outputs.grounding_logits[0].argmax(0)  # the best query per sentence
        masks = nn.functional.interpolate(outputs.grounding_masks_logits[:, chosen], size=pixel_values.shape[-2:],
                                          mode="bilinear", align_corners=False)[0] > 0
        valid = _padded(item["valid"], pixel_values.shape[-2:])
        for mask, target in zip(masks.cpu(), item["grounding_masks"]):
            accumulator.update(mask & valid, _padded(target, pixel_values.shape[-2:]))
    accumulator.sync()
    return {f"referring_{name}": value for name, value in accumulator.compute().items()}


@torch.no_grad()
def interactive_ious(model, image_features, targets: torch.Tensor, valid: torch.Tensor, max_clicks: int = 20,
                     generator: torch.Generator | None = None, stop_iou: float = 0.925,
                     class_embeddings: torch.Tensor | None = None):
    """IoU of every object after each click `(num_objects, max_clicks)`: all objects of one image are prompted
    together (SEEM v1's multi-object mode); click 1 is each object's innermost point, and every later click corrects
    the previous answer (`next_click`); the previous answer is the memory. An object whose answer reaches `stop_iou`
    (SEEM's 0.925) gets no more clicks and is not run again: its answer, and IoU, stay as they were. Run the model
    in eval mode: its draws are then repeatable without a `generator`. `targets` `(N, H, W)` and `valid` `(H, W)`
    at the padded input size. With `class_embeddings` (a label set's, `get_label_embeddings`), returns
    `(ious, labels)`: also the label id the first round gives each object's answer (its first click)."""
    targets, valid = targets.bool(), valid.bool()
    positive, negative = torch.zeros_like(targets), torch.zeros_like(targets)
    add_corrective_clicks(torch.zeros_like(targets), targets, positive, negative, stop_iou)  # the first clicks
    previous, ious, labels = None, [], None
    latest = torch.zeros(len(targets), dtype=torch.float64)
    active = torch.ones(len(targets), dtype=torch.bool)
    for _ in range(max_clicks):
        if not active.any():  # every object reached the stop: its IoU carries over
            ious.append(latest.clone())
            continue
        index = active.nonzero()[:, 0]
        # The label set scores the first round's answers only; the object queries are not run (generic=False).
        scored = previous is None and class_embeddings is not None
        outputs = model(image_features=image_features, spatial_positive_masks=positive[index][None].to(model.device),
                        spatial_negative_masks=negative[index][None].to(model.device),
                        previous_masks=None if previous is None else previous[:, index.to(previous.device)],
                        generator=generator, **({"class_embeddings": class_embeddings, "generic": False} if scored
                                                else {}))
        if scored:
            labels = outputs.interactive_class_logits[0, :, :-1].argmax(-1).cpu()
        answer = outputs.interactive_masks_logits
        if previous is None:
            previous = answer.new_zeros(answer.shape[0], len(targets), *answer.shape[2:])
        previous[:, index.to(previous.device)] = answer
        predictions = nn.functional.interpolate(answer, size=targets.shape[-2:], mode="bilinear",
                                                align_corners=False)[0].cpu() > 0
        grown_positive, grown_negative = positive[index], negative[index]
        latest[index] = add_corrective_clicks(predictions & valid, targets[index], grown_positive, grown_negative,
                                              stop_iou).cpu()
        positive[index], negative[index] = grown_positive, grown_negative
        active &= (latest < stop_iou) & targets.flatten(1).any(1)
        ious.append(latest.clone())
    ious = torch.stack(ious, dim=1)
    return ious if class_embeddings is None else (ious, labels)


@torch.no_grad()
def evaluate_interactive(model, processor, items, max_clicks: int = 20, seed: int | None = None) -> dict:
    """NoC@85 and NoC@90 (clicks to reach that IoU, `max_clicks` when never reached) and the mean IoU after 1, 3
    and 5 clicks, over every (non-crowd) segment of every item; with the processor's default label set, also
    `interactive_label_accuracy`: the share of objects whose first-click answer gets the segment's label. The model
    runs in eval mode, whose draws repeat exactly; `seed` (optional) draws them from a generator seeded with
    `seed` + the image id instead."""
    rows, correct = [], []
    was_training = model.training
    model.eval()
    class_embeddings = None
    if processor.default_labels:
        class_embeddings = model.get_label_embeddings(processor.tokenize_labels(processor.default_labels).to(
            model.device))
    for item in _shard(items):
        keep = ~np.asarray(item["iscrowd"], dtype=bool)
        if not keep.any():
            continue
        pixel_values, _ = _pixels(processor, item, model.device, model.dtype)
        size = pixel_values.shape[-2:]
        targets = torch.stack([_padded(mask, size) for mask in np.asarray(item["masks"])[keep]])
        generator = None
        if seed is not None:
            generator = torch.Generator(device=model.device).manual_seed(seed + int(item["image_id"]))
        features = model.get_image_features(pixel_values)
        result = interactive_ious(model, features, targets, _padded(item["valid"], size), max_clicks, generator,
                                  class_embeddings=class_embeddings)
        if class_embeddings is None:
            rows.append(result)
        else:
            rows.append(result[0])
            correct.append(result[1] == torch.as_tensor(np.asarray(item["labels"])[keep], dtype=torch.long))
    model.train(was_training)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, (rows, correct))
        rows = [row for part in gathered for row in part[0]]
        correct = [row for part in gathered for row in part[1]]
    if not rows:
        return {}
    ious = torch.cat(rows)
    results = {f"interactive_{name}": value for name, value in
               number_of_clicks(ious.tolist(), max_clicks=max_clicks).items()}
    for clicks in sorted({1, min(3, max_clicks), min(5, max_clicks)}):
        results[f"interactive_miou@{clicks}"] = float(ious[:, clicks - 1].mean())
    if correct:
        results["interactive_label_accuracy"] = float(torch.cat(correct).double().mean())
    return results


__all__ = ["evaluate_interactive", "evaluate_referring", "interactive_ious"]
