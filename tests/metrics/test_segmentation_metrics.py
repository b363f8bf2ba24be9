"""Semantic, instance, referring and interactive metrics: hand-worked cases, torchmetrics as a reference for
mIoU, and two real processes (gloo) giving the numbers of one."""

from __future__ import annotations

import json
import os

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
    assert MaskAPAccumulator(category_ids=[1]).compute()["map"] == 0.0


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
    _all_updates(*accumulators, indices=range(rank, 6, world_size))
    for accumulator in accumulators:
        accumulator.sync()
    if rank == 0:
        with open(out_file, "w") as handle:
            json.dump(_results(accumulators), handle)
    torch.distributed.destroy_process_group()


def test_two_processes_give_the_numbers_of_one(tmp_path):
    single = _fresh()
    _all_updates(*single, indices=range(6))
    expected = json.loads(json.dumps(_results(single)))  # the same float formatting as the file
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out.json")), nprocs=2, join=True)
    merged = json.loads((tmp_path / "out.json").read_text())
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
