"""Which class embeddings SEEM's generic queries train against.

SEEM scores each object query against one text embedding per label. At inference that embedding is the mean of the
label's 81 prompt templates ("a photo of a {}.", ...). SEEM's own training writes each label into one template
drawn at random per batch, with the language encoder frozen: with a pretrained CLIP-style tower, whose templates of
one name agree, that is a mild augmentation. With a random or barely trained tower the templates of one name do
not agree (the tiny and shipped shapes models: mean cosine 0.04-0.09 between two templates of one name), so every
batch's class targets are new random vectors and the classification never learns (4 images, 300 steps: PQ 0).

The rule (`choose_label_prompts`):
- `mean`: train against the embeddings inference uses, the 81-template means. The text tower is frozen in every
  fine-tuning strategy, so they are computed once.
- `random`: SEEM's recipe, one random template per label and batch; for a pretrained tower.
- `auto` (the examples' default): measure the tower's template agreement on the label set (mean cosine between two
  templates of one label) and pick `random` from `AGREEMENT_THRESHOLD` up, `mean` below it.
Asking for `random` with a tower below the threshold warns: that run will not learn its classes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

AGREEMENT_THRESHOLD = 0.5
"""Template agreement from which SEEM's random-template recipe is used under `auto`. Random towers measure
0.04-0.09; CLIP's prompt ensembling relies on templates of one name landing close together (not measured here:
no pretrained tower ships with the package)."""

LABEL_PROMPT_RULES = ("auto", "mean", "random")


@dataclass
class LabelPrompts:
    """The chosen rule, the measured agreement and the label set's 81-template mean embeddings
    `(num_labels + 1, dim_proj)`, "background" last (what `SeemForUniversalSegmentation.get_text_features` gives
    for `SeemProcessor.tokenize_labels`)."""

    rule: str
    agreement: float
    embeddings: torch.Tensor

    def describe(self) -> str:
        how = ("the 81-template mean of each label, as inference scores them" if self.rule == "mean" else
               "one random prompt template per label and batch (SEEM's recipe)")
        return (f"class targets: {how} (--label_prompts {self.rule}; the text tower's template agreement is "
                f"{self.agreement:.2f}, threshold {AGREEMENT_THRESHOLD})")


@torch.no_grad()
def template_agreement(model, input_ids: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(agreement, means): the mean cosine between two different templates of one label, averaged over labels, and
    each label's normalised template mean. `input_ids` `(num_labels, num_templates, length)`."""
    was_training = model.training
    model.eval()
    encoder = model.language_encoder
    parameter = next(encoder.parameters())
    flat = input_ids.flatten(0, 1).to(parameter.device)
    prompts = torch.cat([encoder.encode_text(chunk) for chunk in flat.split(1024)])
    prompts = nn.functional.normalize(prompts.float(), dim=-1).view(*input_ids.shape[:2], -1)
    model.train(was_training)
    count = prompts.shape[1]
    if count < 2:
        raise ValueError("Template agreement needs at least two templates per label.")
    # sum over all pairs i != j of <p_i, p_j> = |sum p|^2 - count, since every p is a unit vector
    pair_sums = prompts.sum(1).pow(2).sum(-1) - count
    agreement = float((pair_sums / (count * (count - 1))).mean())
    return agreement, nn.functional.normalize(prompts.mean(1), dim=-1).to(parameter.dtype)


def choose_label_prompts(model, processor, label_names: list[str], requested: str = "auto") -> LabelPrompts:
    """Apply the module's rule for `model` (a `SeemForUniversalSegmentation`, before adapters wrap it) and the
    label set `label_names`; `requested` is `auto`, `mean` or `random`."""
    if requested not in LABEL_PROMPT_RULES:
        raise ValueError(f"--label_prompts must be one of {LABEL_PROMPT_RULES}, got {requested!r}.")
    agreement, means = template_agreement(model, processor.tokenize_labels(label_names))
    rule = requested
    if requested == "auto":
        rule = "random" if agreement >= AGREEMENT_THRESHOLD else "mean"
    elif requested == "random" and agreement < AGREEMENT_THRESHOLD:
        warnings.warn(
            f"--label_prompts random: the text tower's templates of one label barely agree (mean cosine "
            f"{agreement:.2f} < {AGREEMENT_THRESHOLD}), so each batch's class targets are new random vectors and the "
            "classes will not be learnt. Use --label_prompts mean (or auto) with this tower.",
            stacklevel=2,
        )
    return LabelPrompts(rule, agreement, means.detach().cpu())


__all__ = ["AGREEMENT_THRESHOLD", "LABEL_PROMPT_RULES", "LabelPrompts", "choose_label_prompts",
           "template_agreement"]
