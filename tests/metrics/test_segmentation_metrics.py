"""Semantic, instance, referring and interactive metrics: hand-worked cases, torchmetrics as a reference for
mIoU, and two real processes (gloo) giving the numbers of one."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torchmetrics.functional.segmentation import mean_iou

from seem_hf.metrics import (
    MaskAPAccumulator,
    PanopticQualityAccumulator,
    ReferringAccumulator,
    SemanticSegmentationAccumulator,
    number_of_clicks,
)


def _semantic_pairs(count=4, labels=5, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        target = rng.integers(0, labels - 1, (12, 16))  # the last label never occurs in targets
        prediction = np.where(rng.random((12, 16)) < 0.7, target, rng.integers(0, labels, (12, 16)))
        pairs.append((prediction, target))
    return pairs


def test_miou_equals_torchmetrics_over_the_whole_dataset():
    pairs = _semantic_pairs()
    accumulator = SemanticSegmentationAccumulator(num_labels=5)
    for prediction, target in pairs:
        accumulator.update(prediction, target)
    ours = accumulator.compute()
    # Dataset-level IoU is the IoU of all images side by side.
    predictions = torch.from_numpy(np.concatenate([p for p, _ in pairs], axis=1))[None]
    targets = torch.from_numpy(np.concatenate([t for _, t in pairs], axis=1))[None]
    reference = mean_iou(predictions, targets, num_classes=5, per_class=True, input_format="index")[0]
    present = reference >= 0
    np.testing.assert_allclose(np.array(ours["per_class_iou"])[present.numpy()], reference[present].numpy(), rtol=1e-6)
    assert ours["mean_iou"] == pytest.approx(float(reference[present].mean()), rel=1e-6)
    assert ours["pixel_accuracy"] == pytest.approx(float((predictions == targets).double().mean()))


def test_ignored_pixels_and_bad_labels():
    accumulator = SemanticSegmentationAccumulator(num_labels=2, ignore_index=255)
    accumulator.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [255, 0]]))
    result = accumulator.compute()
    assert result["pixel_accuracy"] == pytest.approx(2 / 3)
    assert result["per_class_iou"] == [pytest.approx(1 / 2), pytest.approx(1 / 2)]
    with pytest.raises(ValueError, match="differ in size"):
        accumulator.update(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="Target labels"):
        accumulator.update(np.zeros((2, 2)), np.full((2, 2), 7))


def _square(y, x, size=8, shape=(32, 32)):
    mask = np.zeros(shape, bool)
    mask[y : y + size, x : x + size] = True
    return mask


def test_mask_ap_hand_cases():
    perfect = MaskAPAccumulator(category_ids=[1, 2])
    perfect.update(1, [_square(2, 2), _square(20, 20)], [1, 2], [_square(2, 2), _square(20, 20)], [1, 2], [0.9, 0.8])
    assert perfect.compute()["map"] == pytest.approx(1.0)
    # One object; a false positive scored above the true positive halves precision at every recall.
    ranked_wrong = MaskAPAccumulator(category_ids=[1])
    ranked_wrong.update(1, [_square(2, 2)], [1], [_square(20, 20), _square(2, 2)], [1, 1], [0.9, 0.5])
    assert ranked_wrong.compute()["map"] == pytest.approx(0.5)
    ranked_right = MaskAPAccumulator(category_ids=[1])
    ranked_right.update(1, [_square(2, 2)], [1], [_square(20, 20), _square(2, 2)], [1, 1], [0.5, 0.9])
    assert ranked_right.compute()["map"] == pytest.approx(1.0)
    assert MaskAPAccumulator(category_ids=[1]).compute()["map"] == -1.0  # nothing to score: COCOeval's "no value"


def _cocoeval_stats(ground_truth, predictions, category_ids):
    """COCOeval's six segm numbers, straight from pycocotools: `ground_truth` and `predictions` are per image
    (masks, labels) and (masks, labels, scores)."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def encoded(mask):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return rle, float(mask_utils.area(rle))

    images, annotations, detections = [], [], []
    for image_id, ((masks, labels), (pred_masks, pred_labels, scores)) in enumerate(zip(ground_truth, predictions)):
        images.append({"id": image_id, "height": 32, "width": 32})
        for mask, label in zip(masks, labels):
            rle, area = encoded(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "segmentation": rle, "area": area, "iscrowd": 0, "bbox": list(mask_utils.toBbox(rle))})
        for mask, label, score in zip(pred_masks, pred_labels, scores):
            detections.append({"image_id": image_id, "category_id": label, "segmentation": encoded(mask)[0],
                               "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in category_ids]}
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(detections), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[:6].tolist()


def test_mask_ap_gives_cocoeval_s_numbers_where_an_area_range_is_empty():
    """Small objects only (8x8 squares): COCOeval has no value for the medium and large ranges (-1), which the
    accumulator used to report as 0.0 (an AP of nothing found); it now gives COCOeval's six numbers as they are,
    and a prediction-free image scores 0 where there is ground truth to find."""
    ground_truth = [([_square(2, 2), _square(20, 20)], [1, 2]), ([_square(10, 4)], [1])]
    predictions = [([_square(2, 2), _square(19, 21)], [1, 2], [0.9, 0.6]), ([_square(10, 5)], [2], [0.7])]
    accumulator = MaskAPAccumulator(category_ids=[1, 2])
    for image_id, ((masks, labels), (pred_masks, pred_labels, scores)) in enumerate(zip(ground_truth, predictions)):
        accumulator.update(image_id, masks, labels, pred_masks, pred_labels, scores)
    expected = _cocoeval_stats(ground_truth, predictions, [1, 2])
    assert expected[4] == expected[5] == -1 and expected[0] > 0
    assert list(accumulator.compute().values()) == pytest.approx(expected, abs=1e-12)
    nothing_found = MaskAPAccumulator(category_ids=[1, 2])
    nothing_found.update(0, [_square(2, 2)], [1], [], [], [])
    assert nothing_found.compute() == {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "map_small": 0.0,
                                       "map_medium": -1.0, "map_large": -1.0}


def test_referring_hand_case():
    accumulator = ReferringAccumulator()
    target = np.zeros((2, 3), bool)
    target[0, :2] = True
    accumulator.update(np.array([[True, False, False], [False, True, False]]), target)  # I=1, U=3
    accumulator.update(np.ones((2, 3), bool), np.ones((2, 3), bool))  # I=6, U=6
    result = accumulator.compute()
    assert result["ciou"] == pytest.approx(7 / 9)
    assert result["miou"] == pytest.approx((1 / 3 + 1) / 2)
    assert result["precision@0.5"] == 0.5 and result["precision@0.9"] == 0.5


def test_number_of_clicks():
    ious = [[0.5, 0.86, 0.95], [0.2, 0.3, 0.4], [0.91]]
    result = number_of_clicks(ious, max_clicks=20)
    assert result == {"noc@85": pytest.approx((2 + 20 + 1) / 3), "noc@90": pytest.approx((3 + 20 + 1) / 3)}
    with pytest.raises(ValueError):
        number_of_clicks([])


CATEGORIES = [{"id": 1, "isthing": 0, "name": "sky"}, {"id": 2, "isthing": 1, "name": "car"}]


def _all_updates(semantic, ap, referring, pq, indices):
    pairs = _semantic_pairs(count=6, seed=3)
    for index in indices:
        prediction, target = pairs[index]
        semantic.update(prediction, target)
        gt_masks = [target == 1, target == 2]
        pred_masks = [prediction == 1, prediction == 2]
        ap.update(index + 1, gt_masks, [1, 2], pred_masks, [1, 2], [0.9, 0.6 + 0.05 * index])
        referring.update(prediction == 1, target == 1)
        gt_ids, pred_ids = np.where(target > 0, 1, 2), np.where(prediction > 0, 1, 2)
        segments = [{"id": 1, "category_id": 1, "iscrowd": 0, "area": int((gt_ids == 1).sum())},
                    {"id": 2, "category_id": 2, "iscrowd": 0, "area": int((gt_ids == 2).sum())}]
        pq.update(gt_ids, segments, pred_ids, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}])


def _fresh():
    return (SemanticSegmentationAccumulator(5), MaskAPAccumulator([1, 2]), ReferringAccumulator(),
            PanopticQualityAccumulator(CATEGORIES))


def _results(accumulators):
    semantic, ap, referring, pq = accumulators
    return {"semantic": semantic.compute(), "ap": ap.compute(), "referring": referring.compute(), "pq": pq.compute()}


def _worker(rank, world_size, init_file, out_file):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    accumulators = _fresh()
    _all_updates(*accumulators, indices=range(rank, 4, world_size))
    for accumulator in accumulators:
        accumulator.sync()  # an evaluation midway (a logging callback), then the rest of the images
    halfway = _results(accumulators)
    _all_updates(*accumulators, indices=range(4 + rank, 6, world_size))
    for accumulator in accumulators:
        accumulator.sync()
        accumulator.sync()  # twice: nothing counted twice
    if rank == 0:
        with open(out_file, "w") as handle:
            json.dump({"halfway": halfway, **_results(accumulators)}, handle)
    torch.distributed.destroy_process_group()


def test_two_processes_give_the_numbers_of_one(tmp_path):
    single = _fresh()
    _all_updates(*single, indices=range(6))
    expected = json.loads(json.dumps(_results(single)))  # the same float formatting as the file
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out.json")), nprocs=2, join=True)
    merged = json.loads((tmp_path / "out.json").read_text())
    halfway = _fresh()
    _all_updates(*halfway, indices=range(4))
    assert merged["halfway"]["referring"] == pytest.approx(_results(halfway)["referring"])
    assert merged["semantic"] == expected["semantic"]
    assert merged["referring"] == pytest.approx(expected["referring"])
    assert merged["ap"] == pytest.approx(expected["ap"])
    for name in ("All", "Things", "Stuff"):
        assert merged["pq"][name] == pytest.approx(expected["pq"][name], abs=1e-12)


def _coco_eval_map(gt, detections, category_ids, sizes):
    """pycocotools' own COCOeval on hand-built COCO dicts: the reference for MaskAPAccumulator."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(mask):
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}

    coco = COCO()
    coco.dataset = {"images": [{"id": i, "height": h, "width": w} for i, (h, w) in sizes.items()],
                    "categories": [{"id": c} for c in category_ids],
                    "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "segmentation": rle(m),
                                     "area": float(m.sum()), "bbox": mask_utils.toBbox(rle(m)).tolist(),
                                     "iscrowd": crowd} for k, (i, m, c, crowd) in enumerate(gt)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        results = coco.loadRes([{"image_id": i, "category_id": c, "segmentation": rle(m), "score": s}
                                for i, m, c, s in detections])
        evaluation = COCOeval(coco, results, "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[0]


def test_mask_ap_inputs_as_users_give_them_equal_cocoeval():
    """Masks as 0/1 tensors or COCO RLEs (compressed or as lists) give COCOeval's AP, crowd ground truth and a
    category with no ground truth included."""
    from pycocotools import mask as mask_utils

    gt = [(1, _square(2, 2), 1, 0), (1, _square(20, 20), 2, 0), (1, _square(14, 2, size=10), 1, 1)]
    detections = [(1, _square(3, 2), 1, 0.9), (1, _square(15, 3, size=9), 1, 0.8), (1, _square(20, 21), 2, 0.8),
                  (1, _square(0, 24), 3, 0.7)]
    expected = _coco_eval_map(gt, detections, [1, 2, 3], {1: (32, 32)})
    assert 0 < expected < 1
    compressed = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for _, m, _, _ in detections]
    ground_truth_rles = [{"size": [32, 32], "counts": mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))[
        "counts"].decode("ascii")} for _, m, _, _ in gt]
    accumulator = MaskAPAccumulator(category_ids=[1, 2, 3])
    accumulator.update(1, ground_truth_rles, torch.tensor([1, 2, 1]), compressed, [1, 1, 2, 3],
                       torch.tensor([0.9, 0.8, 0.8, 0.7]), gt_iscrowd=[0, 0, 1])
    assert accumulator.compute()["map"] == pytest.approx(expected, abs=1e-12)
    as_01 = MaskAPAccumulator(category_ids=[1, 2, 3])
    as_01.update(1, torch.tensor(np.stack([m for _, m, _, _ in gt]), dtype=torch.uint8), [1, 2, 1],
                 np.stack([m for _, m, _, _ in detections]).astype(np.float32), [1, 1, 2, 3], [0.9, 0.8, 0.8, 0.7],
                 gt_iscrowd=[0, 0, 1])
    assert as_01.compute()["map"] == pytest.approx(expected, abs=1e-12)


def test_mask_ap_refuses_what_it_would_drop_or_merge():
    square = np.stack([_square(2, 2)])
    accumulator = MaskAPAccumulator(category_ids=[1])
    with pytest.raises(ValueError, match="values other than 0 and 1.*probabilities > 0.5"):
        accumulator.update(1, square, [1], square * 0.7, [1], [0.9])  # mask probabilities
    with pytest.raises(ValueError, match="1 gt_labels for 2 gt_masks"):
        accumulator.update(1, np.concatenate([square, square]), [1], square, [1], [0.9])
    with pytest.raises(ValueError, match="2 pred_scores for 1 pred_masks"):
        accumulator.update(1, square, [1], square, [1], [0.9, 0.8])
    with pytest.raises(ValueError, match=r"labels \[2\] are not among category_ids \[1\]"):
        accumulator.update(1, square, [1], square, [2], [0.9])
    with pytest.raises(ValueError, match=r"predicted masks \(16, 16\) and ground-truth masks \(32, 32\) differ"):
        accumulator.update(1, square, [1], square[:, :16, :16], [1], [0.9])
    with pytest.raises(ValueError, match=r"\(instances, height, width\), e.g. mask\[None\]"):
        accumulator.update(1, square[0], [1], square, [1], [0.9])
    assert not accumulator.images  # nothing refused was kept
    accumulator.update(1, square, [1], square, [1], [0.9])
    with pytest.raises(ValueError, match="image_id 1 was added before"):
        accumulator.update(1, square, [1], np.zeros_like(square), [1], [0.9])


def test_referring_refuses_probabilities():
    accumulator = ReferringAccumulator()
    with pytest.raises(ValueError, match="prediction holds values other than 0 and 1"):
        accumulator.update(np.full((2, 2), 0.3), np.ones((2, 2)))  # every pixel counted as found
    accumulator.update(torch.ones(2, 2), np.ones((2, 2), np.uint8))  # 0/1 of any type
    assert accumulator.compute()["ciou"] == 1.0


def _evaluate_mean_iou(predictions, references, num_labels, ignore_index, reduce_labels=False, label_map=None,
                       nan_to_num=None):
    """evaluate's mean_iou (huggingface/evaluate metrics/mean_iou) as published: histograms per image, summed; 0 / 0
    is NaN, and the means are NaN-means."""
    intersect_sum, union_sum, label_sum = (np.zeros(num_labels) for _ in range(3))
    for prediction, label in zip(predictions, references):
        prediction, label = np.array(prediction), np.array(label)
        if label_map is not None:
            original = label.copy()
            for old_id, new_id in label_map.items():
                label[original == old_id] = new_id
        if reduce_labels:
            label[label == 0] = 255
            label = label - 1
            label[label == 254] = 255
        mask = label != ignore_index
        prediction, label = prediction[mask], label[mask]
        intersect = prediction[prediction == label]
        bins = {"bins": num_labels, "range": (0, num_labels - 1)}
        area_intersect = np.histogram(intersect, **bins)[0]
        area_pred, area_label = np.histogram(prediction, **bins)[0], np.histogram(label, **bins)[0]
        intersect_sum += area_intersect
        union_sum += area_pred + area_label - area_intersect
        label_sum += area_label
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the NaN-mean of nothing but NaN
        iou, accuracy = intersect_sum / union_sum, intersect_sum / label_sum
        metrics = {"mean_iou": np.nanmean(iou), "mean_accuracy": np.nanmean(accuracy),
                   "overall_accuracy": intersect_sum.sum() / label_sum.sum(), "per_category_iou": iou,
                   "per_category_accuracy": accuracy}
    if nan_to_num is not None:
        metrics = {name: np.nan_to_num(value, nan=nan_to_num) for name, value in metrics.items()}
    return metrics


@pytest.mark.parametrize("reduce_labels", [False, True])
def test_mean_iou_equals_evaluate_mean_iou(reduce_labels):
    """Side by side with evaluate's mean_iou: ignore_index, reduce_labels (targets 1.. become 0.., 0 ignored), classes
    absent from targets and predictions (NaN, left out of the means), uint8 maps as images store them."""
    rng = np.random.default_rng(3)
    num_labels = 6  # class 5 never occurs
    references = [rng.integers(0, 5 + reduce_labels, (12, 10)).astype(np.uint8) for _ in range(3)]
    for reference in references:
        reference[0, :4] = 255
    predictions = [np.where(rng.random(r.shape) < 0.7, np.minimum(r.astype(int) - reduce_labels, 4).clip(0), 3)
                   for r in references]
    expected = _evaluate_mean_iou(predictions, references, num_labels, 255, reduce_labels)
    accumulator = SemanticSegmentationAccumulator(num_labels, ignore_index=255, reduce_labels=reduce_labels)
    for prediction, reference in zip(predictions, references):
        accumulator.update(prediction, reference)
    result = accumulator.compute()
    assert result["mean_iou"] == pytest.approx(expected["mean_iou"])
    assert result["mean_accuracy"] == pytest.approx(expected["mean_accuracy"])
    assert result["pixel_accuracy"] == pytest.approx(expected["overall_accuracy"])
    np.testing.assert_allclose(result["per_class_iou"], expected["per_category_iou"])  # NaN where NaN
    np.testing.assert_allclose(result["per_class_accuracy"], expected["per_category_accuracy"])
    assert np.isnan(result["per_class_iou"][5])


def test_label_maps_that_are_not_label_ids_are_refused():
    accumulator = SemanticSegmentationAccumulator(num_labels=3)
    with pytest.raises(ValueError, match=r"not label ids \(whole numbers\), e.g. \[1.7\].*nearest"):
        accumulator.update(np.array([[0.0, 1.7]]), np.array([[0, 1]]))  # truncated to 1 before
    with pytest.raises(ValueError, match=r"Predicted labels must lie in \[0, 3\); found \[5\]. Give num_labels"):
        accumulator.update(np.array([[0, 5]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"found \[7\]. Give num_labels .* ignore_index"):
        accumulator.update(np.array([[0, 1]]), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="num_labels must be a positive int"):
        SemanticSegmentationAccumulator(num_labels=0)
    assert accumulator.confusion.sum() == 0


def test_referring_precision_counts_an_iou_equal_to_the_threshold():
    """SEEM's (X-Decoder's) GroundingEvaluator counts a sentence at precision@t when IoU >= t: a mask covering half
    of its target has IoU 0.5 exactly and is a hit at 0.5 there."""
    target = np.zeros((4, 4), bool)
    target[:2] = True  # 8 pixels
    half = np.zeros((4, 4), bool)
    half[0] = True  # 4 of them: IoU 4 / 8
    accumulator = ReferringAccumulator()
    accumulator.update(half, target)
    accumulator.update(target, target)
    ious = np.array([0.5, 1.0])
    result = accumulator.compute()
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):  # the GroundingEvaluator's rule
        assert result[f"precision@{threshold}"] == float(np.mean(ious >= threshold))
    assert result["precision@0.5"] == 1.0 and result["precision@0.7"] == 0.5


def test_referring_precision_at_seem_s_five_thresholds():
    """SEEM's GroundingEvaluator reports precision@0.5, 0.6, 0.7, 0.8 and 0.9; the accumulator (and so the
    referring_iou module, SEEM's evaluate_referring and the examples' eval_referring_* metrics) reported 0.5, 0.7 and
    0.9 only. All five now, each IoU >= t, also before anything is added."""
    target = np.zeros((1, 10), bool)
    target[0, :] = True
    accumulator = ReferringAccumulator()
    for found in (4, 5, 6, 7, 8, 9, 10):  # IoU found / 10: 0.4 ... 1.0, each threshold hit exactly once
        prediction = np.zeros((1, 10), bool)
        prediction[0, :found] = True
        accumulator.update(prediction, target)
    keys = ["ciou", "miou", "precision@0.5", "precision@0.6", "precision@0.7", "precision@0.8", "precision@0.9"]
    result = accumulator.compute()
    assert list(result) == keys
    assert [result[key] for key in keys[2:]] == pytest.approx([6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7])
    assert list(ReferringAccumulator().compute()) == keys


def test_number_of_clicks_refuses_percentages_and_nan():
    """thresholds=(85, 90) (the names' numbers) gave {'noc@8500': 20.0}; IoUs in percent reached every threshold at
    click 1; a NaN IoU was passed over; two thresholds rounding to one name kept the last."""
    with pytest.raises(ValueError, match=r"must be IoUs in \(0, 1\], e.g. \(0.85, 0.9\)"):
        number_of_clicks([[0.9]], thresholds=(85, 90))
    with pytest.raises(ValueError, match="not all fractions in \\[0, 1\\].*percentage"):
        number_of_clicks([[50.0, 95.0]])
    with pytest.raises(ValueError, match="Object 0's IoUs"):
        number_of_clicks([[0.5, float("nan"), 0.95]])
    with pytest.raises(ValueError, match="max_clicks must be a positive int"):
        number_of_clicks([[0.9]], max_clicks=0)
    assert number_of_clicks([[0.5, 0.851, 0.86]], thresholds=(0.85, 0.855)) == {"noc@85": 2.0, "noc@85.5": 3.0}
    assert number_of_clicks(torch.tensor([[0.2, 0.95]]), thresholds=0.9) == {"noc@90": 2.0}


def test_referring_update_with_a_sentence_per_mask():
    """(sentences, H, W) masks were scored as one sentence (one IoU over all of them): mIoU and precision@t of three
    sentences became those of one."""
    targets = np.stack([_square(2, 2), _square(20, 20), _square(10, 10)])
    predictions = np.stack([_square(2, 2), _square(24, 24), np.zeros((32, 32), bool)])
    together, one_by_one = ReferringAccumulator(), ReferringAccumulator()
    together.update(torch.from_numpy(predictions), targets)
    for prediction, target in zip(predictions, targets):
        one_by_one.update(prediction, target)
    assert together.compute() == one_by_one.compute()
    assert together.compute()["precision@0.5"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one sentence's \\(height, width\\) mask or \\(sentences, height, width\\)"):
        together.update(predictions[None], targets[None])


def test_referring_ciou_of_empty_targets_found_empty():
    """Sentences naming nothing (gRefCOCO's no-target expressions) answered with empty masks: each IoU is 1 and
    precision 1, but cIoU was 0 (0 / max(0, 1)); it is 1, and a wrong answer among them still lowers it to 0."""
    accumulator = ReferringAccumulator()
    accumulator.update(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool))
    assert accumulator.compute() == {"ciou": 1.0, "miou": 1.0, "precision@0.5": 1.0, "precision@0.6": 1.0,
                                     "precision@0.7": 1.0, "precision@0.8": 1.0, "precision@0.9": 1.0}
    accumulator.update(np.ones((4, 4), bool), np.zeros((4, 4), bool))
    assert accumulator.compute()["ciou"] == 0.0 and accumulator.compute()["miou"] == pytest.approx(2 / 3)


def test_mask_ap_image_without_instances():
    """An image with no ground truth and no prediction given as empty lists was refused as 'gt_masks has shape
    (0,)'; it counts nothing, as COCOeval's image without annotations."""
    square = np.stack([_square(2, 2)])
    accumulator = MaskAPAccumulator(category_ids=[1])
    accumulator.update(1, [], [], [], [], [])
    accumulator.update(2, square, [1], square, [1], [0.9])
    assert accumulator.compute()["map"] == pytest.approx(1.0)


def test_size_mismatches_name_the_size_to_post_process_at():
    """Every accumulator's size error says the size a post-processor's target_sizes should give (it named the two
    sizes only)."""
    big, small = np.zeros((4, 6), np.int64), np.zeros((2, 3), np.int64)
    for update in (SemanticSegmentationAccumulator(2).update, ReferringAccumulator().update):
        with pytest.raises(ValueError, match=r"target_sizes=\[\(4, 6\)\]"):
            update(small, big)
    with pytest.raises(ValueError, match=r"target_sizes=\[\(4, 6\)\]"):
        PanopticQualityAccumulator(CATEGORIES).update(big, [], small, [])
    with pytest.raises(ValueError, match=r"target_sizes=\[\(4, 6\)\]"):
        MaskAPAccumulator([1]).update(1, big[None] == 0, [1], small[None] == 0, [1], [0.5])


def test_mask_ap_refuses_fractional_labels_and_nan_scores():
    """Labels 1.6 were truncated to category 1, and NaN scores ranked by COCOeval's sort, without a word."""
    square = np.stack([_square(2, 2)])
    accumulator = MaskAPAccumulator(category_ids=[1, 2])
    with pytest.raises(ValueError, match=r"pred_labels \[1.6\] hold values that are not category ids"):
        accumulator.update(1, square, [1], square, [1.6], [0.9])
    with pytest.raises(ValueError, match="pred_scores hold NaN"):
        accumulator.update(1, square, [1], square, [1], [float("nan")])
    accumulator.update(1, square, np.array([1.0]), square, torch.tensor([1]), [0.9])  # whole floats are ids
    assert accumulator.compute()["map"] == pytest.approx(1.0)
