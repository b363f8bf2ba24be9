"""seem_hf's metrics as `evaluate` modules: loaded offline by path, the numbers of `seem_hf.metrics` whether the
examples come one by one, in batches or from two processes (evaluate's file-based pooling), and usable as a Trainer's
`compute_metrics` (transformers' batch-wise protocol) and as `SegmentationTrainer`'s semantic metric."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import evaluate
import numpy as np
import pytest
import torch
from transformers import Trainer, TrainingArguments

import seem_hf
from seem_hf import LSegForSemanticSegmentation, LSegProcessor
from seem_hf.metrics import (
    EVALUATE_MODULES,
    MaskAPAccumulator,
    PanopticQualityAccumulator,
    ReferringAccumulator,
    SemanticSegmentationAccumulator,
    evaluate_module_path,
    number_of_clicks,
)
from seem_hf.testing import FIXTURES
from seem_hf.training import SegmentationTrainer, SemanticCollator

# The modules hand their inputs, stored exactly (integer maps, booleans or COCO RLE, float64 scores), to the same
# accumulator: the only room for a difference is the order of floating-point sums, far below 1e-12.
SAME = 1e-12
# evaluate's mean_iou names for numbers the mean_iou module also gives under seem_hf's (a drop-in replacement)
MEAN_IOU_ALIASES = {"overall_accuracy", "per_category_iou", "per_category_accuracy"}
CATEGORIES = [{"id": 1, "isthing": 1, "name": "disc"}, {"id": 2, "isthing": 1, "name": "square"},
              {"id": 3, "isthing": 0, "name": "sky"}]


def _panoptic_images(count=6, seed=0):
    """Segment-id maps with things, stuff, void, a crowd region and imperfect predictions."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        gt = np.zeros((24, 32), np.int64)
        gt[:12] = 1  # sky
        gt[14:22, 2:10] = 2  # a disc
        gt[13:23, 16:26] = 3  # a square, crowd in every third image
        pred = gt.copy()
        pred[rng.random(gt.shape) < 0.15] = 0  # void pixels
        pred[14:22, 2 + index % 4:10 + index % 4] = 2  # the disc shifted by up to 3 pixels
        pred[2:6, 28:31] = 4  # a false positive square
        gt_segments = [{"id": 1, "category_id": 3, "iscrowd": 0, "area": int((gt == 1).sum())},
                       {"id": 2, "category_id": 1, "iscrowd": 0, "area": int((gt == 2).sum())},
                       {"id": 3, "category_id": 2, "iscrowd": int(index % 3 == 0), "area": int((gt == 3).sum())}]
        pred_segments = [{"id": 1, "category_id": 3}, {"id": 2, "category_id": 1}, {"id": 3, "category_id": 2},
                         {"id": 4, "category_id": 2}]
        images.append(({"segmentation": pred, "segments_info": pred_segments},
                       {"segmentation": gt, "segments_info": gt_segments}))
    return images


def _cases():
    """name -> (predictions, references or None, compute arguments, the numbers of seem_hf.metrics)."""
    rng = np.random.default_rng(0)
    cases = {}

    panoptic = _panoptic_images()
    accumulator = PanopticQualityAccumulator(CATEGORIES)
    for prediction, reference in panoptic:
        accumulator.update(reference["segmentation"], reference["segments_info"], prediction["segmentation"],
                           prediction["segments_info"])
    cases["panoptic_quality"] = ([p for p, _ in panoptic], [r for _, r in panoptic], {"categories": CATEGORIES},
                                 accumulator.compute())

    targets = [rng.integers(0, 4, (12, 16)) for _ in range(6)]
    targets[0][:2] = 255  # ignored pixels
    predictions = [np.where(rng.random(t.shape) < 0.6, t % 255, rng.integers(0, 5, t.shape)) for t in targets]
    accumulator = SemanticSegmentationAccumulator(5)
    for prediction, target in zip(predictions, targets):
        accumulator.update(prediction, target)
    cases["mean_iou"] = (predictions, targets, {"num_labels": 5}, accumulator.compute())

    instances_pred, instances_gt = [], []
    accumulator = MaskAPAccumulator([1, 2])
    for image_id in range(6):
        gt_masks = rng.random((3, 16, 16)) < 0.3
        gt_labels = rng.integers(1, 3, 3)
        pred_masks = np.concatenate([gt_masks ^ (rng.random(gt_masks.shape) < 0.1), rng.random((2, 16, 16)) < 0.3])
        pred_labels, scores = np.concatenate([gt_labels, [1, 2]]), rng.random(5)
        crowd = np.array([0, 0, int(image_id == 2)])
        accumulator.update(image_id, gt_masks, gt_labels, pred_masks, pred_labels, scores, gt_iscrowd=crowd)
        instances_pred.append({"masks": pred_masks, "labels": pred_labels, "scores": scores})
        instances_gt.append({"masks": gt_masks, "labels": gt_labels, "iscrowd": crowd})
    cases["mask_ap"] = (instances_pred, instances_gt, {"category_ids": [1, 2]}, accumulator.compute())

    masks_gt = [rng.random((10, 12)) < 0.4 for _ in range(6)]
    masks_pred = [m ^ (rng.random(m.shape) < 0.2) for m in masks_gt]
    accumulator = ReferringAccumulator()
    for prediction, target in zip(masks_pred, masks_gt):
        accumulator.update(prediction, target)
    cases["referring_iou"] = (masks_pred, masks_gt, {}, accumulator.compute())

    ious = [np.sort(rng.random(int(rng.integers(1, 8)))).tolist() for _ in range(6)]
    cases["number_of_clicks"] = (ious, None, {"max_clicks": 7}, number_of_clicks(ious, max_clicks=7))
    return cases


CASES = _cases()


def _assert_same(result, expected):
    assert result.keys() - MEAN_IOU_ALIASES == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            _assert_same(result[key], value)
        elif isinstance(value, list):
            np.testing.assert_allclose(result[key], value, rtol=SAME, atol=SAME)
        else:
            assert result[key] == pytest.approx(value, rel=SAME, abs=SAME), key


def _inputs(case, start, stop):
    predictions, references, _, _ = case
    inputs = {"predictions": predictions[start:stop]}
    if references is not None:
        inputs["references"] = references[start:stop]
    return inputs


def test_modules_load_from_the_package_with_the_network_cut(monkeypatch):
    """Every socket connection refused: each module loads from the installed package's file and computes."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in EVALUATE_MODULES:
        module = evaluate.load(evaluate_module_path(name), keep_in_memory=True)
        assert module.name == name and Path(evaluate_module_path(name)).parent == Path(seem_hf.__file__).parent / \
            "metrics" / "evaluate_modules"
    referring = evaluate.load(evaluate_module_path("referring_iou"), keep_in_memory=True)
    assert referring.compute(predictions=[[[1, 0]]], references=[[[1, 1]]])["ciou"] == 0.5


def test_the_cases_are_not_trivial():
    """Perfect or empty scores would let a module that drops or reorders images pass."""
    assert 0.2 < CASES["panoptic_quality"][3]["All"]["pq"] < 0.95 and CASES["panoptic_quality"][3]["Stuff"]["n"] == 1
    assert 0.2 < CASES["mean_iou"][3]["mean_iou"] < 0.95
    assert 0.2 < CASES["mask_ap"][3]["map"] < 0.95
    assert 0.2 < CASES["referring_iou"][3]["ciou"] < 0.95
    assert 1 < CASES["number_of_clicks"][3]["noc@85"] < 7


@pytest.mark.parametrize("name", EVALUATE_MODULES)
def test_batches_one_by_one_and_compute_give_the_numbers_of_seem_hf_metrics(name):
    case = CASES[name]
    metric = evaluate.load(evaluate_module_path(name), keep_in_memory=True)
    metric.add_batch(**_inputs(case, 0, 2))
    metric.add_batch(**_inputs(case, 2, 3))
    single = _inputs(case, 3, 4)
    metric.add(**{key[:-1]: value[0] for key, value in single.items()})  # add(prediction=, reference=)
    _assert_same(metric.compute(**_inputs(case, 4, 6), **case[2]), case[3])
    # The module starts afresh after compute, as evaluate's modules do: all at once gives the same numbers.
    _assert_same(metric.compute(**_inputs(case, 0, 6), **case[2]), case[3])


@pytest.mark.parametrize("name", EVALUATE_MODULES)
def test_two_processes_pool_their_batches_through_evaluate_files(name, tmp_path):
    """evaluate's distributed protocol, two modules with `num_process=2` run side by side (threads here; evaluate's
    own tests use processes: the rendez-vous is through file locks either way): process 1 writes its examples and
    gets None, process 0 reads both processes' files and computes over all of them; twice, as a training run
    evaluates more than once."""
    case = CASES[name]
    options = {"num_process": 2, "cache_dir": str(tmp_path), "experiment_id": "two_processes", "timeout": 30}
    modules = [evaluate.load(evaluate_module_path(name), process_id=rank, **options) for rank in (0, 1)]
    shards = {0: [(0, 2), (5, 6)], 1: [(2, 5)]}
    evaluation_done = threading.Barrier(2)

    def run(rank):
        results = []
        for _ in range(2):
            for start, stop in shards[rank]:
                modules[rank].add_batch(**_inputs(case, start, stop))
            results.append(modules[rank].compute(**case[2]))
            evaluation_done.wait(timeout=60)  # the next evaluation starts when this one is over everywhere
        return results

    with ThreadPoolExecutor(2) as pool:
        process_0, process_1 = pool.map(run, (0, 1))
    assert process_1 == [None, None]
    for result in process_0:
        _assert_same(result, case[3])
    assert not list(tmp_path.rglob("*.arrow"))  # the inputs are deleted once computed


def test_inputs_as_tensors_and_post_processor_dicts():
    """Tensors on any device and dicts carrying more keys than the module stores; ground-truth `iscrowd` and `area`
    default to 0 and the pixel count."""
    predictions, references, kwargs, expected = CASES["panoptic_quality"]
    as_tensors = [{"segmentation": torch.from_numpy(p["segmentation"]),
                   "segments_info": [dict(s, score=0.9, label_id=s["category_id"] - 1) for s in p["segments_info"]]}
                  for p in predictions]
    def without_defaults(segment):  # no `area`, and `iscrowd` only where it is 1
        kept = {"id": segment["id"], "category_id": segment["category_id"]}
        return kept | {"iscrowd": 1} if segment["iscrowd"] else kept

    counted = [{"segmentation": torch.from_numpy(r["segmentation"]),
                "segments_info": [without_defaults(segment) for segment in r["segments_info"]]} for r in references]
    metric = evaluate.load(evaluate_module_path("panoptic_quality"), keep_in_memory=True)
    _assert_same(metric.compute(predictions=as_tensors, references=counted, **kwargs), expected)

    predictions, references, kwargs, expected = CASES["mean_iou"]
    metric = evaluate.load(evaluate_module_path("mean_iou"), keep_in_memory=True)
    metric.add_batch(predictions=torch.from_numpy(np.stack(predictions)),
                     references=torch.from_numpy(np.stack(references)))
    _assert_same(metric.compute(**kwargs), expected)


def test_errors_name_the_fix():
    metric = evaluate.load(evaluate_module_path("panoptic_quality"), keep_in_memory=True)
    post_processed = {"segmentation": np.ones((2, 2)), "segments_info": [{"id": 1, "label_id": 0, "score": 0.9}]}
    with pytest.raises(ValueError, match="lacks \\['category_id'\\].*label_id"):
        metric.add(prediction=post_processed, reference=post_processed)
    metric = evaluate.load(evaluate_module_path("mask_ap"), keep_in_memory=True)
    with pytest.raises(ValueError, match="2 `scores` for 1 masks"):
        metric.add(prediction={"masks": np.ones((1, 2, 2)), "labels": [1], "scores": [0.5, 0.4]},
                   reference={"masks": np.ones((1, 2, 2)), "labels": [1]})
    with pytest.raises(ValueError, match="No seem_hf evaluate module named 'miou'.*mean_iou"):
        evaluate_module_path("miou")


# Trainer integration on the tiny LSeg fixture: a few shapes images with two labelled regions each.
LABELS = ["background", "disc", "square"]


def _rows(count=5, size=64, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        masks = np.zeros((2, size, size), bool)
        top, left = rng.integers(0, size // 2, 2)
        masks[1, top:top + size // 3, left:left + size // 3] = True
        masks[0] = ~masks[1]
        masks[0, : size // 8] = False  # unlabelled: ignored
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        image[masks[1]] = (200, 40, 40)
        rows.append({"image": image, "masks": masks, "labels": [0, int(rng.integers(1, 3))], "iscrowd": [0, 0],
                     "valid": np.ones((size, size), bool)})
    return rows


@pytest.fixture(scope="module")
def lseg():
    model = LSegForSemanticSegmentation.from_pretrained(FIXTURES / "tiny-random-lseg")
    processor = LSegProcessor.from_pretrained(FIXTURES / "tiny-random-lseg")
    return model, processor, SemanticCollator(processor, LABELS, ignore_index=model.config.ignore_index)


def _arguments(tmp_path, **overrides):
    return TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, use_cpu=True, report_to="none",
                             remove_unused_columns=False,
                             disable_tqdm=True, **overrides)


def _segmentation_trainer(lseg, tmp_path, **kwargs):
    model, processor, collator = lseg

    def postprocess(outputs, target_sizes):
        return processor.post_process_semantic_segmentation(outputs, target_sizes=target_sizes)

    categories = [{"id": index + 1, "name": name, "isthing": 0} for index, name in enumerate(LABELS)]
    return SegmentationTrainer(model=model, args=_arguments(tmp_path), eval_dataset=_rows(), data_collator=collator,
                               categories=categories, postprocess=postprocess, **kwargs)


def test_mean_iou_as_a_trainer_compute_metrics(lseg, tmp_path):
    """transformers' Trainer with `batch_eval_metrics`: each evaluation batch goes to `add_batch`, the last call
    computes; the numbers equal SegmentationTrainer's own (seem_hf's accumulator over the same predictions)."""
    model, processor, collator = lseg
    metric = evaluate.load(evaluate_module_path("mean_iou"))

    def compute_metrics(evaluation, compute_result: bool):
        logits = evaluation.predictions[0] if isinstance(evaluation.predictions, tuple) else evaluation.predictions
        labels = evaluation.label_ids
        maps = processor.post_process_semantic_segmentation(SimpleNamespace(logits=logits),
                                                            target_sizes=[labels.shape[-2:]] * len(labels))
        metric.add_batch(predictions=maps, references=labels)
        if compute_result:
            scores = metric.compute(num_labels=len(LABELS), ignore_index=model.config.ignore_index)
            return {"miou": 100 * scores["mean_iou"], "pixel_accuracy": 100 * scores["pixel_accuracy"]}
        return {}

    trainer = Trainer(model=model, args=_arguments(tmp_path, batch_eval_metrics=True), eval_dataset=_rows(),
                      data_collator=collator, compute_metrics=compute_metrics)
    ours = trainer.evaluate()
    reference = _segmentation_trainer(lseg, tmp_path).evaluate()
    # The same forward passes and post-processing on the same batches; 1e-9 allows float rounding only.
    assert ours["eval_miou"] == pytest.approx(reference["eval_miou"], abs=1e-9)
    assert ours["eval_pixel_accuracy"] == pytest.approx(reference["eval_pixel_accuracy"], abs=1e-9)
    assert 0 < ours["eval_pixel_accuracy"] < 100


def test_segmentation_trainer_measures_semantic_batches_with_the_module(lseg, tmp_path):
    """`SegmentationTrainer(semantic_metric=...)` (what examples/finetune_lseg.py passes) reports its accumulator's
    numbers, evaluation after evaluation."""
    reference = _segmentation_trainer(lseg, tmp_path).evaluate()
    metric = evaluate.load(evaluate_module_path("mean_iou"), experiment_id="trainer", cache_dir=str(tmp_path))
    batches, add_batch = [], metric.add_batch
    metric.add_batch = lambda **inputs: (batches.append(len(inputs["predictions"])), add_batch(**inputs))[-1]
    trainer = _segmentation_trainer(lseg, tmp_path, semantic_metric=metric)
    for _ in range(2):
        ours = trainer.evaluate()
        # The same forward passes and label maps reach the same accumulator; 1e-9 allows float rounding only.
        assert ours["eval_miou"] == pytest.approx(reference["eval_miou"], abs=1e-9)
        assert ours["eval_pixel_accuracy"] == pytest.approx(reference["eval_pixel_accuracy"], abs=1e-9)
    assert sum(batches) == 2 * 5  # every image went through the module, in both evaluations
    assert not list(tmp_path.rglob("*.arrow"))


def test_the_lseg_example_measures_through_the_module(tmp_path, monkeypatch):
    """examples/finetune_lseg.py's eval_miou and eval_pixel_accuracy come from the evaluate mean_iou module."""
    from tests.examples.test_finetune_lseg import TINY, _example

    load, batches = evaluate.load, []

    def spying_load(path, **kwargs):
        module = load(path, **kwargs)
        add_batch = module.add_batch
        module.add_batch = lambda **inputs: (batches.append((module.name, len(inputs["predictions"]))),
                                             add_batch(**inputs))[-1]
        return module

    monkeypatch.setattr(evaluate, "load", spying_load)
    metrics = _example().main(["--output_dir", str(tmp_path / "run"), "--evaluate_only", "true", *TINY])
    assert {name for name, _ in batches} == {"mean_iou"} and sum(size for _, size in batches) == 4  # --num_val 4
    assert 0 < metrics["eval_pixel_accuracy"] <= 100


def test_panoptic_module_reads_png_colours_and_refuses_fractional_ids():
    """A panoptic PNG's colours are its ids (as PanopticQualityAccumulator reads them); a map of fractional ids (a
    bilinear resize) was truncated to int32 without a word."""
    from seem_hf.data import id2rgb

    predictions, references, kwargs, expected = CASES["panoptic_quality"]
    metric = evaluate.load(evaluate_module_path("panoptic_quality"), keep_in_memory=True)
    colours = [dict(p, segmentation=id2rgb(p["segmentation"])) for p in predictions]
    _assert_same(metric.compute(predictions=colours, references=references, **kwargs), expected)
    blurred = dict(predictions[0], segmentation=predictions[0]["segmentation"] + 0.4)
    with pytest.raises(ValueError, match="not segment ids \\(whole numbers\\)"):
        metric.add(prediction=blurred, reference=references[0])


def test_mask_modules_refuse_probabilities():
    """Mask probabilities were cast to bool (every non-zero pixel in the mask) without a word."""
    referring = evaluate.load(evaluate_module_path("referring_iou"), keep_in_memory=True)
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        referring.add(prediction=np.full((2, 2), 0.3), reference=np.ones((2, 2)))
    mask_ap = evaluate.load(evaluate_module_path("mask_ap"), keep_in_memory=True)
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        mask_ap.add(prediction={"masks": np.full((1, 2, 2), 0.3), "labels": [1], "scores": [0.5]},
                    reference={"masks": np.ones((1, 2, 2)), "labels": [1]})


def test_mean_iou_module_takes_reduce_labels_and_refuses_fractional_maps():
    """evaluate's mean_iou takes reduce_labels=True (it was a TypeError here); fractional labels were truncated."""
    metric = evaluate.load(evaluate_module_path("mean_iou"), keep_in_memory=True)
    reference = np.array([[0, 1], [2, 2]], dtype=np.uint8)  # 0 is background, dropped by reduce_labels
    scores = metric.compute(predictions=[[[1, 0], [1, 0]]], references=[reference], num_labels=2, reduce_labels=True)
    assert scores["pixel_accuracy"] == pytest.approx(2 / 3) and scores["mean_iou"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not label ids"):
        metric.add(prediction=np.array([[0.5, 1.0]]), reference=np.array([[0, 1]]))


def test_segmentation_trainer_reads_the_collators_ignore_index(lseg, tmp_path):
    """A SemanticCollator filling unlabelled pixels with another ignore_index than 255 (LSegConfig(ignore_index=...)
    as examples/finetune_lseg.py passes it) failed the evaluation with 'Target labels must lie in [0, 3) or be 255'
    (the accumulator and the mean_iou module were given 255); both now read the collator's."""
    _, processor, _ = lseg
    reference = _segmentation_trainer(lseg, tmp_path).evaluate()
    model = LSegForSemanticSegmentation.from_pretrained(FIXTURES / "tiny-random-lseg", ignore_index=254)
    other = (model, processor, SemanticCollator(processor, LABELS, ignore_index=model.config.ignore_index))
    assert (other[2]([_rows()[0]])["labels"] == 254).any()  # the rows have unlabelled pixels
    ours = _segmentation_trainer(other, tmp_path).evaluate()
    assert ours["eval_miou"] == pytest.approx(reference["eval_miou"], abs=1e-9)
    assert ours["eval_loss"] == pytest.approx(reference["eval_loss"], rel=1e-6)
    metric = evaluate.load(evaluate_module_path("mean_iou"), experiment_id="ignore", cache_dir=str(tmp_path))
    through_module = _segmentation_trainer(other, tmp_path, semantic_metric=metric).evaluate()
    assert through_module["eval_miou"] == pytest.approx(reference["eval_miou"], abs=1e-9)


def test_mask_ap_module_reads_coco_run_length_encodings():
    """Masks as COCO RLEs (`{"size", "counts"}`, as a COCO results file holds them) were refused as values of type
    object; they give the numbers of the same masks as booleans."""
    from pycocotools import mask as mask_utils

    predictions, references, kwargs, expected = CASES["mask_ap"]

    def encoded(example):
        rles = [mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8))) for mask in example["masks"]]
        return dict(example, masks=[{"size": rle["size"], "counts": rle["counts"].decode()} for rle in rles])

    metric = evaluate.load(evaluate_module_path("mask_ap"), keep_in_memory=True)
    result = metric.compute(predictions=[encoded(p) for p in predictions], references=references, **kwargs)
    _assert_same(result, expected)


@pytest.mark.parametrize("name", EVALUATE_MODULES)
def test_compute_with_nothing_added_says_so(name):
    """compute() before any add / add_batch failed inside evaluate with "'NoneType' object has no attribute
    'getvalue'"."""
    metric = evaluate.load(evaluate_module_path(name), keep_in_memory=True)
    with pytest.raises(ValueError, match="nothing to compute; add examples with add\\(\\) or add_batch\\(\\)"):
        metric.compute()


def test_mask_ap_module_refuses_fractional_labels():
    metric = evaluate.load(evaluate_module_path("mask_ap"), keep_in_memory=True)
    with pytest.raises(ValueError, match="`labels` among the predictions hold values that are not whole numbers"):
        metric.add(prediction={"masks": np.ones((1, 2, 2)), "labels": [1.6], "scores": [0.5]},
                   reference={"masks": np.ones((1, 2, 2)), "labels": [1]})


def test_mean_iou_module_replaces_evaluates_mean_iou():
    """evaluate's mean_iou arguments (label_map, nan_to_num) were TypeErrors and its result names
    (overall_accuracy, per_category_iou, per_category_accuracy) KeyErrors; the same numbers under both names."""
    metric = evaluate.load(evaluate_module_path("mean_iou"), keep_in_memory=True)
    reference = np.array([[5, 5], [1, 255]])
    scores = metric.compute(predictions=[[[0, 1], [1, 2]]], references=[reference], num_labels=4,
                            label_map={5: 0}, nan_to_num=-1)
    assert scores["overall_accuracy"] == scores["pixel_accuracy"] == pytest.approx(2 / 3)
    # 2 is predicted on an ignored pixel only, 3 nowhere: NaN, given as -1
    np.testing.assert_allclose(scores["per_category_iou"], [0.5, 0.5, -1.0, -1.0])
    assert scores["per_class_iou"] == [0.5, 0.5, -1.0, -1.0]
    np.testing.assert_allclose(scores["per_category_accuracy"], [0.5, 1.0, -1.0, -1.0])
    assert scores["mean_iou"] == pytest.approx(0.5)  # over the labels that occur


@pytest.fixture(scope="module", params=["transcription", "evaluate"])
def evaluate_mean_iou(request):
    """evaluate's mean_iou as `compute(predictions, references, **arguments)`: the transcription of its published
    script in tests/metrics/test_segmentation_metrics.py, and `evaluate.load("mean_iou")` itself where it loads (from
    the Hub, or evaluate's cache); without either, that case is skipped (the script is not shipped here)."""
    if request.param == "transcription":
        from tests.metrics.test_segmentation_metrics import _evaluate_mean_iou

        return lambda predictions, references, **arguments: _evaluate_mean_iou(predictions, references, **arguments)
    try:
        module = evaluate.load("mean_iou", keep_in_memory=True)
    except (FileNotFoundError, ConnectionError, OSError) as error:
        pytest.skip(f"evaluate.load('mean_iou') cannot load here (no network and nothing cached): {error}")
    return lambda predictions, references, **arguments: module.compute(predictions=predictions, references=references,
                                                                       **arguments)


_IGNORED = np.full((4, 5), 255, np.uint8)
_SOME = (np.array([[0, 1, 3], [2, 2, 0]], np.uint8), np.array([[0, 0, 255], [2, 5, 0]], np.uint8))
MEAN_IOU_CASES = {
    "no pixel counted": ([np.zeros((4, 5), np.uint8)], [_IGNORED], {}),
    "no pixel counted, nan_to_num": ([np.zeros((4, 5), np.uint8)], [_IGNORED], {"nan_to_num": -1}),
    "only background under reduce_labels": ([np.ones((4, 5), np.uint8)], [np.zeros((4, 5), np.uint8)],
                                            {"reduce_labels": True}),
    "every id mapped to ignore_index": ([np.zeros((2, 3), np.uint8)], [_SOME[1]], {"label_map": {0: 255, 2: 255,
                                                                                                  5: 255}}),
    # 1 predicted only, 3 predicted on an ignored pixel only, 4 nowhere; 5 becomes 1
    "labels absent, predicted only": ([_SOME[0]], [_SOME[1]], {"label_map": {5: 1}}),
    "labels absent, nan_to_num": ([_SOME[0]], [_SOME[1]], {"label_map": {5: 1}, "nan_to_num": 0}),
}


@pytest.mark.parametrize("case", MEAN_IOU_CASES)
def test_mean_iou_module_equals_evaluates_mean_iou_where_nothing_is_counted(evaluate_mean_iou, case):
    """Side by side with evaluate's mean_iou. Where nothing was counted (every reference pixel ignored, or left after
    reduce_labels or a label_map) evaluate gives NaN for mean_iou, mean_accuracy and overall_accuracy (0 / 0, a
    NaN-mean of NaNs), which nan_to_num replaces; seem_hf's module and accumulator gave 0.0, nan_to_num or not. They
    now give evaluate's numbers, NaN per label where it gives NaN, in every case."""
    predictions, references, arguments = MEAN_IOU_CASES[case]
    arguments = {"num_labels": 5, "ignore_index": 255, **arguments}
    expected = evaluate_mean_iou(predictions, references, **arguments)
    ours = evaluate.load(evaluate_module_path("mean_iou"), keep_in_memory=True).compute(
        predictions=predictions, references=references, **arguments)
    assert set(expected) == {"mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou",
                             "per_category_accuracy"}
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(ours[name], dtype=float), value, rtol=1e-12, err_msg=name)  # NaN as NaN
    assert ours["pixel_accuracy"] == ours["overall_accuracy"] or np.isnan(ours["pixel_accuracy"]) and np.isnan(
        ours["overall_accuracy"])
    if "nan_to_num" not in arguments and case.startswith("no pixel"):
        assert all(np.isnan(ours[name]) for name in ("mean_iou", "mean_accuracy", "pixel_accuracy"))
