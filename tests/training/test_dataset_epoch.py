"""Every epoch reaches the training dataset's `set_epoch`, with any number of processes (accelerate forwards the
call to the dataset only when the sampler has no `set_epoch`; under several processes its sampler does)."""

import torch
from accelerate.data_loader import prepare_data_loader
from torch.utils.data import DataLoader
from transformers import TrainerControl, TrainerState, TrainingArguments

from seem_hf.training.trainer import DatasetEpochCallback, SegmentationTrainer
from seem_hf.testing import FIXTURES


class _Epochs(torch.utils.data.Dataset):
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return index


def test_callback_moves_the_dataset_where_a_seedable_sampler_takes_accelerate_s_call(tmp_path):
    dataset = _Epochs()
    # rank 0 of 2 as Trainer prepares it: the sharded batch sampler's seedable sampler takes the set_epoch call
    loader = prepare_data_loader(DataLoader(dataset, batch_size=2, shuffle=True), num_processes=2, process_index=0,
                                 put_on_device=False, use_seedable_sampler=True)
    loader.set_epoch(1)
    assert dataset.epochs == []  # the defect the callback exists for (when accelerate forwards it, it is harmless)
    callback, args = DatasetEpochCallback(dataset), TrainingArguments(tmp_path, report_to=[])
    for epoch in (0.0, 1.0, 2.5):  # a resumed run starts mid-epoch
        callback.on_epoch_begin(args, TrainerState(epoch=epoch), TrainerControl())
    assert dataset.epochs == [0, 1, 2]


def test_segmentation_trainer_registers_it(tmp_path):
    from seem_hf import DetrPanopticForSegmentation

    dataset = _Epochs()
    trainer = SegmentationTrainer(
        model=DetrPanopticForSegmentation.from_pretrained(FIXTURES / "tiny-random-detr_panoptic"),
        args=TrainingArguments(tmp_path, report_to=[]), train_dataset=dataset, categories=[], postprocess=None,
    )
    assert any(isinstance(c, DatasetEpochCallback) and c.dataset is dataset for c in trainer.callback_handler.callbacks)
