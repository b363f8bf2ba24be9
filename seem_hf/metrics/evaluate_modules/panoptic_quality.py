"""Panoptic quality with panopticapi's definitions and result keys, as an `evaluate` metric (seem_hf's
`PanopticQualityAccumulator`; `seem_hf.metrics.pq_compute` gives the same numbers from files)."""

import datasets
import evaluate
import numpy as np

from seem_hf.metrics import PanopticQualityAccumulator
from seem_hf.metrics.evaluate_modules import common
from seem_hf.metrics.panoptic_quality import segment_id_map

_DESCRIPTION = """Panoptic quality (Kirillov et al., 2019) as panopticapi's `pq_compute`: per image, a predicted and
a ground-truth segment of one category match when their IoU exceeds 0.5 (the union leaves out predicted pixels
on void); crowd segments are never matched, and an unmatched prediction lying more than half on void or on a
crowd region of its category is not a false positive. Per category PQ = SQ x RQ; averages over the categories
that occur, for All, Things and Stuff."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, a dict with `segmentation`, a (height, width) map of segment ids (0 is void), and
        `segments_info`, a list of `{"id", "category_id"}` (other keys are ignored); a panoptic PNG's (height,
        width, 3) colours are read as its ids.
    references: per image, the same with `segments_info` entries `{"id", "category_id", "iscrowd", "area"}` as in
        COCO-panoptic JSON; `iscrowd` defaults to 0 and `area` to the segment's pixel count in the map.
    categories (`list[dict]`): COCO-panoptic categories, each with `id` and `isthing`.
Returns:
    panopticapi's dictionary: `All`, `Things`, `Stuff` (each `pq`, `sq`, `rq` as fractions and `n`, the number of
    categories averaged) and `per_class` (category id -> `pq`, `sq`, `rq`).
Examples:
    >>> metric = evaluate.load(seem_hf.metrics.evaluate_module_path("panoptic_quality"))
    >>> segment = {"segmentation": [[1, 1], [0, 0]], "segments_info": [{"id": 1, "category_id": 7}]}
    >>> metric.compute(predictions=[segment], references=[segment], categories=[{"id": 7, "isthing": 1}])["All"]["pq"]
    1.0
"""

_ID_MAP = common.STORED_ARRAY
_PREDICTION = {
    "segmentation": _ID_MAP,
    "segments_info": datasets.List({"id": datasets.Value("int64"), "category_id": datasets.Value("int64")}),
}
_REFERENCE = {
    "segmentation": _ID_MAP,
    "segments_info": datasets.List({
        "id": datasets.Value("int64"), "category_id": datasets.Value("int64"),
        "iscrowd": datasets.Value("int64"), "area": datasets.Value("int64"),
    }),
}


def _segments(example, which: str, fields: tuple) -> tuple:
    if not isinstance(example, dict) or "segmentation" not in example or "segments_info" not in example:
        raise ValueError(f"Each of the {which} is a dict with `segmentation` (segment ids) and `segments_info`.")
    segmentation = segment_id_map(example["segmentation"], f"`segmentation` among the {which}")
    for segment in example["segments_info"]:
        missing = [field for field in fields if field not in segment]
        if missing:
            hint = (" The image processors' post_process_panoptic_segmentation gives `label_id`: map it to the "
                    "category ids of `categories` (seem_hf's data numbers them label id + 1)."
                    if "label_id" in segment else "")
            raise ValueError(f"A segments_info entry among the {which} lacks {missing}: {segment}.{hint}")
    return segmentation, example["segments_info"]


class PanopticQuality(common.PreparedInputsMetric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            reference_urls=["https://github.com/cocodataset/panopticapi"],
            features=datasets.Features({"predictions": _PREDICTION, "references": _REFERENCE}),
        )

    def prepare_prediction(self, prediction):
        segmentation, segments = _segments(prediction, "predictions", ("id", "category_id"))
        return {
            "segmentation": common.store_array(segmentation, np.int32, 2, "A predicted `segmentation`"),
            "segments_info": [{"id": int(s["id"]), "category_id": int(s["category_id"])} for s in segments],
        }

    def prepare_reference(self, reference):
        segmentation, segments = _segments(reference, "references", ("id", "category_id"))
        return {
            "segmentation": common.store_array(segmentation, np.int32, 2, "A reference `segmentation`"),
            "segments_info": [
                {
                    "id": int(s["id"]),
                    "category_id": int(s["category_id"]),
                    "iscrowd": int(s.get("iscrowd", 0)),
                    "area": int(s["area"]) if "area" in s else int(np.count_nonzero(segmentation == s["id"])),
                }
                for s in segments
            ],
        }

    def _compute(self, predictions, references, categories):
        accumulator = PanopticQualityAccumulator(categories)
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            accumulator.update(
                common.load_array(reference["segmentation"], np.int32),
                reference["segments_info"],
                common.load_array(prediction["segmentation"], np.int32),
                prediction["segments_info"],
                image=f"image {index}",
            )
        return accumulator.compute()
