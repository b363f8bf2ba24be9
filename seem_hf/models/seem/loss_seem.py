"""SEEM's referring (grounding) and interactive (spatial) losses, on the package's shared matcher and point-sampled
mask losses. The generic loss is the shared `SetCriterion`.

Grounding: per image, the grounding queries are scored against each sentence (SEEM's `vl_similarity`), matched
one query per sentence (cost: class_weight x -softmax over queries + BCE + dice), then a cross-entropy over queries
picks the matched one, and BCE and dice supervise its mask.

Spatial: per visual prompt, its own queries (`spatial_queries_per_prompt`) compete; the one with the lowest cost
(same terms, the class term a softmax over the prompt's queries of mask-embedding x prompt-embedding) is matched,
a cross-entropy over all spatial queries picks it, and BCE and dice supervise its mask. Prompts whose target mask is
empty are left out. (The original passes spatial costs 5/2/2 to its matcher and ignores them; this uses the generic
costs too.)
"""

from __future__ import annotations

import torch
from torch import nn

from seem_hf.loss.global_mean import global_mean_denominators
from seem_hf.loss.mask_losses import point_sampled_mask_losses
from seem_hf.loss.matcher import HungarianMatcher


class SeemPromptCriterion(nn.Module):
    """Grounding and spatial losses over every decoder round; weights from `SeemConfig`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.matcher = HungarianMatcher(
            class_cost=config.class_weight, mask_cost=config.mask_weight, dice_cost=config.dice_weight,
            num_points=config.train_num_points,
        )
        self.weights = {
            "loss_grounding_ce": config.grounding_class_weight, "loss_grounding_mask": config.grounding_mask_weight,
            "loss_grounding_dice": config.grounding_dice_weight, "loss_spatial_ce": config.spatial_class_weight,
            "loss_spatial_mask": config.spatial_mask_weight, "loss_spatial_dice": config.spatial_dice_weight,
            "loss_spatial_label": config.spatial_label_weight,
        }

    def _mask_losses(self, predictions, targets, count):
        config = self.config
        losses = point_sampled_mask_losses(predictions, targets, count, config.train_num_points,
                                           config.oversample_ratio, config.importance_sample_ratio)
        return losses["loss_mask"], losses["loss_dice"]

    def grounding(self, logits, mask_logits, sentence_mask, target_masks, count=None) -> dict[str, torch.Tensor]:
        """logits `(B, Q, T)` query-sentence similarities; mask_logits `(B, Q, h, w)`; sentence_mask `(B, T)`;
        target_masks per image `(T_b, H, W)` for its real sentences, in order. `count`: the sentences' global-mean
        denominator (`seem_hf.loss.global_mean`); this batch's sentence count when not given."""
        if not any(len(masks) for masks in target_masks):  # no sentence in the batch: zeros that keep the graph
            zero = logits.sum() * 0 + mask_logits.sum() * 0
            return {"loss_grounding_ce": zero, "loss_grounding_mask": zero, "loss_grounding_dice": zero}
        probabilities = [logit[:, real].softmax(0) for logit, real in zip(logits, sentence_mask)]
        targets = [{"class_labels": torch.arange(len(masks), device=masks.device), "masks": masks}
                   for masks in target_masks]
        padded = torch.zeros(logits.shape[0], logits.shape[1], logits.shape[2], dtype=logits.dtype,
                             device=logits.device)
        for image, probability in enumerate(probabilities):
            padded[image, :, : probability.shape[1]] = probability
        indices = self.matcher(logits, targets, mask_logits=mask_logits, class_probabilities=padded)
        if count is None:
            count = max(1.0, float(sum(len(masks) for masks in target_masks)))
        ce, predictions, matched_targets = [], [], []
        for image, (rows, columns) in enumerate(indices):
            sentences = logits[image][:, sentence_mask[image]]  # (Q, T_b)
            rows, columns = rows.to(logits.device), columns.to(logits.device)
            ce.append(nn.functional.cross_entropy(sentences[:, columns].t(), rows, reduction="sum"))
            predictions.append(mask_logits[image, rows])
            matched_targets.append(target_masks[image][columns])
        loss_mask, loss_dice = self._mask_losses(torch.cat(predictions), torch.cat(matched_targets), count)
        return {"loss_grounding_ce": sum(ce) / count, "loss_grounding_mask": loss_mask,
                "loss_grounding_dice": loss_dice}

    def spatial(self, logits, mask_logits, target_masks, count=None, class_logits=None,
                target_labels=None) -> dict[str, torch.Tensor]:
        """logits `(B, k N, N)` spatial-query x prompt scores; mask_logits `(B, k N, h, w)`; target_masks per image
        `(N_b, H, W)`, one per prompt in order (prompts beyond N_b are padding). `count`: the global-mean
        denominator of the prompts with a non-empty target; this batch's count when not given. With
        `class_logits` `(B, k N, K + 1)` and `target_labels` (per image, the label of each prompt's segment), also
        `loss_spatial_label`: the matched query's cross-entropy against that label."""
        k = self.config.spatial_queries_per_prompt
        ce, predictions, matched_targets, label_ce = [], [], [], []
        for image, masks in enumerate(target_masks):
            for prompt in range(len(masks)):
                if not masks[prompt].any():
                    continue
                group = slice(prompt * k, (prompt + 1) * k)
                with torch.no_grad():
                    cost = -self.config.class_weight * logits[image, group, prompt].softmax(0)
                    cost = cost + self.matcher.mask_costs(mask_logits[image, group], masks[prompt : prompt + 1])[:, 0]
                query = prompt * k + int(cost.argmin())
                ce.append(nn.functional.cross_entropy(
                    logits[image, :, prompt][None], torch.tensor([query], device=logits.device)
                ))
                predictions.append(mask_logits[image, query])
                matched_targets.append(masks[prompt])
                if target_labels is not None:
                    label = target_labels[image][prompt : prompt + 1].to(class_logits.device).long()
                    label_ce.append(nn.functional.cross_entropy(class_logits[image, query][None], label))
        labelled = target_labels is not None
        if not ce:  # no prompt with a target: zeros that keep the outputs in the graph
            zero = logits.sum() * 0 + mask_logits.sum() * 0
            if labelled:
                zero = zero + class_logits.sum() * 0
            terms = {"loss_spatial_ce": zero, "loss_spatial_mask": zero, "loss_spatial_dice": zero}
            return {**terms, "loss_spatial_label": zero} if labelled else terms
        count = len(ce) if count is None else count
        loss_mask, loss_dice = self._mask_losses(torch.stack(predictions), torch.stack(matched_targets), count)
        terms = {"loss_spatial_ce": sum(ce) / count, "loss_spatial_mask": loss_mask, "loss_spatial_dice": loss_dice}
        return {**terms, "loss_spatial_label": sum(label_ce) / count} if labelled else terms

    def forward(self, rounds: list[dict], targets: list[dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """rounds: the model's per-round outputs, last round last (`grounding_logits`, `grounding_mask_logits`,
        `grounding_sentence_mask`; `spatial_logits`, `spatial_mask_logits`, `spatial_class_logits`); targets: per
        image `grounding_masks` and/or `spatial_masks` (with `spatial_class_labels`, each prompt's segment label).
        Returns the weighted total and every term (`_i` for round i)."""
        # The sentences and the prompts with a target, over every process: one collective per call, made whatever
        # the batch holds, so that processes stay paired (seem_hf.loss.global_mean).
        sentences = sum(len(t["grounding_masks"]) for t in targets if "grounding_masks" in t)
        prompts = sum(int(mask.any()) for t in targets for mask in t.get("spatial_masks", ()))
        device = rounds[-1][next(iter(rounds[-1]))].device
        sentence_count, prompt_count = global_mean_denominators([sentences, prompts], device)
        losses = {}
        for index, outputs in enumerate(rounds):
            suffix = "" if index == len(rounds) - 1 else f"_{index}"
            terms = {}
            if "grounding_logits" in outputs and all("grounding_masks" in t for t in targets):
                terms.update(self.grounding(
                    outputs["grounding_logits"], outputs["grounding_mask_logits"], outputs["grounding_sentence_mask"],
                    [t["grounding_masks"].to(outputs["grounding_mask_logits"].dtype) for t in targets], sentence_count,
                ))
            if "spatial_logits" in outputs and all("spatial_masks" in t for t in targets):
                # The label term only where it is weighed, labels are given and the model scored a label set.
                labelled = (self.config.spatial_label_weight > 0 and "spatial_class_logits" in outputs
                            and all("spatial_class_labels" in t for t in targets))
                terms.update(self.spatial(
                    outputs["spatial_logits"], outputs["spatial_mask_logits"],
                    [t["spatial_masks"].to(outputs["spatial_mask_logits"].dtype) for t in targets], prompt_count,
                    outputs.get("spatial_class_logits") if labelled else None,
                    [t["spatial_class_labels"] for t in targets] if labelled else None,
                ))
            losses.update({name + suffix: value for name, value in terms.items()})
        total = sum(value * self.weights[name.rsplit("_", 1)[0] if name[-1].isdigit() else name]
                    for name, value in losses.items())
        return total, losses


__all__ = ["SeemPromptCriterion"]
