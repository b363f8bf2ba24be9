"""The DETR-panoptic collator, and Trainer consuming the bundled dataset through it."""

import math

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor
from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, load_coco_panoptic, make_shapes_dataset
from seem_hf.testing import FIXTURES
from seem_hf.training import DetrPanopticCollator, masks_to_normalized_boxes


def test_boxes_from_masks():
    masks = torch.zeros(2, 10, 20, dtype=torch.bool)
    masks[0, 2:6, 4:12] = True
    masks[1, :, :] = True
    boxes = masks_to_normalized_boxes(masks, 10, 20)
    torch.testing.assert_close(boxes[0], torch.tensor([8 / 20, 4 / 10, 8 / 20, 4 / 10]))
    torch.testing.assert_close(boxes[1], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert masks_to_normalized_boxes(torch.zeros(0, 4, 4, dtype=torch.bool), 4, 4).shape == (0, 4)


def test_trainer_trains_on_the_bundled_dataset(tmp_path):
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=4, num_val=0, image_size=96, seed=0)["train"]
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
    train = AugmentedPanopticDataset(dataset, LargeScaleJitter(output_size=96, min_scale=0.5), seed=0)
    folder = FIXTURES / "tiny-random-detr_panoptic"
    model = DetrPanopticForSegmentation.from_pretrained(folder)
    collator = DetrPanopticCollator(DetrPanopticImageProcessor.from_pretrained(folder))
    batch = collator([train[0], train[1]])
    assert batch["pixel_values"].shape == (2, 3, 96, 96) and len(batch["labels"]) == 2
    first = batch["labels"][0]
    assert first["masks"].shape[1:] == (96, 96) and len(first["class_labels"]) == len(first["boxes"])
    arguments = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, use_cpu=True, report_to=[],
        remove_unused_columns=False, logging_steps=1, save_strategy="no", disable_tqdm=True,
    )
    before = model.mask_head.output_conv.weight.detach().clone()
    trainer = Trainer(model=model, args=arguments, train_dataset=train, data_collator=collator)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert not torch.equal(before, model.mask_head.output_conv.weight.detach())  # the mask head was trained
    assert np.isfinite(model.mask_head.output_conv.weight.detach().numpy()).all()


def test_seem_batches_from_a_saved_processor_carry_one_label_set(tmp_path):
    """A saved `SeemProcessor` stores its default label set's tokens with the image processor (so that the image
    processor alone feeds transformers' pipeline); the examples' batches must still hold only the label set they
    give (`LabelSetCollator`): a second one (`input_ids` beside `class_embeddings`) made the model refuse every
    training step of a model fine-tuned from a saved SEEM checkpoint."""
    from seem_hf import SeemForUniversalSegmentation, SeemProcessor
    from seem_hf.data import ShapesStream
    from seem_hf.training import LabelSetCollator

    SeemProcessor.from_pretrained(FIXTURES / "tiny-random-seem").save_pretrained(tmp_path)
    processor = SeemProcessor.from_pretrained(tmp_path)
    assert "input_ids" in processor.image_processor(images=[np.zeros((64, 64, 3), np.uint8)], return_tensors="pt")
    model = SeemForUniversalSegmentation.from_pretrained(FIXTURES / "tiny-random-seem")
    rows = AugmentedPanopticDataset(ShapesStream(seed=0, image_size=64), LargeScaleJitter(64, 1.0, 1.0))
    embeddings = torch.randn(len(model.config.id2label) + 1, model.config.dim_proj)
    collator = LabelSetCollator(DetrPanopticCollator(processor.image_processor),
                                lambda batch: {"class_embeddings": embeddings})
    batch = collator([rows[0], rows[1]])
    assert "input_ids" not in batch
    assert torch.isfinite(model(**batch).loss)
