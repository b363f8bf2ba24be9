"""Large-scale jitter: fixed output size, masks that stay on their pixels, reported crops, determinism."""

import numpy as np
import pytest

from seem_hf.data.transforms import LargeScaleJitter


def _scene():
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    masks = np.zeros((3, 60, 90), dtype=bool)
    masks[0, :, :30] = True  # red band on the left
    masks[1, :, 30:] = True  # green on the right
    masks[2, 20:40, 60:80] = True  # a blue square, over the green (segments may overlap in this test)
    image[masks[0]] = (255, 0, 0)
    image[masks[1]] = (0, 255, 0)
    image[masks[2]] = (0, 0, 255)
    return image, masks


@pytest.mark.parametrize("seed", range(8))
def test_masks_stay_on_their_pixels(seed):
    image, masks = _scene()
    out = LargeScaleJitter(output_size=128, min_scale=0.5, max_scale=2.0)(image, masks, np.random.default_rng(seed))
    assert out.image.shape == (128, 128, 3) and out.masks.shape[1:] == (128, 128) and out.valid.shape == (128, 128)
    assert (out.image[~out.valid] == 128).all() and not out.masks[:, ~out.valid].any()
    colors = {0: (255, 0, 0), 1: (0, 0, 0), 2: (0, 0, 255)}
    for mask, index in zip(out.masks, out.kept):
        if index == 1:
            continue  # the green band is partly under the blue square
        inner = mask.copy()  # away from edges, where bilinear colours blend
        inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        inner[[0, -1]] = False
        inner[:, [0, -1]] = False
        if inner.any():
            assert (np.abs(out.image[inner].astype(int) - colors[index]).max(1) <= 40).mean() > 0.95


def test_cropped_out_segments_are_reported():
    image, masks = _scene()
    jitter = LargeScaleJitter(output_size=64, min_scale=2.0, max_scale=2.0, flip_probability=0.0)
    seen = set()
    for seed in range(20):
        out = jitter(image, masks, np.random.default_rng(seed))
        assert len(out.kept) == len(out.masks) and set(out.kept.tolist()) <= {0, 1, 2}
        seen.add(tuple(out.kept.tolist()))
    assert any(len(kept) < 3 for kept in seen)  # at 2x zoom some crops lose a segment, and say so


def test_same_seed_same_result_and_flip():
    image, masks = _scene()
    jitter = LargeScaleJitter(output_size=96)
    first, second = (jitter(image, masks, np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(first.image, second.image) and np.array_equal(first.masks, second.masks)
    flipped = LargeScaleJitter(output_size=96, min_scale=1.0, max_scale=1.0, flip_probability=1.0)(
        image, masks, np.random.default_rng(0)
    )
    assert flipped.masks[0][:, -20:].any() and not flipped.masks[0][:, :20].any()  # the left band moved right


def test_bad_arguments():
    with pytest.raises(ValueError, match="output_size"):
        LargeScaleJitter(output_size=8)
    with pytest.raises(ValueError, match="min_scale"):
        LargeScaleJitter(min_scale=2.0, max_scale=1.0)
    image, masks = _scene()
    with pytest.raises(ValueError, match="do not match"):
        LargeScaleJitter(output_size=64)(image, masks[:, :10], np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        LargeScaleJitter(output_size=64)(image.astype(float), masks, np.random.default_rng(0))


def _training_rows(root, rewrite):
    """The first training row of a 2-image shapes folder, before and after `rewrite(path, pixels)` re-stores its
    image file (the annotation untouched), both through the examples' augmentation at scale 1."""
    import PIL.Image

    from seem_hf.data import AugmentedPanopticDataset, coco_panoptic_paths, load_coco_panoptic, make_shapes_dataset

    make_shapes_dataset(root, 2, 0, 64, seed=0)
    paths = coco_panoptic_paths(root, ("train",))["train"]

    def first_row():
        dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
        return AugmentedPanopticDataset(dataset, LargeScaleJitter(64, 1.0, 1.0, flip_probability=0.0))[0]

    before = first_row()
    path = sorted(root.joinpath("train").glob("*.jpg"))[0]
    with PIL.Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    rewrite(path, pixels)
    return before, first_row()


def test_training_images_read_16_bit_and_exif_like_inference(tmp_path):
    """Training reads images by the inference rule (seem_hf.image_utils.read_image): a 16-bit PNG is not
    saturated to white, and a photo stored sideways with an EXIF orientation is turned upright to match its
    annotation."""
    import PIL.Image

    def sixteen_bit(path, pixels):  # the same picture as one 16-bit grey channel (PIL opens it by its content)
        grey = np.asarray(PIL.Image.fromarray(pixels).convert("L"), dtype=np.uint16) * 257
        PIL.Image.fromarray(grey).save(path, format="PNG")

    before, after = _training_rows(tmp_path / "a", sixteen_bit)
    grey = np.asarray(PIL.Image.fromarray(before["image"]).convert("L"), dtype=int)
    assert np.abs(after["image"][..., 0].astype(int) - grey).max() <= 1  # rounding of 16 -> 8 bits
    assert after["image"].mean() < 200 and (after["masks"] == before["masks"]).all()

    def sideways(path, pixels):  # stored turned 90 degrees, with the EXIF tag that turns it back (orientation 8)
        exif = PIL.Image.Exif()
        exif[0x0112] = 8
        PIL.Image.fromarray(np.rot90(pixels, k=-1).copy()).save(path, format="PNG", exif=exif)

    before, after = _training_rows(tmp_path / "b", sideways)
    assert np.abs(after["image"].astype(int) - before["image"].astype(int)).max() <= 2
    assert (after["masks"] == before["masks"]).all()


def test_training_image_of_another_size_is_named(tmp_path):
    import PIL.Image

    def resized(path, pixels):
        PIL.Image.fromarray(pixels).resize((40, 64)).save(path, format="PNG")

    with pytest.raises(ValueError, match=r"000001.jpg: image 1: size \(64, 40\) \(H, W\) differs from the JSON"):
        _training_rows(tmp_path, resized)  # the folder's validation names it before training starts
    from seem_hf.image_utils import read_annotated_image

    with pytest.raises(ValueError, match=r"is 40x64 \(width x height\) but its annotation is 64x64"):
        read_annotated_image(PIL.Image.new("RGB", (40, 64)), 64, 64)  # rows that skip validation (`datasets`)


def test_any_integer_image_id_seeds_the_augmentation():
    """Negative ids (and ids past 2**63) draw as any other, the same each time; distinct ids draw differently."""
    import PIL.Image

    from seem_hf.data import id2rgb
    from seem_hf.data.transforms import augment_panoptic_row

    ids = np.ones((64, 64), np.int64)
    ids[10:30, 10:40] = 2
    row = {"image": PIL.Image.new("RGB", (64, 64)), "panoptic": PIL.Image.fromarray(id2rgb(ids)), "groundings": [],
           "segments": [{"id": 1, "label": 0, "isthing": False, "iscrowd": False, "bbox": [0, 0, 64, 64]},
                        {"id": 2, "label": 1, "isthing": True, "iscrowd": False, "bbox": [10, 10, 30, 20]}]}
    jitter = LargeScaleJitter(64, 0.5, 2.0)
    draws = {image_id: augment_panoptic_row({**row, "image_id": image_id}, jitter, -3, 0)["masks"]
             for image_id in (-1, 1, 2**64 - 1, 2**70)}
    again = augment_panoptic_row({**row, "image_id": -1}, jitter, -3, 0)["masks"]
    assert (again == draws[-1]).all()
    assert len({(masks.shape, masks.tobytes()) for masks in draws.values()}) > 1


def test_a_folder_annotation_on_the_stored_pixels_of_a_turned_photo(tmp_path):
    """A phone photo whose EXIF orientation turns it by 90 degrees, annotated on its stored pixels (COCO's own
    convention): datasets decodes it upright, the augmentation reads it as stored since only that fits."""
    import json

    import PIL.Image

    from seem_hf.data import AugmentedPanopticDataset, id2rgb, load_coco_panoptic

    (tmp_path / "images").mkdir()
    (tmp_path / "png").mkdir()
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[:, :48] = (255, 0, 0)
    PIL.Image.fromarray(pixels).save(tmp_path / "images" / "a.png", exif=exif)
    ids = np.ones((64, 96), np.int64)
    ids[:, :48] = 2
    PIL.Image.fromarray(id2rgb(ids)).save(tmp_path / "png" / "a.png")
    segments = [{"id": 1, "category_id": 1, "area": 64 * 48, "bbox": [48, 0, 48, 64], "iscrowd": 0},
                {"id": 2, "category_id": 2, "area": 64 * 48, "bbox": [0, 0, 48, 64], "iscrowd": 0}]
    (tmp_path / "panoptic.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 96}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segments}],
        "categories": [{"id": 1, "name": "sea", "isthing": 0, "color": [0, 0, 255]},
                       {"id": 2, "name": "boat", "isthing": 1, "color": [255, 0, 0]}]}))
    dataset = load_coco_panoptic(tmp_path / "images", tmp_path / "png", tmp_path / "panoptic.json")
    item = AugmentedPanopticDataset(dataset, LargeScaleJitter(96, 1.0, 1.0, flip_probability=0.0))[0]
    boat = item["masks"][list(item["labels"]).index(1)]
    assert (item["image"][boat][:, 0] > 200).all()


def test_both_orientations_fit_the_rule_decides():
    import io

    import PIL.Image

    from seem_hf.image_utils import read_annotated_image

    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, :4] = 255
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    turned = PIL.Image.open(buffer)
    np.testing.assert_array_equal(read_annotated_image(turned, 8, 8, "stored"), pixels)
    upright = read_annotated_image(turned, 8, 8)
    assert (upright[:4] == 255).all() or (upright[4:] == 255).all()  # turned: the white half is now a row half
    with pytest.raises(ValueError, match="both_fit is 'upright' or 'stored'"):
        read_annotated_image(turned, 8, 8, "guess")


def test_an_image_without_segments_augments_and_collates(tmp_path):
    """An image whose every pixel is void (`segments_info` empty: a picture with nothing labelled in it, common in
    real datasets) is a valid training sample: it augments to no masks, and each model's collator batches it (the
    jitter crashed with 'cannot reshape array of size 0')."""
    import json

    import PIL.Image

    from seem_hf import DetrPanopticImageProcessor, LSegProcessor
    from seem_hf.data import AugmentedPanopticDataset, load_coco_panoptic, make_shapes_dataset
    from seem_hf.testing import FIXTURES
    from seem_hf.training import DetrPanopticCollator, SemanticCollator

    paths = make_shapes_dataset(tmp_path, num_train=2, num_val=0, image_size=64)["train"]
    data = json.loads(paths["panoptic_json"].read_text())
    empty = data["annotations"][0]
    empty["segments_info"] = []
    PIL.Image.new("RGB", (64, 64)).save(paths["panoptic_dir"] / empty["file_name"])
    paths["panoptic_json"].write_text(json.dumps(data))
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
    train = AugmentedPanopticDataset(dataset, LargeScaleJitter(64, 0.5, 2.0), seed=0)
    items = [train[index] for index in range(2)]
    nothing = next(item for item in items if item["image_id"] == empty["image_id"])
    assert nothing["masks"].shape == (0, 64, 64) and len(nothing["labels"]) == 0 and nothing["valid"].any()
    detr = DetrPanopticCollator(DetrPanopticImageProcessor.from_pretrained(FIXTURES / "tiny-random-detr_panoptic"))
    assert sorted(len(labels["class_labels"]) for labels in detr(items)["labels"])[0] == 0
    lseg = SemanticCollator(LSegProcessor.from_pretrained(FIXTURES / "tiny-random-lseg"),
                            [category["name"] for category in data["categories"]])
    labels = lseg(items)["labels"]
    assert labels.shape == (2, 64, 64) and (labels == 255).all(dim=(1, 2)).any()  # the empty image: all ignored
