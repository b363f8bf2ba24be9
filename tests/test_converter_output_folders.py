"""Where the three converters write, and what they are told besides the checkpoint: an output folder that is a
file, holds the user's files or an earlier conversion (converting twice); a conversion refused half-way; label sets
and COCO category files as users write them. Nothing the user had is lost or mixed with the converted model."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor

from seem_hf.models.seem import convert_seem_original_to_hf as seem_converter
from tests.test_converter_wrapped_checkpoints import ORIGINALS


def _config(model):
    config = ORIGINALS[model][1]
    return config.__class__.from_dict(config.to_dict())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    for model, (_, _, state) in ORIGINALS.items():
        torch.save(state, folder / f"{model}.pth")
    return folder


def _convert(model, checkpoints, output, **arguments):
    return ORIGINALS[model][0].convert(checkpoints / f"{model}.pth", output, config=_config(model), **arguments)


@pytest.mark.parametrize("model", ORIGINALS)
def test_an_output_folder_holding_other_files_is_refused_and_kept(model, checkpoints, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "pytorch_model.bin").write_bytes(b"another model's weights")
    (output / "notes.txt").write_text("mine")
    (output / "runs").mkdir()
    with pytest.raises(ValueError) as raised:
        _convert(model, checkpoints, output)
    message = str(raised.value)
    assert str(output) in message and "'pytorch_model.bin'" in message and "'notes.txt'" in message
    assert "'runs/'" in message and "new or empty folder" in message
    assert sorted(path.name for path in output.iterdir()) == ["notes.txt", "pytorch_model.bin", "runs"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no half-written folder beside it
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        _convert(model, checkpoints, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("model", ORIGINALS)
def test_converting_twice_replaces_the_earlier_conversion(model, checkpoints, tmp_path):
    output = tmp_path / "out"
    (output / ".git").mkdir(parents=True)  # a clone of the model's Hub repository, converted into and pushed
    (output / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    first = _convert(model, checkpoints, output)
    names = sorted(path.name for path in first.iterdir())
    assert ".git" in names and ".gitattributes" in names
    # what a later save of the earlier conversion may have added: label embeddings and a sharded copy of weights
    (output / "label_embeddings.safetensors").write_bytes(b"stale")
    (output / "model-00002-of-00002.safetensors").write_bytes(b"stale")
    second = _convert(model, checkpoints, output)
    assert second == output and sorted(path.name for path in output.iterdir()) == names
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    card = (output / "README.md").read_text()
    assert "- seem_hf\n" in card  # seem_hf's card, replaced by the new conversion's
    (output / "README.md").write_text("# My notes on this model\n")
    _convert(model, checkpoints, output)
    assert (output / "README.md").read_text() == "# My notes on this model\n"  # the user's own card is kept
    loaded = AutoModel.from_pretrained(output).state_dict()
    fresh = AutoModel.from_pretrained(_convert(model, checkpoints, tmp_path / "fresh")).state_dict()
    assert all(torch.equal(loaded[key], fresh[key]) for key in fresh)


@pytest.mark.parametrize("model", ["seem", "lseg"])
def test_a_bad_label_set_is_refused_before_anything_is_written(model, checkpoints, tmp_path):
    for labels, message in ((["dog", "dog"], "must be distinct"), (["dog", ""], "non-empty strings"),
                            (["Dog", "dog"], "the same label to the model")):
        with pytest.raises(ValueError, match=message):
            _convert(model, checkpoints, tmp_path / "out", labels=labels)
        assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    earlier = _convert(model, checkpoints, tmp_path / "out", labels=["cat", "dog"])
    with pytest.raises(ValueError, match="must be distinct"):
        _convert(model, checkpoints, earlier, labels=["dog", "dog"])
    assert AutoConfig.from_pretrained(earlier).id2label == {0: "cat", 1: "dog"}


def test_seem_thing_ids_must_index_the_labels(checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"thing_label_ids \[2\] index no label: there are 2 labels"):
        _convert("seem", checkpoints, tmp_path / "out", labels=["cat", "sky"], thing_label_ids=[0, 2])
    with pytest.raises(ValueError, match="without labels"):
        _convert("seem", checkpoints, tmp_path / "out", thing_label_ids=[0])
    assert not (tmp_path / "out").exists()


def _categories(tmp_path, content, bom=False):
    path = tmp_path / "categories.json"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + json.dumps(content).encode())
    return path


def test_detr_categories_as_users_write_them(checkpoints, tmp_path):
    categories = [{"id": 2, "name": "circle", "isthing": 1}, {"id": 0, "name": "sky", "isthing": 0}]
    for number, path in enumerate([_categories(tmp_path, categories), _categories(tmp_path, {"categories": categories},
                                                                                  bom=True)]):
        folder = _convert("detr", checkpoints, tmp_path / f"out{number}", categories=path)
        processor = AutoProcessor.from_pretrained(folder)
        assert AutoConfig.from_pretrained(folder).id2label[2] == "circle" and processor.thing_label_ids == [2]
    for content, message in (
        ([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], r"distinct names; repeated: \['a'\]"),
        ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], r"distinct ids; repeated: \[1\]"),
        ([{"id": 1}], "category 0 .* needs a non-empty 'name'"),
        ({"images": []}, "has no 'categories' list"),
        ([{"id": 1, "name": "a", "color": "#ff0000"}], r"'color' must be \[r, g, b\]"),
    ):
        with pytest.raises(ValueError, match=message) as raised:
            _convert("detr", checkpoints, tmp_path / "refused", categories=_categories(tmp_path, content))
        assert "categories.json" in str(raised.value) and not (tmp_path / "refused").exists()


def test_seem_cli_categories_without_colours_and_with_labels(checkpoints, tmp_path, monkeypatch):
    config = _config("seem")
    monkeypatch.setattr(seem_converter, "config_from_original_state_dict", lambda state: config)
    path = _categories(tmp_path, {"categories": [{"id": 7, "name": "sky"}, {"id": 3, "name": "circle", "isthing": 1}]},
                       bom=True)
    seem_converter.main(["--checkpoint", str(checkpoints / "seem.pth"), "--output-dir", str(tmp_path / "out"),
                         "--categories", str(path)])
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert processor.default_labels == ["circle", "sky"] and processor.image_processor.thing_label_ids == [0]
    with pytest.raises(SystemExit):
        seem_converter.main(["--checkpoint", str(checkpoints / "seem.pth"), "--output-dir", str(tmp_path / "two"),
                             "--categories", str(path), "--labels", "a,b"])
    assert not (tmp_path / "two").exists()


def test_lseg_settings_given_with_a_config_are_not_dropped(checkpoints, tmp_path):
    """--arch-option / --block-depth / --activation given with --config were ignored without a word (the config
    won); they must agree with it. Errors about the architecture name the command-line option."""
    from seem_hf.models.lseg import convert_lseg_original_to_hf as lseg_converter

    config_file = tmp_path / "config.json"
    _config("lseg").to_json_file(config_file)
    arguments = ["--checkpoint", str(checkpoints / "lseg.pth"), "--output-dir", str(tmp_path / "out"),
                 "--config", str(config_file)]
    held = _config("lseg").arch_option
    with pytest.raises(ValueError, match=rf"arch_option=2 \(the config has {held!r}\).*Set them in the config JSON"):
        lseg_converter.main(arguments + ["--arch-option", "2", "--activation", _config("lseg").activation])
    assert not (tmp_path / "out").exists()
    lseg_converter.main(arguments + ["--activation", _config("lseg").activation])  # agreeing settings are fine
    with pytest.raises(ValueError, match=r"--config, config="):
        lseg_converter.main(["--checkpoint", str(checkpoints / "lseg.pth"), "--output-dir", str(tmp_path / "two")])
