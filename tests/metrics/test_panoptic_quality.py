"""Panoptic quality: ground truth against itself, a hand-worked case, and torchmetrics as an independent
reference on perturbed predictions."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from torchmetrics.detection import PanopticQuality

from seem_hf.data import id2rgb, make_shapes_dataset, rgb2id
from seem_hf.metrics import PanopticQualityAccumulator, pq_compute

CATEGORIES = [
    {"id": 1, "name": "sky", "isthing": 0, "color": [0, 0, 255]},
    {"id": 2, "name": "car", "isthing": 1, "color": [255, 0, 0]},
    {"id": 3, "name": "dog", "isthing": 1, "color": [0, 255, 0]},
]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pq")
    return make_shapes_dataset(root, num_train=1, num_val=5, image_size=64, seed=1)["val"]


def test_ground_truth_against_itself_is_perfect(shapes):
    results = pq_compute(shapes["panoptic_json"], shapes["panoptic_dir"], shapes["panoptic_json"],
                         shapes["panoptic_dir"])
    for name in ("All", "Things", "Stuff"):
        assert results[name]["pq"] == pytest.approx(1.0) and results[name]["sq"] == pytest.approx(1.0)
        assert results[name]["rq"] == 1.0 and results[name]["n"] > 0
    assert results["All"]["n"] == results["Things"]["n"] + results["Stuff"]["n"]
    assert set(results["per_class"]) == set(range(1, 9))


def test_hand_worked_case():
    """4x4 image. Ground truth: sky (top two rows), car (bottom-left 2x2), dog (bottom-right 2x2, crowd).
    Prediction: sky over 10 pixels (8 right + 2 of the car) -> IoU 8/10; car over 2 of its 4 pixels -> IoU 0.5,
    not a match; a dog inside the crowd region -> ignored."""
    gt = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    pred = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 5, 7, 7], [1, 5, 7, 7]])
    gt_segments = [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 8},
                   {"id": 2, "category_id": 2, "iscrowd": 0, "area": 4},
                   {"id": 3, "category_id": 3, "iscrowd": 1, "area": 4}]
    pred_segments = [{"id": 1, "category_id": 1}, {"id": 5, "category_id": 2}, {"id": 7, "category_id": 3}]
    accumulator = PanopticQualityAccumulator(CATEGORIES)
    accumulator.update(gt, gt_segments, pred, pred_segments)
    results = accumulator.compute()
    assert results["per_class"][1] == {"pq": 0.8, "sq": 0.8, "rq": 1.0}  # TP with IoU 8/10
    assert results["per_class"][2] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # one FN and one FP
    assert results["per_class"][3] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # crowd: nothing counted
    assert results["Things"]["n"] == 1 and results["Stuff"]["n"] == 1
    assert results["All"]["pq"] == pytest.approx(0.4)


def _perturb(ids: np.ndarray, segments: list[dict], rng) -> tuple[np.ndarray, list[dict]]:
    """A plausible prediction: shift thing masks, relabel some, drop one, add a spurious blob."""
    pred = ids.copy()
    out = []
    for segment in segments:
        mask = ids == segment["id"]
        category = segment["category_id"]
        if segment["category_id"] >= 5:
            shift = rng.integers(-6, 7, size=2)
            pred[mask] = 0
            pred[np.roll(mask, tuple(shift), axis=(0, 1))] = segment["id"]
            if rng.random() < 0.2:
                category = int(rng.integers(5, 9))
        out.append({"id": segment["id"], "category_id": category})
    blob = np.zeros_like(mask)
    y, x = rng.integers(0, ids.shape[0] - 8, size=2)
    blob[y : y + 8, x : x + 8] = True
    pred[blob] = 999
    out.append({"id": 999, "category_id": int(rng.integers(5, 9))})
    # Pixels a moved thing left go to a stuff segment: torchmetrics also discounts void in predictions, which
    # panopticapi does not, so the two agree only on void-free predictions (void is covered by the hand case).
    stuff = next(s["id"] for s in segments if s["category_id"] <= 4)
    pred[pred == 0] = stuff
    present = set(np.unique(pred).tolist())
    return pred, [s for s in out if s["id"] in present]


def test_equals_torchmetrics_on_perturbed_predictions(shapes, tmp_path):
    rng = np.random.default_rng(0)
    gt_json = json.loads(shapes["panoptic_json"].read_text())
    categories = gt_json["categories"]
    things = {c["id"] for c in categories if c["isthing"]}
    stuffs = {c["id"] for c in categories if not c["isthing"]}
    # Unknown categories (our -1 for void) become torchmetrics' void, in predictions too.
    reference = PanopticQuality(things=things, stuffs=stuffs, return_sq_and_rq=True, allow_unknown_preds_category=True)
    pred_annotations = []
    (tmp_path / "pred").mkdir()
    for annotation in gt_json["annotations"]:
        ids = rgb2id(np.asarray(PIL.Image.open(shapes["panoptic_dir"] / annotation["file_name"])))
        pred, pred_segments = _perturb(ids, annotation["segments_info"], rng)
        PIL.Image.fromarray(id2rgb(pred)).save(tmp_path / "pred" / annotation["file_name"])
        pred_annotations.append({"image_id": annotation["image_id"], "file_name": annotation["file_name"],
                                 "segments_info": pred_segments})

        def to_pairs(id_map, segments):
            category = {s["id"]: s["category_id"] for s in segments}
            pairs = np.zeros((*id_map.shape, 2), dtype=np.int64)
            for segment_id, category_id in category.items():
                pairs[id_map == segment_id] = (category_id, segment_id)
            pairs[id_map == 0] = (-1, 0)  # void
            return torch.from_numpy(pairs)[None]

        reference.update(to_pairs(pred, pred_segments), to_pairs(ids, annotation["segments_info"]))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": pred_annotations, "categories": categories}))
    ours = pq_compute(shapes["panoptic_json"], shapes["panoptic_dir"], tmp_path / "pred.json", tmp_path / "pred")
    pq, sq, rq = reference.compute().tolist()
    assert 0.2 < ours["All"]["pq"] < 0.95  # a real test: neither perfect nor hopeless
    assert ours["All"]["pq"] == pytest.approx(pq, abs=1e-6)
    assert ours["All"]["sq"] == pytest.approx(sq, abs=1e-6)
    assert ours["All"]["rq"] == pytest.approx(rq, abs=1e-6)


def test_processes_sum_to_the_single_process_result(shapes):
    """Two accumulators over halves of the images, summed, equal one over all (what `sync` does)."""
    gt_json = json.loads(shapes["panoptic_json"].read_text())
    rng = np.random.default_rng(2)
    whole, halves = PanopticQualityAccumulator(gt_json["categories"]), [
        PanopticQualityAccumulator(gt_json["categories"]) for _ in range(2)
    ]
    for index, annotation in enumerate(gt_json["annotations"]):
        ids = rgb2id(np.asarray(PIL.Image.open(shapes["panoptic_dir"] / annotation["file_name"])))
        pred, segments = _perturb(ids, annotation["segments_info"], rng)
        whole.update(ids, annotation["segments_info"], pred, segments)
        halves[index % 2].update(ids, annotation["segments_info"], pred, segments)
    halves[0].stats += halves[1].stats
    merged, single = halves[0].compute(), whole.compute()
    # Counts are exact; IoU sums differ only by summation order (1e-12).
    for name in ("All", "Things", "Stuff"):
        assert merged[name]["n"] == single[name]["n"]
        for key in ("pq", "sq", "rq"):
            assert merged[name][key] == pytest.approx(single[name][key], abs=1e-12)


def test_bad_predictions_are_named():
    accumulator = PanopticQualityAccumulator(CATEGORIES)
    gt = np.ones((2, 2), dtype=np.int64)
    gt_segments = [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 4}]
    with pytest.raises(KeyError, match="segment 4 is in the predicted PNG"):
        accumulator.update(gt, gt_segments, np.full((2, 2), 4), [], image="a.png")
    with pytest.raises(KeyError, match=r"segments \[9\] are in segments_info but not in the PNG"):
        accumulator.update(gt, gt_segments, gt, [{"id": 1, "category_id": 1}, {"id": 9, "category_id": 1}])
    with pytest.raises(KeyError, match="unknown category 42"):
        accumulator.update(gt, gt_segments, gt, [{"id": 1, "category_id": 42}])
    with pytest.raises(ValueError, match="differ in size"):
        accumulator.update(gt, gt_segments, np.ones((3, 3)), [{"id": 1, "category_id": 1}])


def test_inputs_as_users_give_them():
    """Panoptic PNG colours, tensors, float maps of whole ids, tensor ids in segments_info and ground truth without
    `iscrowd`/`area` give the numbers of int64 id maps with complete JSON-style segments."""
    gt = np.zeros((6, 6), dtype=np.int64)
    gt[:3], gt[3:, :3], gt[3:, 3:] = 300, 70000, 5  # ids past 255: colours in two and three channels
    pred = gt.copy()
    pred[3:, 4:] = 0
    gt_segments = [{"id": 300, "category_id": 1, "iscrowd": 0, "area": 18},
                   {"id": 70000, "category_id": 2, "iscrowd": 0, "area": 9},
                   {"id": 5, "category_id": 3, "iscrowd": 1, "area": 9}]
    pred_segments = [{"id": 300, "category_id": 1}, {"id": 70000, "category_id": 3}, {"id": 5, "category_id": 3}]
    expected = PanopticQualityAccumulator(CATEGORIES)
    expected.update(gt, gt_segments, pred, pred_segments)
    expected = expected.compute()
    assert expected["All"]["n"] == 3  # sky matched, the car missed, a dog where the car is

    given = PanopticQualityAccumulator(CATEGORIES)
    given.update(PIL.Image.fromarray(id2rgb(gt)), [{"id": torch.tensor(300), "category_id": np.int64(1)},
                                                   {"id": 70000, "category_id": 2},
                                                   {"id": 5, "category_id": 3, "iscrowd": 1}],
                 torch.tensor(pred, dtype=torch.float32), [{"id": torch.tensor(s["id"]), "category_id":
                                                            torch.tensor(s["category_id"])} for s in pred_segments])
    assert given.compute() == expected
    colours = PanopticQualityAccumulator(CATEGORIES)
    colours.update(id2rgb(gt), gt_segments, id2rgb(pred), pred_segments)
    assert colours.compute() == expected


def test_inputs_that_would_change_the_numbers_are_refused():
    gt = np.ones((2, 2), dtype=np.int64)
    segments = [{"id": 1, "category_id": 1}]
    accumulator = PanopticQualityAccumulator(CATEGORIES)
    with pytest.raises(ValueError, match=r"not segment ids \(whole numbers\).*nearest"):
        accumulator.update(gt, segments, gt + 0.4, segments)  # a bilinear resize
    with pytest.raises(ValueError, match="segment id 1 is in segments_info twice"):
        accumulator.update(gt, segments * 2, gt, segments)
    with pytest.raises(KeyError, match="ground-truth segment 1 has unknown category 9"):
        accumulator.update(gt, [{"id": 1, "category_id": 9}], gt, segments)
    with pytest.raises(KeyError, match=r"-1 marks .* set them to 0 \(void\)"):
        accumulator.update(gt, segments, -gt, segments)
    with pytest.raises(ValueError, match="has shape \\(1, 2, 2\\)"):
        accumulator.update(gt[None], segments, gt[None], segments)
    with pytest.raises(ValueError, match="`id` and `isthing`"):
        PanopticQualityAccumulator([{"id": 1, "name": "sky"}])
    with pytest.raises(ValueError, match="Category id 1 is given twice"):
        PanopticQualityAccumulator([{"id": 1, "isthing": 0}, {"id": 1, "isthing": 1}])
    assert accumulator.stats.sum() == 0  # nothing was counted by the refused images


def test_pq_compute_reads_one_channel_id_pngs(shapes, tmp_path):
    """Predictions saved as 16-bit or 8-bit id maps (not RGB-encoded) were read through convert('RGB') as grey
    colours: id v became v * 65793, and the images failed as 'segment 65793 is in the predicted PNG'."""
    gt_json = json.loads(shapes["panoptic_json"].read_text())
    for mode, dtype in (("I;16", np.uint16), ("L", np.uint8)):
        folder = tmp_path / mode.replace(";", "")
        folder.mkdir()
        for annotation in gt_json["annotations"]:
            ids = rgb2id(np.asarray(PIL.Image.open(shapes["panoptic_dir"] / annotation["file_name"])))
            PIL.Image.fromarray(ids.astype(dtype)).save(folder / annotation["file_name"])
            assert PIL.Image.open(folder / annotation["file_name"]).mode == mode
        results = pq_compute(shapes["panoptic_json"], shapes["panoptic_dir"], shapes["panoptic_json"], folder)
        assert results["All"]["pq"] == pytest.approx(1.0) and results["All"]["n"] > 0


def _panopticapi(images, categories):
    """panopticapi's pq_compute_single_core and PQStat.pq_average as published (cocodataset/panopticapi,
    evaluation.py), on (gt ids, gt segments_info, pred ids, pred segments_info) per image."""
    offset, void = 256 * 256 * 256, 0
    stat = {c["id"]: [0.0, 0, 0, 0] for c in categories}  # iou, tp, fp, fn
    for pan_gt, gt_info, pan_pred, pred_info in images:
        gt_segms = {el["id"]: dict(el) for el in gt_info}
        pred_segms = {el["id"]: dict(el) for el in pred_info}
        labels, counts = np.unique(pan_pred, return_counts=True)
        for label, count in zip(labels, counts):
            if label in pred_segms:
                pred_segms[label]["area"] = count
        gt_pred_map = {}
        labels, counts = np.unique(pan_gt.astype(np.uint64) * offset + pan_pred.astype(np.uint64), return_counts=True)
        for label, intersection in zip(labels, counts):
            gt_pred_map[(int(label // offset), int(label % offset))] = intersection
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in gt_pred_map.items():
            if gt_label not in gt_segms or pred_label not in pred_segms or gt_segms[gt_label]["iscrowd"] == 1:
                continue
            if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
                continue
            union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                     - gt_pred_map.get((void, pred_label), 0))
            iou = intersection / union
            if iou > 0.5:
                stat[gt_segms[gt_label]["category_id"]][0] += iou
                stat[gt_segms[gt_label]["category_id"]][1] += 1
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_labels_dict = {}
        for gt_label, gt_info_ in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt_info_["iscrowd"] == 1:
                crowd_labels_dict[gt_info_["category_id"]] = gt_label
                continue
            stat[gt_info_["category_id"]][3] += 1
        for pred_label, pred_info_ in pred_segms.items():
            if pred_label in pred_matched:
                continue
            intersection = gt_pred_map.get((void, pred_label), 0)
            if pred_info_["category_id"] in crowd_labels_dict:
                intersection += gt_pred_map.get((crowd_labels_dict[pred_info_["category_id"]], pred_label), 0)
            if intersection / pred_info_["area"] > 0.5:
                continue
            stat[pred_info_["category_id"]][2] += 1
    results = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        pq = sq = rq = n = 0
        per_class = {}
        for category in categories:
            if isthing is not None and (category["isthing"] == 1) != isthing:
                continue
            iou, tp, fp, fn = stat[category["id"]]
            if tp + fp + fn == 0:
                per_class[category["id"]] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            scores = iou / (tp + 0.5 * fp + 0.5 * fn), iou / tp if tp != 0 else 0, tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class[category["id"]] = dict(zip(("pq", "sq", "rq"), scores))
            pq, sq, rq = pq + scores[0], sq + scores[1], rq + scores[2]
        results[name] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}
        if name == "All":
            results["per_class"] = per_class
    return results


def test_equals_panopticapi_on_void_crowd_and_iou_one_half():
    """Side by side with panopticapi's rules: void predictions, crowd ground truth absorbing a prediction of its
    category, unlabelled ground-truth pixels (in the PNG, not in segments_info), an IoU of exactly 0.5 (no match),
    an image without prediction and one without ground truth, a category found nowhere (left out of the averages)."""
    categories = CATEGORIES + [{"id": 4, "name": "cat", "isthing": 1}]
    rng = np.random.default_rng(5)
    images = []
    gt = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    gt_info = [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 8}, {"id": 2, "category_id": 2, "iscrowd": 0,
               "area": 4}, {"id": 3, "category_id": 3, "iscrowd": 1, "area": 4}]
    pred = np.array([[1, 1, 1, 1], [0, 0, 1, 1], [5, 5, 7, 7], [6, 6, 7, 7]])  # car halves: IoU 2/4 each
    images.append((gt, gt_info, pred, [{"id": 1, "category_id": 1}, {"id": 5, "category_id": 2},
                                       {"id": 6, "category_id": 2}, {"id": 7, "category_id": 3}]))
    images.append((gt, gt_info, np.zeros_like(gt), []))  # no prediction
    images.append((np.zeros_like(gt), [], gt, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2},
                                               {"id": 3, "category_id": 3}]))  # no ground truth
    for _ in range(4):
        gt = rng.integers(0, 5, (16, 16))  # id 4: unlabelled pixels (not in segments_info)
        gt_info = [{"id": i, "category_id": int(rng.integers(1, 4)), "iscrowd": int(rng.random() < 0.3),
                    "area": int((gt == i).sum())} for i in (1, 2, 3)]
        pred = np.where(rng.random(gt.shape) < 0.75, gt, rng.integers(0, 4, gt.shape))
        pred_info = [{"id": i, "category_id": s["category_id"] if rng.random() < 0.8 else 3}
                     for i, s in zip((1, 2, 3, 4), gt_info + [{"category_id": 1}]) if (pred == i).any()]
        images.append((gt, gt_info, pred, pred_info))
    expected = _panopticapi(images, categories)
    accumulator = PanopticQualityAccumulator(categories)
    for image in images:
        accumulator.update(*image)
    results = accumulator.compute()
    assert expected["per_class"][4] == {"pq": 0.0, "sq": 0.0, "rq": 0.0} and expected["All"]["n"] == 3
    assert 0.1 < expected["All"]["pq"] < 0.9
    for name in ("All", "Things", "Stuff"):
        assert results[name] == pytest.approx(expected[name], abs=1e-12)
    assert results["per_class"].keys() == expected["per_class"].keys()
    for category_id, scores in expected["per_class"].items():
        assert results["per_class"][category_id] == pytest.approx(scores, abs=1e-12)


def test_void_id_and_categories_not_as_a_list_are_named():
    """A segment of id 0 (void's id) failed as 'segments [0] are in segments_info but not in the PNG' though the map
    held void; categories given as an id2label mapping failed with "argument of type 'int' is not iterable"."""
    gt = np.array([[0, 1], [1, 1]])
    segments = [{"id": 0, "category_id": 1}, {"id": 1, "category_id": 2}]
    with pytest.raises(ValueError, match="segment has id 0, which marks void pixels"):
        PanopticQualityAccumulator(CATEGORIES).update(gt, segments[1:], gt, segments)
    with pytest.raises(ValueError, match="categories is a list of COCO-panoptic categories"):
        PanopticQualityAccumulator({1: "sky", 2: "car"})
