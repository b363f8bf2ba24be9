"""Stage 1 of the SEEM default's recipe, text side: pretrain its frozen text tower on the shapes sentences.

The released SEEM reads referring sentences with a CLIP text tower pretrained on image captions; the embedded default
has a random 2-layer tower, frozen in training, whose projection is fitted only to keep the 8 class names apart
(`make_tiny_checkpoints.fit_seem_label_embeddings`). Through that projection every sentence lands near its shape's
name: "the small red square" has cosine 0.98 with "the red square" and 0.95 with "the blue square", "the red star"
0.99 with "the green star", so a grounding query, chosen by its cosine with the sentence, cannot tell which square or
star is meant (the default's referring precision@0.5 is 0.71 for thing sentences, 1.0 for stuff ones). This stage
gives the tower what caption pretraining gives the released one, from the shapes grammar itself: every sentence the
generator can say (`sentences`) and every class name in SEEM's 81 prompt templates, each to be told apart by linear
heads on its normalised embedding: the category (shape or stuff; "background" for its prompts), and, for things,
the colour, the size word and the place phrase ("none" where the sentence has none). The heads are dropped.

    python scripts/pretrain_text.py --steps 300   # prints the attribute accuracies and the sentences' separation
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seem_hf.data.shapes import SHAPES_DOMAINS, ShapesDomain  # noqa: E402

# Attribute groups read from a sentence (each has "none" last): what the heads tell apart.
ATTRIBUTES = ("category", "color", "size", "place", "referent")


def sentences(domain: ShapesDomain) -> tuple[list[str], torch.Tensor, dict[str, int]]:
    """Every referring sentence the generator can write for `domain` (`shapes._describe`'s thing sentences with and
    without their place phrase, and its stuff sentences), their attributes `(sentences, len(ATTRIBUTES))` as
    indices (category: stuff, then shapes; colour, size word and place phrase, "none" last; the referent) and each
    attribute's number of values."""
    colors, sizes = list(domain.thing_colors), list(domain.sizes)
    places = sorted(set(domain.across + domain.down))
    categories = [*domain.stuff, *domain.shapes]
    counts = {"category": len(categories) + 1, "color": len(colors) + 1, "size": len(sizes) + 1,
              "place": len(places) + 1}  # + "background" / "none"
    texts = [domain.stuff_sentence.format(name=name) for name in domain.stuff]
    targets = [[categories.index(name), len(colors), len(sizes), len(places)] for name in domain.stuff]
    for shape, color, size in itertools.product(domain.shapes, [None, *colors], [None, *sizes]):
        if size and not color:
            continue  # a size word comes only with a colour
        words = " ".join(word for word in (size, color, shape) if word)
        for place in [None, *places]:
            texts.append(f"the {words}" + (f" {place}" if place else ""))
            targets.append([categories.index(shape), colors.index(color) if color else len(colors),
                            sizes.index(size) if size else len(sizes), places.index(place) if place else len(places)])
    # The referent: which (category, colour, size) the sentence names, one class each, so that two sentences that
    # name different things of one image differ in more than the attributes they do not share.
    referents = sorted({tuple(target[:3]) for target in targets})
    targets = [[*target, referents.index(tuple(target[:3]))] for target in targets]
    return texts, torch.tensor(targets), {**counts, "referent": len(referents)}


def max_cosine(model, processor, texts: list[str]) -> float:
    """The largest cosine between the embeddings of two different sentences among `texts` (what decides whether a
    grounding query, chosen by its cosine with the sentence, can pick the right one)."""
    with torch.no_grad():
        ids = processor.tokenize_sentences([texts])["grounding_input_ids"][0]
        embeddings = model.language_encoder.encode_text(ids)
    return float((embeddings @ embeddings.t() - 2 * torch.eye(len(texts))).max())


def pretrain_text_tower(model, processor, steps: int, batch_size: int = 64, learning_rate: float = 1e-3,
                        seed: int = 0, domain: str = "shapes", log=print) -> list[tuple[int, dict[str, float]]]:
    """Train SEEM `model`'s text tower and projection (in place) for `steps` steps of `batch_size` prompts, half
    sentences and half class names in a random template of SEEM's 81 (`domain`'s), with a linear head per attribute on
    the normalised embeddings (logits scaled by the model's `logit_scale`). Returns (step, metrics) before training
    and every `steps // 5` steps: each head's accuracy on every sentence, `label_max_cosine` (the largest cosine
    between two class names' 81-template means, what the class scores compare) and `sentence_max_cosine` (the
    largest between two sentences of one held-out image, median over the images)."""
    from seem_hf.data import ShapesStream

    torch.manual_seed(seed)
    shapes = SHAPES_DOMAINS[domain]
    texts, targets, counts = sentences(shapes)
    text_ids = processor.tokenize_sentences([texts])["grounding_input_ids"][0]
    label_ids = processor.tokenize_labels([*shapes.stuff, *shapes.shapes])  # (categories + 1, 81, length)
    # A class name says nothing of colour, size or place: only its category is taught (-100: ignored).
    label_targets = torch.tensor([[category] + [-100] * (len(ATTRIBUTES) - 1) for category in range(len(label_ids))])
    held_out = [[grounding["sentences"][0] for grounding in row["groundings"]]
                for row in ShapesStream.held_out(16, seed=0, domain=domain)]
    held_out = [image for image in held_out if len(image) > 1]
    encoder = model.language_encoder
    heads = torch.nn.ModuleDict({name: torch.nn.Linear(encoder.lang_proj.out_features, counts[name])
                                 for name in ATTRIBUTES})
    parameters = [*encoder.text_model.parameters(), *encoder.lang_proj.parameters(), *heads.parameters()]
    trainable = [parameter.requires_grad for parameter in parameters]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    scale = encoder.logit_scale.exp().detach()
    generator = torch.Generator().manual_seed(seed)

    def logits(input_ids):
        embeddings = encoder.encode_text(input_ids)
        return [scale * heads[name](embeddings) for name in ATTRIBUTES]

    history, started = [], time.perf_counter()
    was_training = model.training
    model.train()
    for step in range(steps + 1):
        if step:
            chosen = torch.randint(len(texts), (batch_size // 2,), generator=generator)
            labels = torch.randint(len(label_ids), (batch_size - len(chosen),), generator=generator)
            templates = torch.randint(label_ids.shape[1], (len(labels),), generator=generator)
            batch_targets = torch.cat([targets[chosen], label_targets[labels]])
            batch_logits = logits(torch.cat([text_ids[chosen], label_ids[labels, templates]]))
            loss = sum(F.cross_entropy(each, batch_targets[:, column]) for column, each in enumerate(batch_logits))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if step % max(1, steps // 5) == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                every = logits(text_ids)
                metrics = {name: float((every[column].argmax(1) == targets[:, column]).float().mean())
                           for column, name in enumerate(ATTRIBUTES)}
                label_embeddings = model.get_text_features(label_ids)
                metrics["label_max_cosine"] = float((label_embeddings @ label_embeddings.t()
                                                     - 2 * torch.eye(len(label_ids))).max())
                metrics["sentence_max_cosine"] = float(torch.tensor(
                    [max_cosine(model, processor, image) for image in held_out]).median())
            model.train()
            history.append((step, metrics))
            log(f"text pretraining step {step}/{steps}: " + (f"loss {loss.item():.3f}, " if step else "")
                + ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
                + f" ({time.perf_counter() - started:.0f} s)")
    model.train(was_training)
    for parameter, was_trainable in zip(parameters, trainable):
        parameter.requires_grad_(was_trainable)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_tiny_checkpoints import fit_seem_label_embeddings
    from train_defaults import shapes_seem_config

    from seem_hf import SeemForUniversalSegmentation, SeemImageProcessor, SeemProcessor
    from seem_hf.clip_tokenizer import clip_tokenizer
    from seem_hf.data.shapes import SHAPES_VOCABULARY

    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(shapes_seem_config())
    processor = SeemProcessor(SeemImageProcessor(id2label=dict(SHAPES_VOCABULARY.id2label)), clip_tokenizer())
    fit_seem_label_embeddings(model, processor)
    pretrain_text_tower(model, processor, options.steps)


if __name__ == "__main__":
    main()
