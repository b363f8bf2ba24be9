"""pipeline("image-segmentation") on a seem_hf checkpoint folder: every subtask, every input form, label names
from the config, and no "not supported" error from transformers' model-type check."""

import functools
import logging
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
import transformers
from transformers import AutoProcessor, pipeline

import seem_hf  # noqa: F401  (registers the models and the pipeline)
from seem_hf import ArrayImageSegmentationPipeline


@pytest.fixture(scope="module")
def segmenter():
    from seem_hf.testing import FIXTURES

    return pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def test_builds_our_pipeline_without_error_log(caplog):
    from seem_hf.testing import FIXTURES

    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.ERROR):
            built = pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))
    finally:
        transformers.logging.disable_propagation()
    assert isinstance(built, ArrayImageSegmentationPipeline)
    assert not [record for record in caplog.records if "not supported" in record.getMessage()]


def test_a_model_with_adapters_builds_both_pipelines_without_error_log(caplog, image):
    """A fine-tuned model as `seem_hf.adapters` and `PeftModel.from_pretrained` give it (a `PeftModel`) ran, but
    building a pipeline on it logged transformers' error "The model 'PeftModel' is not supported for
    image-segmentation"; it is now checked as the model it wraps, for both pipelines."""
    from seem_hf.adapters import prepare_for_fine_tuning
    from seem_hf.testing import FIXTURES

    folder = FIXTURES / "tiny-random-seem"
    model = prepare_for_fine_tuning(transformers.AutoModel.from_pretrained(folder), "freeze_backbone_adapt_head",
                                    bottleneck_size=4, lora_rank=2).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert type(model).__name__ == "PeftModel"
    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.ERROR):
            segmenter = pipeline("image-segmentation", model=model, image_processor=processor.image_processor,
                                 processor=processor)
            referring = pipeline("referring-segmentation", model=model, processor=processor)
    finally:
        transformers.logging.disable_propagation()
    assert not [record for record in caplog.records if "not supported" in record.getMessage()]
    assert segmenter.model is model and referring.model is model
    assert segmenter(image, subtask="semantic") and len(referring(image, sentences=["the left part"])) == 1


@pytest.mark.parametrize("subtask", ["panoptic", "instance", "semantic", None])
def test_subtasks_return_labelled_masks(segmenter, image, subtask):
    results = segmenter(PIL.Image.fromarray(image), subtask=subtask)
    assert results, subtask
    labels = set(segmenter.model.config.id2label.values())
    for segment in results:
        assert segment["label"] in labels
        assert segment["mask"].size == (50, 40) and segment["mask"].mode == "L"
        assert set(np.unique(np.array(segment["mask"]))) <= {0, 255}


def test_every_input_form_gives_the_same_result(segmenter, image, tmp_path):
    path = tmp_path / "image.png"
    PIL.Image.fromarray(image).save(path)
    forms = [
        PIL.Image.fromarray(image),
        str(path),
        image,
        np.ascontiguousarray(image.transpose(2, 0, 1)),
        torch.from_numpy(image).permute(2, 0, 1),
    ]
    reference = None
    for form in forms:
        results = segmenter(form, subtask="panoptic")
        summary = [(r["label"], r["score"], np.array(r["mask"]).tobytes()) for r in results]
        reference = reference or summary
        assert summary == reference


def test_grayscale_array_and_bad_input(segmenter, image):
    gray = image[..., 0]
    results = segmenter(gray, subtask="semantic")
    assert results[0]["mask"].size == (50, 40)
    with pytest.raises(ValueError, match="dimensions"):
        segmenter(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        segmenter(np.full((8, 8, 3), np.nan, dtype=np.float32))


def test_batch_of_images(segmenter, image):
    results = segmenter([image, image[:20]], subtask="semantic")
    assert len(results) == 2 and results[1][0]["mask"].size == (50, 20)


def test_pipeline_skips_unconfident_masks_with_the_same_result(segmenter, image):
    """The pipeline passes its threshold to DETR-panoptic's forward; the segments equal a full forward's."""
    processor = segmenter.image_processor
    inputs = processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        outputs = segmenter.model(**inputs)
    for subtask, method in (("panoptic", "post_process_panoptic_segmentation"),
                            ("instance", "post_process_instance_segmentation")):
        expected = getattr(processor, method)(
            outputs, threshold=0.9, mask_threshold=0.5, overlap_mask_area_threshold=0.5, target_sizes=[(40, 50)]
        )[0]
        results = segmenter(image, subtask=subtask)
        assert [(r["label"], r["score"]) for r in results] == [
            (segmenter.model.config.id2label[s["label_id"]], s["score"]) for s in expected["segments_info"]
        ]
        for result, info in zip(results, expected["segments_info"]):
            assert np.array_equal(np.array(result["mask"]) > 0, (expected["segmentation"] == info["id"]).numpy())
    assert "mask_score_threshold" not in segmenter.preprocess(image, subtask="semantic")
    assert segmenter.preprocess(image, threshold=0.7)["mask_score_threshold"] == 0.7


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_label_set_is_encoded_once_per_label_set_and_weights(name, image, tmp_path, monkeypatch):
    """SEEM's label set is ~81 prompts per label: the pipeline encodes it once, and again only when the labels or
    the text tower's weights change; the segments equal those of a pipeline that encodes every time."""
    from seem_hf.label_embeddings import CACHE_ENV
    from seem_hf.testing import FIXTURES

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # a fresh disk cache (tests/models/seem/test_label_cache.py)

    segmenter = pipeline("image-segmentation", model=str(FIXTURES / f"tiny-random-{name}"))
    calls = []
    segmenter.model.get_text_features = _counting(segmenter.model.get_text_features, calls)
    kwargs = {"subtask": "semantic"}
    first = segmenter(image, **kwargs)
    second = segmenter(image, **kwargs)
    assert len(calls) == 1
    _assert_same_segments(first, second)
    other_labels = ["circle", "square", "background"]
    segmenter(image, labels=other_labels)
    segmenter(image, labels=other_labels)
    assert len(calls) == 2
    with torch.no_grad():  # an optimizer step or load_state_dict changes parameters in place
        tower = segmenter.model.get_submodule(segmenter.model._text_tower_modules[-1])
        next(tower.parameters()).add_(1e-3)  # content, not the version counter: the cache is keyed by a hash
    segmenter(image, labels=other_labels)
    assert len(calls) == 3

    fresh = pipeline("image-segmentation", model=str(FIXTURES / f"tiny-random-{name}"))
    _assert_same_segments(fresh(image, **kwargs), first)


def _counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


def _assert_same_segments(first, second):
    assert [segment["label"] for segment in first] == [segment["label"] for segment in second]
    for a, b in zip(first, second):
        assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


# ------------------------------------------------------------------------------------- issue 15: calls and batches
@pytest.fixture(scope="module")
def shapes_images(tmp_path_factory):
    """Four photos of the bundled shapes dataset, two of them at the sizes of the issue (451x300 and 600x400)."""
    from seem_hf.data import make_shapes_dataset

    paths = make_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=0, num_val=2, image_size=128)["val"]
    first, second = (PIL.Image.open(path).convert("RGB") for path in sorted(paths["image_dir"].glob("*.jpg")))
    return [np.asarray(first), np.asarray(second), np.asarray(first.resize((451, 300))),
            np.asarray(second.resize((600, 400)))]


def _summary(results):
    return [(segment["label"], segment["score"]) for segment in results]


def _semantic_map(results, labels):
    ids = {label: index for index, label in enumerate(labels)}
    shape = np.asarray(results[0]["mask"]).shape
    segmentation = np.full(shape, -1)
    for segment in results:
        segmentation[np.asarray(segment["mask"]) > 0] = ids[segment["label"]]
    return segmentation


def test_semantic_calls_are_not_changed_by_the_pipeline_s_panoptic_settings(shapes_images):
    """DETR-panoptic (the trained shapes default): the pipeline's semantic map is the model plus
    `post_process_semantic_segmentation`, whether the pipeline was built without a subtask (its panoptic mask
    threshold used to reach semantic calls and skip masks: one label over the whole image), was called for
    panoptic just before, or was built with a threshold of its own. Same computation on the same pixels, so the
    maps are compared pixel for pixel."""
    from seem_hf.demo import DEFAULTS

    image = shapes_images[0]
    built = [pipeline("image-segmentation", model=str(DEFAULTS["detr_panoptic"]))]
    built.append(pipeline("image-segmentation", model=str(DEFAULTS["detr_panoptic"]), threshold=0.5))
    model, processor = built[0].model, built[0].image_processor
    with torch.no_grad():
        outputs = model(**processor(images=image, return_tensors="pt"))
    expected = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0].numpy()
    assert len(np.unique(expected)) >= 3  # water, grass and shapes: a map worth comparing
    labels = [model.config.id2label[index] for index in range(len(model.config.id2label))]
    for segmenter in built:
        segmenter(image, subtask="panoptic")
        np.testing.assert_array_equal(_semantic_map(segmenter(image, subtask="semantic"), labels), expected)
    # a pipeline built with threshold=0.5 uses it for panoptic calls that do not restate it
    panoptic = processor.post_process_panoptic_segmentation(
        outputs, threshold=0.5, mask_threshold=0.5, overlap_mask_area_threshold=0.5, target_sizes=[image.shape[:2]]
    )[0]
    assert _summary(built[1](image, subtask="panoptic")) == [
        (model.config.id2label[info["label_id"]], info["score"]) for info in panoptic["segments_info"]
    ]


def test_argument_checks(segmenter, image):
    """`labels="cat"` is one string (it used to become the labels "c", "a", "t"); a mapping is not a label list;
    thresholds outside [0, 1] and unknown subtasks are refused before any work."""
    from seem_hf.testing import FIXTURES

    lseg = pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-lseg"))
    with pytest.raises(ValueError, match="one string"):
        lseg(image, labels="cat")
    with pytest.raises(ValueError, match="id2label"):
        lseg(image, labels={0: "cat", 1: "other"})
    assert {r["label"] for r in lseg(image, labels=("cat", "other"))} <= {"cat", "other"}
    with pytest.raises(ValueError, match="semantic"):
        lseg(image, labels=["cat", "other"], subtask="panoptic")
    for bad, message in (({"threshold": 1.5}, "threshold"), ({"mask_threshold": -0.1}, "mask_threshold"),
                         ({"subtask": "semantics"}, "subtask")):
        with pytest.raises(ValueError, match=message):
            segmenter(image, **bad)


@pytest.mark.parametrize("name", ["lseg", "seem"])
def test_processor_and_model_label_sets_must_agree(name, image):
    """A processor whose default label set is not the model's config.id2label (set without `model=`) used to name
    segments from the wrong set or fail with a KeyError on a missing id; now the call says so and how to mend it,
    and once the two are made one set the segments carry its names."""
    from transformers import AutoModel

    from seem_hf.testing import FIXTURES

    folder = FIXTURES / f"tiny-random-{name}"
    model, processor = AutoModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    labels = ["cat", "dog", "sofa"]
    processor.set_default_labels(labels)
    segmenter = pipeline("image-segmentation", model=model, image_processor=processor.image_processor,
                         processor=processor)
    with pytest.raises(ValueError, match=r"default label set \(3 labels: 'cat', 'dog', 'sofa'\).*model=model"):
        segmenter(image, subtask="semantic")
    processor.set_default_labels(labels, model=model)
    assert {r["label"] for r in segmenter(image, subtask="semantic")} <= set(labels)


@pytest.mark.parametrize("name", ["lseg", "seem"])
def test_a_model_without_a_label_set_is_not_prompted_with_placeholders(name, image, tmp_path):
    """A model saved with no label set of its own (a SEEM conversion without --labels: transformers' config
    placeholders {0: 'LABEL_0', 1: 'LABEL_1'}) was prompted with those names, so every image came back as
    'LABEL_0' (or, panoptic, as nothing) without a word; the call now asks for labels, and labels given work."""
    from transformers import AutoModel, PretrainedConfig

    from seem_hf.testing import FIXTURES

    folder = FIXTURES / f"tiny-random-{name}"
    model, processor = AutoModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    placeholders = PretrainedConfig().id2label
    model.config.id2label = placeholders
    model.config.label2id = {label: index for index, label in placeholders.items()}
    processor = type(processor)(type(processor.image_processor)(), processor.tokenizer)  # no default label set
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    segmenter = pipeline("image-segmentation", model=str(tmp_path))
    for subtask in ("semantic", None):
        with pytest.raises(ValueError, match=r"has no default label set.*LABEL_0, LABEL_1.*labels=\['cat', 'dog'\]"):
            segmenter(image, subtask=subtask)
    assert {segment["label"] for segment in segmenter(image, subtask="semantic", labels=["cat", "dog"])} <= {
        "cat", "dog"}


def test_referring_arguments_and_init_defaults(image):
    """Referring segmentation: a pipeline built with sentences= keeps them for calls that give none (a call's
    unset arguments used to override them with None); empty sentences, top_k=0 and mask_threshold=1.5 are named."""
    from seem_hf.testing import FIXTURES

    folder = str(FIXTURES / "tiny-random-seem")
    built = pipeline("referring-segmentation", model=folder, sentences="the circle", top_k=2)
    results = built(image)
    assert len(results) == 1 and len(results[0]) <= 2 and results[0][0]["sentence"] == "the circle"
    for bad, message in (({"sentences": []}, "at least one"), ({"sentences": [""]}, "at least one"),
                         ({"top_k": 0}, "top_k"), ({"mask_threshold": 1.5}, "mask_threshold"),
                         ({"sentences": [["a"], ["b"]]}, "every image")):
        with pytest.raises(ValueError, match=message):
            built(image, **bad)
    with pytest.raises(ValueError, match="empty list"):
        built([])


def _assert_same_results(single, batched, tolerance):
    assert len(single) == len(batched)
    for one, many in zip(single, batched):
        name = "sentence" if one and "sentence" in one[0] else "label"
        assert [segment[name] for segment in one] == [segment[name] for segment in many]
        for a, b in zip(one, many):
            if a["score"] is not None:
                assert abs(a["score"] - b["score"]) < 1e-4
            a, b = np.asarray(a["mask"]), np.asarray(b["mask"])
            assert a.shape == b.shape and (a != b).mean() <= tolerance


@pytest.mark.parametrize("case", ["lseg", "lseg-labels", "detr_panoptic", "seem-labels"])
def test_batched_calls_give_the_results_of_one_at_a_time(case, shapes_images):
    """`batch_size=3` over images of four sizes (two equal, so one batch really runs two images at once) gives
    each image's results of a call on its own: same labels and scores, masks equal up to 0.5% of the pixels
    (batched matrix products round differently, which can flip pixels where two masks nearly tie)."""
    from seem_hf.demo import DEFAULTS
    from seem_hf.testing import FIXTURES

    name = case.split("-")[0]
    folder = FIXTURES / "tiny-random-seem" if name == "seem" else DEFAULTS[name]
    segmenter = pipeline("image-segmentation", model=str(folder))
    segmenter.batching_trials = 0  # always share a forward (CPU timing decides otherwise; tested below)
    kwargs = {"subtask": "panoptic", "threshold": 0.5} if name == "detr_panoptic" else {"subtask": "semantic"}
    if case.endswith("labels"):
        kwargs["labels"] = ["circle", "square", "grass", "water", "sky", "other"]
    images = [shapes_images[0], shapes_images[1], shapes_images[2], shapes_images[3]]
    single = [segmenter(image, **kwargs) for image in images]
    assert any(len(results) > 1 for results in single) or name == "seem"  # real segments (tiny SEEM: a label)
    batched = segmenter(images, batch_size=3, **kwargs)
    _assert_same_results(single, batched, tolerance=0.005)


@pytest.mark.parametrize("name", ["seem", "detr_panoptic"])
def test_padding_batches_images_of_different_sizes(name, shapes_images):
    """`padding=True` runs images of different processed sizes in one forward, padded to the largest as the
    originals batch them (pixel_mask 0 on the padding), and crops each image's results back to it: the same segments
    as one image at a time, scores and masks close (the features near the padding differ; measured: SEEM 0.4% of
    the padded image's mask pixels and scores within 2e-3, the embedded DETR-panoptic 9.3% and 0.004, its stride-32
    features seeing more of the padding). Without it, sizes never mix.

    Padding moves the embedded DETR-panoptic's confident queries' scores by up to 0.004 but its weak ones' by up to
    0.11 (a square 0.45 alone, 0.548 padded): the threshold is set where no query's score lies (0.7), since one among
    the scores adds or drops a segment (an earlier default's water, 0.909 alone and 0.898 padded, fell out at 0.9)."""
    from seem_hf.demo import DEFAULTS

    segmenter = pipeline("image-segmentation", model=str(DEFAULTS[name]))
    segmenter.batching_trials = 0  # always share a forward (CPU timing decides otherwise; tested below)
    kwargs = {"subtask": "panoptic"} if name == "seem" else {"subtask": "panoptic", "threshold": 0.7}
    images = shapes_images[:3]  # 128x128 twice and 300x451: processed 256x256 and 171x256 (DETR 170x256)
    single = [segmenter(image, **kwargs) for image in images]
    shapes, forward = [], segmenter.model.forward

    @functools.wraps(forward)  # the pipeline reads the forward's signature
    def counted(*args, **inputs):
        shapes.append(tuple(inputs["pixel_values"].shape))
        return forward(*args, **inputs)

    segmenter.model.forward = counted
    unpadded = segmenter(images, batch_size=3, **kwargs)
    assert len(shapes) == 2  # the two sizes apart
    _assert_same_results(single, unpadded, tolerance=0.005)
    shapes.clear()
    padded = segmenter(images, batch_size=3, padding=True, **kwargs)
    assert len(shapes) == 1 and shapes[0][0] == 3  # one forward
    for one, many in zip(single, padded):
        assert [segment["label"] for segment in one] == [segment["label"] for segment in many]
        assert all(abs(a["score"] - b["score"]) < (2e-3 if name == "seem" else 0.02) for a, b in zip(one, many))
        moved = sum(int((np.asarray(a["mask"]) != np.asarray(b["mask"])).sum()) for a, b in zip(one, many))
        assert moved <= (0.01 if name == "seem" else 0.25) * np.asarray(one[0]["mask"]).size
    with pytest.raises(ValueError, match="padding"):
        segmenter(images, batch_size=3, padding="yes", **kwargs)


def test_batched_referring_calls_give_the_results_of_one_at_a_time(shapes_images):
    from seem_hf.testing import FIXTURES

    segmenter = pipeline("referring-segmentation", model=str(FIXTURES / "tiny-random-seem"))
    segmenter.batching_trials = 0  # always share a forward (CPU timing decides otherwise)
    kwargs = {"sentences": ["the red circle", "the water"], "top_k": 2}
    single = [segmenter(image, **kwargs) for image in shapes_images]
    batched = segmenter(shapes_images, batch_size=2, **kwargs)
    for one, many in zip(single, batched):
        _assert_same_results(one, many, tolerance=0.005)


def test_pipeline_from_a_saved_folder_without_seem_hf(tmp_path):
    """The model card's call, `pipeline("image-segmentation", model=folder, trust_remote_code=True)`, in a process
    where seem_hf cannot be imported (transformers' own pipeline, the folder's own code), for the three models,
    gives the segments seem_hf's pipeline gives (SEEM used to fail: its label set was not with the image
    processor). Same computation on the same pixels: labels equal, masks up to 0.1% of the pixels (transformers'
    pipeline runs the full forward where seem_hf's skips unconfident DETR masks, which ties can flip)."""
    import json

    from transformers import AutoModel

    from seem_hf.testing import FIXTURES

    from .helpers import run_without_seem_hf

    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    expected, folders = {}, {}
    for name in ("seem", "lseg", "detr_panoptic"):
        folders[name] = folder = tmp_path / name
        AutoModel.from_pretrained(FIXTURES / f"tiny-random-{name}").save_pretrained(folder)
        AutoProcessor.from_pretrained(FIXTURES / f"tiny-random-{name}").save_pretrained(folder)
        segmenter = pipeline("image-segmentation", model=str(folder))
        subtask = "panoptic" if name == "detr_panoptic" else "semantic"  # the tiny SEEM keeps no panoptic segment
        expected[name] = [(r["label"], np.asarray(r["mask"]).tolist())
                          for r in segmenter(PIL.Image.fromarray(image), subtask=subtask)]
    output = run_without_seem_hf(f"""
        import json, numpy as np, PIL.Image
        from transformers import pipeline
        image = PIL.Image.fromarray(np.load({str(tmp_path / 'image.npy')!r}))
        results = {{}}
        for name, folder in {json.dumps({k: str(v) for k, v in folders.items()})}.items():
            segmenter = pipeline("image-segmentation", model=folder, trust_remote_code=True)
            assert "seem_hf" not in type(segmenter.model).__module__
            subtask = "panoptic" if name == "detr_panoptic" else "semantic"
            results[name] = [(r["label"], np.asarray(r["mask"]).tolist()) for r in segmenter(image, subtask=subtask)]
        print(json.dumps(results))
    """)
    results = json.loads(output.strip().splitlines()[-1])
    for name in expected:
        got, want = results[name], expected[name]
        assert got and [label for label, _ in got] == [label for label, _ in want], name
        for (_, a), (_, b) in zip(got, want):
            assert (np.array(a) != np.array(b)).mean() <= 0.001, name


@pytest.mark.parametrize(("seconds_per_forward", "pays"), [
    (lambda batch: 0.1 + 0.01 * batch, True),  # a fixed cost per forward: sharing it pays
    (lambda batch: 0.03 * batch * batch, False),  # each image slower in a larger forward (compute-bound CPU)
])
def test_cpu_batches_share_a_forward_only_where_it_was_measured_to_pay(
    shapes_images, monkeypatch, seconds_per_forward, pays
):
    """On CPU an input shape's first group runs one image at a time, its next `batching_trials` groups run once
    together and once one by one (the trials, on the same images), and its later groups share one forward only if
    that was faster. Every call's results are those of one image at a time."""
    import types

    import seem_hf.pipelines
    from seem_hf.testing import FIXTURES

    segmenter = pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))
    images = [shapes_images[0]] * 4
    single = segmenter(images[0], subtask="panoptic")
    batch_sizes, forward = [], segmenter.model.forward
    # The pipeline's clock advances only by the simulated forward times: the tiny model's own, which a busy CI
    # machine stretches by any amount, must not decide the outcome.
    clock = [0.0]
    monkeypatch.setattr(seem_hf.pipelines, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    @functools.wraps(forward)  # the pipeline reads the forward's signature
    def timed(*args, **inputs):
        batch = inputs["pixel_values"].shape[0]
        batch_sizes.append(batch)
        clock[0] += seconds_per_forward(batch)
        return forward(*args, **inputs)

    segmenter.model.forward = timed
    trials = [[4, 1, 1, 1, 1]] * segmenter.batching_trials
    for expected in ([1, 1, 1, 1], *trials, [4] if pays else [1, 1, 1, 1]):
        _assert_same_results([single] * 4, segmenter(images, batch_size=4, subtask="panoptic"), tolerance=0.005)
        assert batch_sizes == expected
        batch_sizes.clear()
    (measurements,) = segmenter.batching_measurements.values()
    assert len(measurements) == 2
    assert all((shared < segmenter.batching_gain * alone) == pays for shared, alone in measurements)
    segmenter(images[:2], batch_size=4, subtask="panoptic")  # the decision is per input shape, not per batch
    assert batch_sizes == ([2] if pays else [1, 1])


def test_numpy_and_tensor_scalars_are_numbers_and_fused_ids_are_checked(segmenter, image):
    """Arguments post-processing accepts (numpy and one-element tensor scalars) pass the pipeline's checks too, and
    `label_ids_to_fuse`, which the pipeline ignored whatever it held, is refused with the way to fuse labels."""
    from seem_hf.testing import FIXTURES

    expected = segmenter(image, threshold=0.5)
    for threshold in (np.float32(0.5), np.float64(0.5), torch.tensor(0.5)):
        assert [r["label"] for r in segmenter(image, threshold=threshold)] == [r["label"] for r in expected]
    referring = pipeline("referring-segmentation", model=str(FIXTURES / "tiny-random-seem"))
    assert len(referring(image, sentences="the circle", top_k=np.int64(2))[0]) <= 2
    with pytest.raises(ValueError, match="top_k"):
        referring(image, sentences="the circle", top_k=np.float32(2.5))
    # transformers' pipeline takes no label_ids_to_fuse and dropped it silently; post-processing checks the ids
    for fuse in ([99], [-1], "sky", [0.5], [0]):
        with pytest.raises(ValueError, match="label_ids_to_fuse is not an argument of the pipeline.*post_process"):
            segmenter(image, subtask="panoptic", label_ids_to_fuse=fuse)


def test_thresholds_the_results_do_not_read_are_named(shapes_images):
    """transformers' pipeline drops a threshold that its results do not read without a word: LSeg (semantic only),
    `subtask="semantic"` and a per-call label set have no score or mask threshold, and DETR's own panoptic rule
    (`panoptic_rule="detr"`, as converted checkpoints ship) no mask or overlap threshold. Each now warns, naming the
    argument and why; a threshold that is read gives no warning, and the results are unchanged."""
    from seem_hf.demo import DEFAULTS

    image = shapes_images[0]
    lseg = pipeline("image-segmentation", model=str(DEFAULTS["lseg"]))
    with pytest.warns(UserWarning, match=r"^threshold is not used: LSegForSemanticSegmentation gives semantic "):
        result = lseg(image, threshold=0.3)
    assert _summary(result) == _summary(lseg(image))
    seem = pipeline("image-segmentation", model=str(DEFAULTS["seem"]))
    with pytest.warns(UserWarning, match=r"^threshold, mask_threshold are not used: subtask='semantic' gives"):
        seem(image, subtask="semantic", threshold=0.3, mask_threshold=0.2)
    with pytest.warns(UserWarning, match=r"^overlap_mask_area_threshold is not used: a call with labels= gives"):
        seem(image, labels=["circle", "square"], overlap_mask_area_threshold=0.3)
    detr = pipeline("image-segmentation", model=str(DEFAULTS["detr_panoptic"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detr(image, threshold=0.5, mask_threshold=0.3, overlap_mask_area_threshold=0.6)
        seem(image, subtask="instance", threshold=0.5, mask_threshold=0.3)
    detr.image_processor.panoptic_rule = "detr"
    with pytest.warns(UserWarning, match=r"^mask_threshold is not used: the image processor's panoptic_rule='detr'"):
        detr(image, threshold=0.5, mask_threshold=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detr(image, threshold=0.5)
        detr(image, subtask="instance", mask_threshold=0.3)


def test_thresholds_given_as_none_are_not_given(shapes_images):
    """`segmenter(image, threshold=None)` (a wrapper forwarding its own optional arguments does this) reached
    post-processing as None and failed with "threshold must be a number between 0 and 1, got NoneType None" for
    SEEM, and mask_threshold / overlap_mask_area_threshold for DETR-panoptic too. None now means not given, as in
    the referring pipeline: the pipeline's own value, else the default, applies."""
    from seem_hf.demo import DEFAULTS

    image = shapes_images[0]
    for name in ("seem", "detr_panoptic"):
        segmenter = pipeline("image-segmentation", model=str(DEFAULTS[name]))
        expected = _summary(segmenter(image))
        assert _summary(segmenter(image, threshold=None, mask_threshold=None, overlap_mask_area_threshold=None)) == (
            expected)
        built = pipeline("image-segmentation", model=str(DEFAULTS[name]), threshold=0.5)
        assert _summary(built(image, threshold=None)) == _summary(built(image)) == _summary(segmenter(image,
                                                                                                     threshold=0.5))
