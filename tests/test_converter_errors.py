"""The three checkpoint converters, run from their command line as a user runs them, on the wrong input: a missing
file, a folder, an empty or non-checkpoint file, a checkpoint that pickles objects, and another model's checkpoint.
Each error says what is wrong and which checkpoint the converter expects."""

import importlib
import zipfile

import pytest
import torch

CONVERTERS = {
    "seem": ("seem_hf.models.seem.convert_seem_original_to_hf", "SEEM"),
    "detr": ("seem_hf.models.detr_panoptic.convert_detr_panoptic_original_to_hf", "DETR-panoptic"),
    "lseg": ("seem_hf.models.lseg.convert_lseg_original_to_hf", "LSeg"),
}
# One identifying key of each model's original checkpoint.
SIGNATURES = {
    "seem": "sem_seg_head.predictor.query_feat.weight",
    "detr": "detr.query_embed.weight",
    "lseg": "pretrained.model.patch_embed.proj.weight",
}


class Pickled:
    """A Python object that a training checkpoint may pickle besides its tensors."""


def _convert(converter: str, checkpoint, tmp_path):
    module = importlib.import_module(CONVERTERS[converter][0])
    module.main(["--checkpoint", str(checkpoint), "--output-dir", str(tmp_path / "out")])


def _bad_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello world")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    with zipfile.ZipFile(tmp_path / "archive.pth", "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "archive.pth").read_bytes()[:40])
    torch.save({"model": {"weight": torch.zeros(1)}, "extra": Pickled()}, tmp_path / "objects.pth")
    return [
        ("missing.pth", FileNotFoundError, "file not found"),
        ("folder", ValueError, "is a folder"),
        ("empty.pth", ValueError, "is empty: not a PyTorch checkpoint"),
        ("notes.txt", ValueError, "is not a PyTorch checkpoint"),
        ("archive.pth", ValueError, "is not a PyTorch checkpoint"),
        ("truncated.pth", ValueError, "not a PyTorch checkpoint"),
        ("objects.pth", ValueError, "pickles Python objects besides tensors"),
    ]


@pytest.mark.parametrize("converter", CONVERTERS)
def test_unreadable_files_are_named_clearly(converter, tmp_path):
    for name, error, message in _bad_files(tmp_path):
        with pytest.raises(error, match=message) as raised:
            _convert(converter, tmp_path / name, tmp_path)
        assert name in str(raised.value) and CONVERTERS[converter][1] in str(raised.value)
        if name != "objects.pth":  # the weights_only advice applies to that file only
            assert "weights_only" not in str(raised.value)


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("other", CONVERTERS)
def test_another_models_checkpoint_is_refused_by_name(converter, other, tmp_path):
    if converter == other:
        return
    path = tmp_path / f"{other}.pth"
    torch.save({SIGNATURES[other]: torch.zeros(4, 4), "something.else": torch.zeros(1)}, path)
    with pytest.raises(ValueError) as raised:
        _convert(converter, path, tmp_path)
    message = str(raised.value)
    assert f"This is not an original {CONVERTERS[converter][1]} checkpoint" in message
    assert SIGNATURES[converter] in message  # a missing key the converter needs
    assert "something.else" in message  # an unexpected key found instead
    assert CONVERTERS[other][0] in message  # the converter the file belongs to


@pytest.mark.parametrize("converter, entry", [("lseg", "state_dict"), ("detr", "model"), ("seem", "model")])
def test_a_checkpoint_pickling_objects_names_the_way_out_that_works(converter, entry, tmp_path):
    """A training checkpoint whose extras pickle a class (Lightning's hyper-parameters, a trainer's config) is
    refused; the message tells where its state dict is (Lightning's `state_dict` for LSeg), and doing what it says
    gives a file the converter reads."""
    module = importlib.import_module(CONVERTERS[converter][0])
    path = tmp_path / "trained.ckpt"
    torch.save({entry: {SIGNATURES[converter]: torch.zeros(2, 2)}, "hyper_parameters": Pickled()}, path)
    with pytest.raises(ValueError, match="pickles Python objects besides tensors") as raised:
        module.load_original_checkpoint(path)
    message = str(raised.value)
    assert f"torch.save(checkpoint[{entry!r}], 'weights.pth')" in message and "If you trust the file" in message
    assert f"torch.load({str(path)!r}, weights_only=True)" in message and "weights_only=False" not in message
    assert f"safe_globals([{__name__}.Pickled])" in message
    with torch.serialization.safe_globals([Pickled]):  # what the message says: this class allowed, nothing else
        checkpoint = torch.load(path, weights_only=True)
    torch.save(checkpoint[entry], tmp_path / "weights.pth")
    read = module.load_original_checkpoint(tmp_path / "weights.pth")
    assert set(read[0] if isinstance(read, tuple) else read) == {SIGNATURES[converter]}
