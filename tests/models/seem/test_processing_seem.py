"""SeemProcessor, SeemImageProcessor, their post-processing, Auto classes, the pipeline and remote code on the
tiny SEEM checkpoint."""


import numpy as np
import PIL.Image
import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoProcessor, pipeline

from seem_hf import SeemForUniversalSegmentation, SeemProcessor
from seem_hf.models.seem.prompts_seem import PROMPT_TEMPLATES
from seem_hf.postprocessing import panoptic_segmentation
from seem_hf.testing import TINY_LABELS

from ...helpers import run_without_seem_hf


@pytest.fixture(scope="module")
def loaded(tiny_seem_folder_module):
    return AutoModel.from_pretrained(tiny_seem_folder_module).eval(), AutoProcessor.from_pretrained(tiny_seem_folder_module)


@pytest.fixture(scope="module")
def tiny_seem_folder_module():
    from seem_hf.testing import FIXTURES

    return FIXTURES / "tiny-random-seem"


def _image(height=50, width=70, seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_auto_classes_and_inputs(loaded):
    model, processor = loaded
    assert isinstance(model, SeemForUniversalSegmentation) and isinstance(processor, SeemProcessor)
    inputs = processor(images=_image(), text=["dog", "grass"])
    assert inputs["pixel_values"].shape[-2] % 32 == 0 and inputs["pixel_values"].shape[-1] % 32 == 0
    assert inputs["input_ids"].shape == (3, len(PROMPT_TEMPLATES), 77)  # 2 classes + background, 81 prompts
    expected = processor.tokenizer(["a photo of a dog.", "background."], padding="max_length", max_length=77)
    assert inputs["input_ids"][0, 1].tolist() == expected["input_ids"][0]
    assert inputs["input_ids"][2, 0].tolist() == expected["input_ids"][1]
    default = processor(images=_image())
    assert default["input_ids"].shape[0] == len(TINY_LABELS) + 1
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.class_queries_logits.shape[-1] == 3
    # 50 x 70 scaled by min(96 / 50, 128 / 70) (shortest side 96, longest at most 128), padded to 96 x 128
    assert outputs.image_sizes == [(91, 128)] and tuple(inputs["pixel_values"].shape[-2:]) == (96, 128)


@pytest.mark.parametrize("labels, message", [([], "non-empty"), (["a", "a"], "distinct"), ("dog", "non-empty list")])
def test_bad_label_sets(loaded, labels, message):
    with pytest.raises(ValueError, match=message):
        loaded[1](text=labels)


def test_post_processing_crops_the_padding_and_resizes_bicubically(loaded):
    model, processor = loaded
    inputs = processor(images=_image(), text=["dog", "grass"])
    with torch.no_grad():
        outputs = model(**inputs)
    height, width = outputs.image_sizes[0]
    masks = outputs.masks_queries_logits[0]
    padded = tuple(inputs["pixel_values"].shape[-2:])
    expected = F.interpolate(F.interpolate(masks[None], size=padded, mode="bilinear")[..., :height, :width],
                             size=(50, 70), mode="bicubic", antialias=True)[0]
    semantic = processor.post_process_semantic_segmentation(outputs, target_sizes=[(50, 70)])[0]
    scores = torch.einsum("qc,qhw->chw", outputs.class_queries_logits[0].softmax(-1)[:, :-1], expected.sigmoid())
    assert torch.equal(semantic, scores.argmax(0))
    panoptic = processor.post_process_panoptic_segmentation(outputs, threshold=0.0, target_sizes=[(50, 70)])[0]
    reference = panoptic_segmentation(outputs.class_queries_logits, expected[None], threshold=0.0,
                                      overlap_mask_area_threshold=0.8, label_ids_to_fuse=[])[0]
    # a label set other than the default one: nothing is fused unless asked
    assert torch.equal(panoptic["segmentation"], reference["segmentation"])


def test_pipeline_generic_subtasks(tiny_seem_folder_module):
    segmenter = pipeline("image-segmentation", model=str(tiny_seem_folder_module))
    semantic = segmenter(_image(), subtask="semantic")
    assert semantic and all(r["label"] in TINY_LABELS.values() for r in semantic)
    assert all(r["mask"].size == (70, 50) for r in semantic)
    custom = segmenter(_image(), labels=["a cat", "a table"])
    assert {r["label"] for r in custom} <= {"a cat", "a table"}
    for subtask in ("panoptic", "instance"):
        for result in segmenter(_image(), subtask=subtask, threshold=0.0):
            assert result["label"] in TINY_LABELS.values() and result["mask"].size == (70, 50)


def test_remote_code_loads_without_seem_hf(tmp_path, tiny_seem_folder_module, loaded):
    folder = tmp_path / "checkpoint"  # saved for sharing: the folder gets its bundled code
    model, processor = loaded
    model.save_pretrained(folder), processor.save_pretrained(folder)
    inputs = processor(images=_image(), text=["dog"])
    with torch.no_grad():
        expected = model(**inputs)
    torch.save({"inputs": dict(inputs), "class": expected.class_queries_logits, "masks": expected.masks_queries_logits},
               tmp_path / "data.pt")
    output = run_without_seem_hf(
        f"""
        import torch
        from transformers import AutoModelForUniversalSegmentation, AutoProcessor
        folder = {str(folder)!r}
        model = AutoModelForUniversalSegmentation.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        print(type(model).__name__, type(processor).__name__)
        data = torch.load({str(tmp_path / "data.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = model(**data["inputs"])
        print("difference", float((out.class_queries_logits - data["class"]).abs().max()),
              float((out.masks_queries_logits - data["masks"]).abs().max()))
        result = processor.post_process_semantic_segmentation(out, target_sizes=[(50, 70)])[0]
        print("semantic", tuple(result.shape))
        """
    )
    lines = output.strip().splitlines()
    assert lines == ["SeemForUniversalSegmentation SeemProcessor", "difference 0.0 0.0", "semantic (50, 70)"]


def test_instance_binary_maps_follow_seem_s_top_k_rule(loaded):
    model, processor = loaded
    inputs = processor(images=_image(), text=["dog", "grass", "sky"])
    with torch.no_grad():
        outputs = model(**inputs)
    result = processor.post_process_instance_segmentation(outputs, threshold=0.0, return_binary_maps=True, top_k=5,
                                                          target_sizes=[(50, 70)])[0]
    assert result["segmentation"].shape == (5, 50, 70) and result["segmentation"].dtype == torch.bool
    probabilities = outputs.class_queries_logits[0].softmax(-1)[:, :-1]
    top = probabilities.flatten().topk(5)
    scores = [info["score"] for info in result["segments_info"]]
    assert scores == sorted(scores, reverse=True)
    expected = {(int(i % 3), int(i // 3)) for i in top.indices}
    height, width = outputs.image_sizes[0]
    for info, mask in zip(result["segments_info"], result["segmentation"]):
        # the instance is one of the top-5 (label, query) pairs, with that query's resized mask
        query = next(q for label, q in expected
                     if label == info["label_id"] and torch.equal(mask, _resized(outputs, q, height, width) > 0))
        logits = _resized(outputs, query, height, width)
        inside = (logits > 0).float()
        mean = float((logits.sigmoid() * inside).sum() / (inside.sum() + 1e-6))
        assert info["score"] == pytest.approx(float(probabilities[query, info["label_id"]]) * mean, rel=1e-5)
    kept = processor.post_process_instance_segmentation(outputs, threshold=0.5, return_binary_maps=True)[0]
    assert all(info["score"] > 0.5 for info in kept["segments_info"])


def _resized(outputs, query, height, width):
    logits = outputs.masks_queries_logits[0, query : query + 1]
    return F.interpolate(F.interpolate(logits[None], size=(96, 128), mode="bilinear")[..., :height, :width],
                         size=(50, 70), mode="bicubic", antialias=True)[0, 0]


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.99999])
def test_panoptic_resizes_only_confident_queries_with_the_same_segments(threshold):
    """Resizing only the queries that pass the score rule (the speed-up) gives what resizing all of them gives."""
    from types import SimpleNamespace

    from seem_hf import SeemImageProcessor
    from seem_hf.postprocessing import crop_and_resize_masks

    from ...helpers import voronoi_outputs

    raw = voronoi_outputs(batch=2, num_queries=12, num_labels=6, height=16, width=20, num_segments=5)
    outputs = SimpleNamespace(class_queries_logits=raw.logits, masks_queries_logits=raw.pred_masks)
    processor, size = SeemImageProcessor(), (70, 90)
    results = processor.post_process_panoptic_segmentation(outputs, threshold=threshold, target_sizes=[size, size])
    for index, result in enumerate(results):
        masks = crop_and_resize_masks(raw.pred_masks[index], (64, 80), (64, 80), size)
        expected = panoptic_segmentation(raw.logits[index : index + 1], masks[None], threshold=threshold,
                                         overlap_mask_area_threshold=0.8, label_ids_to_fuse=[])[0]
        assert torch.equal(result["segmentation"], expected["segmentation"])
        assert result["segments_info"] == expected["segments_info"]
    assert threshold == 0.99999 or any(result["segments_info"] for result in results)


# ---------------------------------------------------------------------------------------------------- probe defects
def test_generic_post_processing_without_a_label_set_says_to_give_one(loaded):
    model, processor = loaded
    with torch.no_grad():
        outputs = model(**processor(images=_image(), sentences=["the red circle"]))
    assert outputs.class_queries_logits is None
    for method in ("post_process_panoptic_segmentation", "post_process_instance_segmentation",
                   "post_process_semantic_segmentation"):
        with pytest.raises(ValueError, match=r"no class scores.*label set.*text="):
            getattr(processor, method)(outputs)
    with pytest.raises(ValueError, match="no class scores"):
        processor.post_process_instance_segmentation(outputs, return_binary_maps=True)


def test_a_transposed_target_size_is_refused(loaded, tmp_path):
    """The processor reads a photo upright by its EXIF orientation; `image.size[::-1]` is the stored size, its
    transpose, and squashed the upright map into it: refused, naming `image_size`, which gives the right size."""
    from seem_hf.image_utils import image_size

    model, processor = loaded
    stored = _image(50, 70)
    exif = stored.getexif()
    exif[0x0112] = 8
    stored.save(tmp_path / "photo.jpg", exif=exif)
    photo = PIL.Image.open(tmp_path / "photo.jpg")
    inputs = processor(images=photo, text=["dog", "grass"], sentences=["the dog"],
                       visual_prompts=[{"points": [(5, 5)]}])
    with torch.no_grad():
        outputs = model(**inputs)
    for method in ("post_process_panoptic_segmentation", "post_process_instance_segmentation",
                   "post_process_semantic_segmentation", "post_process_referring_segmentation",
                   "post_process_interactive_segmentation"):
        with pytest.raises(ValueError, match=r"target_sizes\[0\].*transposed.*EXIF.*image_utils\.image_size"):
            getattr(processor, method)(outputs, target_sizes=[photo.size[::-1]])
        getattr(processor, method)(outputs, target_sizes=[image_size(photo)])
    assert processor.post_process_semantic_segmentation(outputs, target_sizes=[image_size(photo)])[0].shape == (70, 50)


def test_batched_interactive_results_have_one_mask_per_prompt_given(loaded):
    """Images with 1 and 3 prompts share a batch of 3 prompt slots: each gets the masks of its own prompts only
    (the first got 3 masks, 2 of them for empty slots, with high scores)."""
    model, processor = loaded
    prompts = [[{"points": [(10, 10)]}], [{"points": [(5, 5)]}, {"box": (0, 0, 20, 20)}, {"points": [(30, 20)]}]]
    inputs = processor(images=[_image(), _image(40, 60, seed=1)], text=["dog", "grass"], visual_prompts=prompts)
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.interactive_masks_logits.shape[1] == 3
    assert outputs.spatial_prompt_mask.tolist() == [[True, False, False], [True, True, True]]
    results = processor.post_process_interactive_segmentation(outputs, target_sizes=[(50, 70), (40, 60)])
    assert [len(result["masks"]) for result in results] == [1, 3]
    assert [len(result["labels"]) for result in results] == [1, 3] == [len(result["scores"]) for result in results]
    full = processor.image_processor._resized_masks(outputs, 0, (50, 70), outputs.interactive_masks_logits[0],
                                                    mode="bilinear")
    assert torch.equal(results[0]["masks"][0], full[0].sigmoid() > 0.5)


def test_return_tensors_is_followed_by_every_output(loaded):
    processor = loaded[1]
    kwargs = dict(images=_image(), text=["dog", "grass"], sentences=["the dog"], visual_prompts=[{"points": [(5, 5)]}])
    as_numpy = processor(**kwargs, return_tensors="np")
    as_torch = processor(**kwargs)
    assert as_numpy.keys() == as_torch.keys()
    for key in as_torch:
        assert isinstance(as_torch[key], torch.Tensor) and isinstance(as_numpy[key], np.ndarray), key
        np.testing.assert_array_equal(as_numpy[key], as_torch[key].numpy())
    with pytest.raises(ValueError, match="return_tensors='pt'.*'np'"):
        processor(**kwargs, return_tensors=None)


@pytest.mark.parametrize("labels, message", [
    (["Circle", "circle"], r"'Circle' and 'circle' are the same label"),
    (["circle", "circle "], r"'circle' and 'circle ' are the same label"),
    (["wall-other", "wall"], r"'wall-other' and 'wall' are the same label.*'wall'"),
])
def test_labels_that_seem_reads_alike_are_refused(loaded, labels, message):
    processor = loaded[1]
    with pytest.raises(ValueError, match=message):
        processor(text=labels)
    with pytest.raises(ValueError, match=message):
        processor.set_default_labels(labels)


def test_a_background_label_warns_with_the_fix(loaded):
    with pytest.warns(UserWarning, match=r"'Background' reads as 'background', SEEM's own no-object class.*backdrop"):
        loaded[1](text=["dog", "Background"])


def test_soft_mask_prompts_are_thresholded_at_one_half(loaded):
    processor = loaded[1]
    soft = np.full((50, 70), 0.05, np.float32)
    soft[10:20, 10:30] = 0.9
    masks = processor(images=_image(), visual_prompts=[{"mask": soft}])["spatial_positive_masks"]
    binary = processor(images=_image(), visual_prompts=[{"mask": soft > 0.5}])["spatial_positive_masks"]
    assert torch.equal(masks, binary) and 0 < masks.sum() < 0.2 * masks[0, 0].numel()
    with pytest.raises(ValueError, match=r"float mask holds probabilities in \[0, 1\]"):
        processor(images=_image(), visual_prompts=[{"mask": soft * 3}])


@pytest.mark.parametrize("fuse, error", [([99], ValueError), ([-1], ValueError), ("sky", TypeError),
                                         ([0.5], TypeError)])
def test_label_ids_to_fuse_must_be_label_ids(loaded, fuse, error):
    model, processor = loaded
    with torch.no_grad():
        outputs = model(**processor(images=_image(), text=["dog", "grass"]))
    with pytest.raises(error, match="label_ids_to_fuse"):
        processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=fuse)
    processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=[np.int64(1)])
