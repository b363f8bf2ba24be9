"""Label sets, sentences and visual prompts as users bring them, through the processors and pipelines: read in the
order given or refused with the fix, never read some other way without a word."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, pipeline

import seem_hf  # noqa: F401  (registers the models and the pipelines)
from seem_hf.testing import FIXTURES

PROCESSORS = {name: AutoProcessor.from_pretrained(FIXTURES / f"tiny-random-{name}") for name in ("seem", "lseg")}


# ------------------------------------------------------------------------------------------------------ label sets
@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_label_sets_without_an_order_of_their_own_are_refused(name):
    """A mapping given as `text` used to be read by its keys (an id2label dict {"0": "cat"} gave the one label "0"),
    and a set by its hash order, which changes between processes, so the result's label ids pointed at other names;
    the pipeline and the processors now refuse both, naming the argument and the fix. Sequences and iterators are
    read in their order."""
    processor = PROCESSORS[name]
    expected = processor(text=["cat", "sofa"])["input_ids"]
    for ordered in (("cat", "sofa"), np.array(["cat", "sofa"]), iter(["cat", "sofa"])):
        assert torch.equal(processor(text=ordered)["input_ids"], expected)
    with pytest.raises(ValueError, match=r"text takes a list of label names, not a mapping.*sorted\(id2label\)"):
        processor(text={"0": "cat", "1": "sofa"})
    with pytest.raises(ValueError, match=r"text is a set.*text=sorted"):
        processor(text={"cat", "sofa"})
    segmenter = pipeline("image-segmentation", model=str(FIXTURES / f"tiny-random-{name}"))
    with pytest.raises(ValueError, match=r"labels is a set.*labels=sorted"):
        segmenter(np.zeros((32, 32, 3), np.uint8), labels={"cat", "sofa"})


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_labels_longer_than_the_context_warn_and_labels_cut_alike_are_refused(name):
    """CLIP reads 77 tokens; a longer label used to be cut without a word, and two labels that differ only after the
    cut became one class the model could not tell apart. Now the cut is a warning naming the label, and labels cut
    alike are refused; a label that fills the context exactly is not cut and gets no warning."""
    processor = PROCESSORS[name]
    prefix = "a " * 100
    with pytest.warns(UserWarning, match=r"longer than CLIP's 77-token context.*'a a a"):
        ids = processor(text=[prefix + "red circle", "sky"])["input_ids"]
    assert ids.shape[-1] == 77
    with pytest.raises(ValueError, match=r"same label to the model once cut to CLIP's 77-token context"), \
            pytest.warns(UserWarning, match="longer than"):
        processor(text=[prefix + "red circle", prefix + "blue circle"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        processor(text=["a tall red circle", "sky"])
        if name == "lseg":  # start + 75 words + end: exactly the context (SEEM's templates add words)
            assert processor(text=[" ".join(["a"] * 75)])["attention_mask"].all()


# ------------------------------------------------------------------------------------------------------- sentences
def test_sentences_in_any_sequence_and_unordered_containers_refused():
    """A tuple, a numpy array or a generator of sentences is a list of them (an array was refused as 'not a list',
    a generator failed with "'generator' object is not subscriptable"); a set failed the same way and a dict with
    a bare KeyError: both are refused naming the argument."""
    processor = PROCESSORS["seem"]
    image = np.zeros((40, 60, 3), np.uint8)
    expected = processor(images=image, sentences=["the cat", "a sofa"])["grounding_input_ids"]
    for given in (("the cat", "a sofa"), np.array(["the cat", "a sofa"]), (s for s in ["the cat", "a sofa"])):
        assert torch.equal(processor(images=image, sentences=given)["grounding_input_ids"], expected)
    batch = processor(images=[image, image], sentences=np.array([["the cat", "a sofa"], ["the cat", "a sofa"]]))
    assert torch.equal(batch["grounding_input_ids"], expected.repeat(2, 1, 1))
    with pytest.raises(ValueError, match=r"sentences is a set.*give a list"):
        processor(images=image, sentences={"the cat", "a sofa"})
    with pytest.raises(ValueError, match=r"sentences is a mapping"):
        processor(images=image, sentences={"cat": "the cat"})
    with pytest.raises(ValueError, match=r"sentences\[1\] is a set"):
        processor(images=[image, image], sentences=[["the cat"], {"a sofa"}])
    with pytest.raises(ValueError, match=r"sentences takes a list of prompts.*got int"):
        processor(images=image, sentences=3)


def test_label_sets_and_prompts_are_read_by_one_helper():
    """Label sets and SEEM's prompts were checked by two copies of the same code (`check_label_set` and the SEEM
    processor's own); both now go through `processing_utils.ordered_list`, so a set, a non-iterable value or an
    iterator reads alike wherever it is given, with an example of the argument; a mapping of labels keeps its
    id2label hint."""
    from seem_hf.processing_utils import ordered_list

    assert ordered_list(iter("ab"), "x", "['a']") == ["a", "b"]
    processor = PROCESSORS["seem"]
    image = np.zeros((40, 60, 3), np.uint8)
    for call, name, example in ((lambda v: processor(text=v), "text", "['cat', 'dog']"),
                                (lambda v: processor(images=image, sentences=v), "sentences", '["the red circle"]')):
        with pytest.raises(ValueError, match=rf"^{name} takes a list of .*e\.g\. {name}={re.escape(example)}; got int"):
            call(3)
        with pytest.raises(ValueError, match=rf"^{name} is a set, whose order changes .* e\.g\. {name}=sorted"):
            call({"a cat"})
    with pytest.raises(ValueError, match=r"sorted\(id2label\)"):
        processor(text={0: "cat"})


def test_sentences_longer_than_the_context_warn():
    """A referring sentence past CLIP's 77 tokens was cut without a word; the warning names it (and only it)."""
    processor = PROCESSORS["seem"]
    image = np.zeros((40, 60, 3), np.uint8)
    with pytest.warns(UserWarning, match=r"These sentences are longer.*'the the the") as caught:
        processor(images=image, sentences=["the " * 90 + "circle", "the square"])
    assert "the square" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        processor(images=image, sentences=["the circle", "the square"])


# ------------------------------------------------------------------------------------------------- visual prompts
def test_visual_prompts_follow_the_input_data_format_of_their_image():
    """Prompts are placed by the image's size as the image processor read it. A (3, 4, 3) numpy array given with
    input_data_format="channels_first" is 4 rows by 3 columns; its prompts used to be placed as if it were 3 by 4
    (channels last), so a click at the bottom row was refused and one at x = 3 was put on the wrong pixel."""
    processor = PROCESSORS["seem"]
    channels_first = np.zeros((3, 4, 3), np.uint8)
    click = {"points": [(2, 3)]}  # x = 2 (last column), y = 3 (last row)
    given = processor(images=channels_first, visual_prompts=[click], input_data_format="channels_first")
    expected = processor(images=channels_first.transpose(1, 2, 0), visual_prompts=[click])
    assert torch.equal(given["pixel_mask"], expected["pixel_mask"])
    assert torch.equal(given["spatial_positive_masks"], expected["spatial_positive_masks"])
    with pytest.raises(ValueError, match=r"outside the image \(width 3, height 4"):
        processor(images=channels_first, visual_prompts=[{"points": [(3, 1)]}], input_data_format="channels_first")


def test_prompts_on_the_image_s_edges_and_malformed_points():
    """A box given by its outer edges, (0, 0, width, height) for the whole image as COCO and detectors give boxes,
    was refused as 'outside the image'; a click in the outer half of a border pixel (x = width - 0.6, matplotlib's
    extent) too. Both now mark the pixel they fall in: the whole-image box its centre, the edge click the border
    pixel, as a click on that pixel's centre does. NaN points were called 'outside', and points given as dicts
    failed inside numpy with "float() argument must be ..."; both are named."""
    processor = PROCESSORS["seem"]
    image = np.zeros((50, 70, 3), np.uint8)

    def positive(prompt):
        return processor(images=image, visual_prompts=[prompt])["spatial_positive_masks"]

    assert torch.equal(positive({"box": (0, 0, 70, 50)}), positive({"points": [(35, 25)]}))
    assert torch.equal(positive({"points": [(69.4, 49.4)]}), positive({"points": [(69, 49)]}))
    assert torch.equal(positive({"points": [(-0.4, 0)]}), positive({"points": [(0, 0)]}))
    for bad, message in (({"points": [(70, 10)]}, r"outside the image \(width 70, height 50"),
                         ({"box": (0, 0, 71, 50)}, r"box \(0, 0, 71, 50\) reaches outside the image"),
                         ({"box": (30, 10, 20, 20)}, r"x0 <= x1.*\(x, y, x \+ width, y \+ height\)"),
                         ({"points": [(float("nan"), 3)]}, "finite numbers"),
                         ({"points": [{"x": 1, "y": 2}]}, r"list of \(x, y\) points \(numbers\)")):
        with pytest.raises(ValueError, match=message):
            positive(bad)


def test_prompt_errors_name_the_image_and_object_and_the_exif_reading(tmp_path):
    """A bad prompt in a batch was reported without saying which image and object it belonged to; and a prompt made
    on a sideways-stored photo's stored pixels (PIL's image.size) failed with no word that the processor reads the
    photo upright. Both are now said."""
    import PIL.Image

    processor = PROCESSORS["seem"]
    image = np.zeros((30, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"visual_prompts of image 1, object 1: box must be"):
        processor(images=[image, image], visual_prompts=[[{"points": [(1, 1)]}],
                                                         [{"points": [(1, 1)]}, {"box": (5, 5, 1, 1)}]])
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 30 high; upright 30 wide, 40 high
    PIL.Image.fromarray(image).save(tmp_path / "photo.jpg", exif=exif)
    photo = PIL.Image.open(tmp_path / "photo.jpg")
    stored = np.ones((photo.height, photo.width), bool)  # a mask drawn on the pixels as stored
    with pytest.raises(ValueError, match=r"image 0, object 0: mask must have the image's size \(40, 30\).*EXIF "
                                         r"orientation.*image_size\(image\)"):
        processor(images=photo, visual_prompts=[{"mask": stored}])
    upright = processor(images=photo, visual_prompts=[{"mask": stored.T}])["spatial_positive_masks"]
    assert upright.any()


def test_detr_panoptic_processor_refuses_text_and_prompts_by_name():
    """A call written for the LSeg or SEEM processor, `processor(image, ["cat", "dog"])`, gave DETR-panoptic's
    processor the labels as `return_tensors` (a dataclass validation error about return_tensors), and
    `text=` / `sentences=` a TypeError from transformers' kwargs class. Its arguments now follow the other
    processors' order, and text and prompts are refused naming the fixed label set and where to go instead."""
    processor = AutoProcessor.from_pretrained(FIXTURES / "tiny-random-detr_panoptic")
    image = np.zeros((40, 60, 3), np.uint8)
    expected = processor(images=image)["pixel_values"]
    assert torch.equal(processor(image)["pixel_values"], expected)
    for call in (lambda: processor(image, ["cat", "dog"]), lambda: processor(images=image, text=["cat", "dog"])):
        with pytest.raises(ValueError, match=r"takes no text: DETR-panoptic reads no text .*8 labels: 'sky'"):
            call()
    with pytest.raises(ValueError, match=r"takes no sentences or visual_prompts.*use LSeg or SEEM"):
        processor(images=image, sentences=["the cat"], visual_prompts=[{"points": [(1, 1)]}])


def test_referring_pipeline_refuses_sentences_without_an_order_of_their_own():
    """The referring pipeline answers with one list per sentence, in the sentences' order, and an empty list for a
    sentence with no match. A set of sentences was read in its hash order, which changes between processes, so an
    empty answer could not be told apart from another sentence's; a set and a mapping are now refused as the
    processor refuses them (`ordered_list`), and tuples, arrays and iterators are read in their order."""
    referring = pipeline("referring-segmentation", model=str(FIXTURES / "tiny-random-seem"))
    image = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(ValueError, match=r"sentences is a set, whose order changes .*sentences=sorted"):
        referring(image, sentences={"the cat", "a sofa"})
    with pytest.raises(ValueError, match=r"sentences is a mapping"):
        referring(image, sentences={"cat": "the cat"})
    with pytest.raises(ValueError, match=r"sentences takes a list of sentences.*got int"):
        referring(image, sentences=3)
    expected = referring(image, sentences=["the cat", "a sofa"], top_k=2)
    for given in (("the cat", "a sofa"), np.array(["the cat", "a sofa"]), iter(["the cat", "a sofa"])):
        results = referring(image, sentences=given, top_k=2)
        assert [[(match["sentence"], match["score"]) for match in answer] for answer in results] == [
            [(match["sentence"], match["score"]) for match in answer] for answer in expected]
