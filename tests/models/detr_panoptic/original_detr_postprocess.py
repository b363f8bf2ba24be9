"""A test reference: facebookresearch/detr's `PostProcessPanoptic.forward` (models/segmentation.py), transcribed
step by step into plain torch, numpy and PIL, written independently of `seem_hf.postprocessing`.

Kept as in the original on purpose, quirks included: the softmax over queries before the argmax; the stuff merge
applied in the first pass only (`dedup=True`), so that later queries of a stuff label get area 0 and are dropped;
the id map resized through an RGB PNG-style image (`id2rgb`) with PIL's nearest neighbour; areas counted at the
target size; segment ids 0, 1, ... in query order among the survivors. Two changes: the return value is the
decoded id map instead of the PNG bytes (the PNG is lossless, so the ids are the same), and an image with no
confident query skips the resize of an empty stack, which today's torch refuses (the original ran on torch 1.5).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def id2rgb(id_map: np.ndarray) -> np.ndarray:
    """panopticapi's `id2rgb`: id = R + 256 G + 256^2 B."""
    id_map_copy = id_map.copy()
    rgb_map = np.zeros((*id_map.shape, 3), dtype=np.uint8)
    for channel in range(3):
        rgb_map[..., channel] = id_map_copy % 256
        id_map_copy //= 256
    return rgb_map


def rgb2id(color: np.ndarray) -> np.ndarray:
    """panopticapi's `rgb2id`."""
    color = color.astype(np.int32)
    return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]


def post_process_panoptic(pred_logits, pred_masks, is_thing_map, processed_sizes, target_sizes=None, threshold=0.85):
    """Per image: `{"ids": (H, W) int64 segment ids, "segments_info": [{"id", "isthing", "category_id", "area"}]}`."""
    if target_sizes is None:
        target_sizes = processed_sizes
    preds = []
    for cur_logits, cur_masks, size, target_size in zip(pred_logits, pred_masks, processed_sizes, target_sizes):
        scores, labels = cur_logits.softmax(-1).max(-1)
        keep = labels.ne(pred_logits.shape[-1] - 1) & (scores > threshold)
        cur_scores, cur_classes = cur_logits.softmax(-1).max(-1)
        cur_scores = cur_scores[keep]
        cur_classes = cur_classes[keep]
        cur_masks = cur_masks[keep]
        if len(cur_masks):
            cur_masks = F.interpolate(cur_masks[None], tuple(size), mode="bilinear").squeeze(0)
        else:  # the torch of 2020 resized an empty stack to an empty stack; today's refuses it
            cur_masks = cur_masks.new_zeros((0, *(int(v) for v in size)))
        h, w = cur_masks.shape[-2:]

        cur_masks = cur_masks.flatten(1)
        stuff_equiv_classes = defaultdict(list)
        for k, label in enumerate(cur_classes):
            if not is_thing_map[label.item()]:
                stuff_equiv_classes[label.item()].append(k)

        def get_ids_area(masks, scores, dedup=False):
            m_id = masks.transpose(0, 1).softmax(-1)
            if m_id.shape[-1] == 0:
                m_id = torch.zeros((h, w), dtype=torch.long)
            else:
                m_id = m_id.argmax(-1).view(h, w)
            if dedup:
                for equiv in stuff_equiv_classes.values():
                    if len(equiv) > 1:
                        for eq_id in equiv:
                            m_id.masked_fill_(m_id.eq(eq_id), equiv[0])
            final_h, final_w = (int(v) for v in target_size)
            seg_img = Image.fromarray(id2rgb(m_id.view(h, w).numpy()))
            seg_img = seg_img.resize(size=(final_w, final_h), resample=Image.NEAREST)
            np_seg_img = np.frombuffer(seg_img.tobytes(), dtype=np.uint8).reshape(final_h, final_w, 3)
            m_id = torch.from_numpy(rgb2id(np_seg_img))
            area = [m_id.eq(i).sum().item() for i in range(len(scores))]
            return area, m_id

        area, ids = get_ids_area(cur_masks, cur_scores, dedup=True)
        if cur_classes.numel() > 0:
            while True:
                filtered_small = torch.as_tensor([area[i] <= 4 for i, c in enumerate(cur_classes)], dtype=torch.bool)
                if filtered_small.any().item():
                    cur_scores = cur_scores[~filtered_small]
                    cur_classes = cur_classes[~filtered_small]
                    cur_masks = cur_masks[~filtered_small]
                    area, ids = get_ids_area(cur_masks, cur_scores)
                else:
                    break
        else:
            cur_classes = torch.ones(1, dtype=torch.long)

        segments_info = []
        for i, a in enumerate(area):
            cat = cur_classes[i].item()
            segments_info.append({"id": i, "isthing": is_thing_map[cat], "category_id": cat, "area": a})
        preds.append({"ids": ids.long(), "segments_info": segments_info})
    return preds
