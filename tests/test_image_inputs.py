"""Every image input read right or refused clearly (issue 15, items 3, 4, 13 and the same classes beyond them):
the one reader (`seem_hf.image_utils.read_image`) behind the three image processors and both pipelines, driven
through the processors and pipelines as a user calls them.

The rule under test (docs/getting_started.md, "Image inputs"): uint8 as is; float on [0, 1] when every value is in
[0, 1], else on [0, 255], else refused; uint16 and 16-bit PIL modes on [0, 65535]; bool black and white; other
integers on [0, 255]; alpha composited onto white; EXIF orientation applied; `do_rescale=False` means [0, 1].
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from transformers import AutoProcessor, pipeline

import seem_hf  # noqa: F401  (registers the models and the pipelines)
from seem_hf.testing import FIXTURES

NAMES = ("seem", "lseg", "detr_panoptic")
PROCESSORS = {name: AutoProcessor.from_pretrained(FIXTURES / f"tiny-random-{name}") for name in NAMES}


@pytest.fixture(scope="module")
def segmenter():
    return pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))


def _photo(height=40, width=56, seed=0):
    """A uint8 RGB image with structure (gradients and a square), so that a wrong reading shows in the pixels."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([rows * 255 // max(1, height - 1), cols * 255 // max(1, width - 1),
                      np.full_like(rows, 128)], -1).astype(np.uint8)
    image[height // 4: height // 2, width // 4: width // 2] = (250, 20, 30)
    noise = np.random.default_rng(seed).integers(0, 20, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def _pixel_values(name, image, **kwargs):
    return PROCESSORS[name](images=image, return_tensors="pt", **kwargs)["pixel_values"]


# ------------------------------------------------------------------------------------------- value ranges (item 3)
@pytest.mark.parametrize("name", NAMES)
def test_float_images_on_the_unit_range_read_as_the_8_bit_image(name):
    """A float image on [0, 1] (numpy float32/float16, torch float32 channels-first) is the 8-bit image divided by
    255: the processors give the same pixel values as for the uint8 image (LSeg used to see a black image).
    float16 holds x / 255 to within 1/2048 of x / 255, so x 255 rounds back to the same 8-bit value; the rest of
    the processing is then the same computation, compared with a float32 tolerance."""
    image = _photo()
    expected = _pixel_values(name, image)
    unit = image.astype(np.float32) / 255
    for form in (unit, unit.astype(np.float16), torch.from_numpy(unit).permute(2, 0, 1),
                 torch.from_numpy(unit).permute(2, 0, 1).half()):
        torch.testing.assert_close(_pixel_values(name, form), expected, rtol=0, atol=1e-6)
    # the same image on [0, 255] as floats, with fractions: rounded to the nearest 8-bit value
    fractional = image.astype(np.float64) * 0.999 + 0.1  # within 0.16 of each 8-bit value
    torch.testing.assert_close(_pixel_values(name, fractional), expected, rtol=0, atol=1e-6)
    # transformers' own meaning of do_rescale=False: the images are already on [0, 1]
    torch.testing.assert_close(_pixel_values(name, unit, do_rescale=False), expected, rtol=0, atol=1e-6)


def test_float_images_outside_both_ranges_and_contradictory_do_rescale_are_refused():
    processor = PROCESSORS["lseg"]
    normalised = (_photo().astype(np.float32) / 255 - 0.5) / 0.5  # already normalised pixel values: not an image
    with pytest.raises(ValueError, match=r"\[0, 1\] or \[0, 255\].*Normalised"):
        processor(images=normalised)
    with pytest.raises(ValueError, match="do_rescale=False"):
        processor(images=_photo(), do_rescale=False)  # uint8 does not hold [0, 1] values


@pytest.mark.parametrize("name", NAMES)
def test_integer_and_bool_dtypes(name):
    """uint16 is 16-bit (x 257 is the same image), int64 holds 8-bit values (torch's and numpy's default integer
    type), bool is black and white; out-of-range integers are refused and an 8-bit-looking uint16 image warns."""
    image = _photo()
    expected = _pixel_values(name, image)
    torch.testing.assert_close(_pixel_values(name, image.astype(np.uint16) * 257), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(_pixel_values(name, image.astype(np.int64)), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(_pixel_values(name, torch.from_numpy(image.astype(np.int64)).permute(2, 0, 1)),
                               expected, rtol=0, atol=1e-6)
    mask = image[..., 0] > 127
    torch.testing.assert_close(_pixel_values(name, mask), _pixel_values(name, mask.astype(np.uint8) * 255),
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 255\].*uint16"):
        _pixel_values(name, image.astype(np.int32) * 4)
    with pytest.warns(UserWarning, match="16-bit image.*nearly black"):
        _pixel_values(name, image.astype(np.uint16))


# ------------------------------------------------------------------------------------------- PIL modes (item 4)
def _expected_rgb(gray_or_rgb, alpha=None):
    """What an image with these 8-bit values and this alpha should read as: alpha composited onto white."""
    rgb = np.repeat(gray_or_rgb[..., None], 3, -1) if gray_or_rgb.ndim == 2 else gray_or_rgb
    if alpha is None:
        return rgb
    weight = alpha[..., None].astype(np.float64) / 255
    return np.round(rgb * weight + 255 * (1 - weight)).astype(np.uint8)


def _mode_cases():
    image = _photo(24, 32)
    gray = image[..., 0]
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    palette_image = PIL.Image.fromarray(image).quantize(8)
    palette = np.array(palette_image.getpalette()[: 8 * 3], np.uint8).reshape(8, 3)
    indices = np.asarray(palette_image)
    transparent = palette_image.copy()
    transparent.info["transparency"] = int(indices[0, 0])
    palette_rgb = palette[indices]
    cmyk = PIL.Image.fromarray(image).convert("CMYK")
    return {
        "I;16": (PIL.Image.fromarray(gray.astype(np.uint16) * 257), _expected_rgb(gray)),
        "I": (PIL.Image.fromarray(gray.astype(np.int32) * 257), _expected_rgb(gray)),
        "F": (PIL.Image.fromarray(gray.astype(np.float32) / 255), _expected_rgb(gray)),
        "1": (PIL.Image.fromarray(gray > 127), _expected_rgb((gray > 127).astype(np.uint8) * 255)),
        "LA": (PIL.Image.fromarray(np.stack([gray, alpha], -1), "LA"), _expected_rgb(gray, alpha)),
        "RGBA": (PIL.Image.fromarray(np.concatenate([image, alpha[..., None]], -1)), _expected_rgb(image, alpha)),
        "P": (palette_image, palette_rgb),
        "P+transparency": (transparent, np.where((indices == indices[0, 0])[..., None], 255, palette_rgb)),
        # CMYK -> RGB is PIL's conversion (255 - C - K per channel); the white-out defect gave all 255
        "CMYK": (cmyk, np.asarray(cmyk.convert("RGB"))),
    }


@pytest.mark.parametrize("mode", list(_mode_cases()))
def test_every_pil_mode_reads_as_its_rgb_image(mode, tmp_path):
    from seem_hf.image_utils import read_image

    image, expected = _mode_cases()[mode]
    assert not (expected == 255).all()
    if mode in ("I;16", "LA", "RGBA", "P+transparency"):  # as a file, the way such images arrive
        path = tmp_path / "image.png"
        image.save(path)
        image = PIL.Image.open(path)
        assert image.mode in (mode.split("+")[0], "I") or (mode == "I;16" and image.mode.startswith("I"))
    np.testing.assert_array_equal(read_image(image), expected)
    # and the processors see exactly that image
    for name in NAMES:
        torch.testing.assert_close(_pixel_values(name, image), _pixel_values(name, expected), rtol=0, atol=1e-6)


def test_16_bit_png_through_the_pipeline_is_the_8_bit_image(segmenter, tmp_path):
    """A 16-bit grayscale PNG (read as mode I;16) gives the segments of its 8-bit version, not of a white image."""
    gray = _photo()[..., 1]
    PIL.Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    inputs = segmenter.preprocess(str(tmp_path / "16bit.png"))
    expected = segmenter.preprocess(gray)
    torch.testing.assert_close(inputs["pixel_values"], expected["pixel_values"], rtol=0, atol=1e-6)


def test_pipeline_and_processor_read_alpha_the_same(segmenter):
    """A transparent region is white for the pipeline as for the processors (the pipeline used to drop alpha while
    the processors composited it)."""
    image = _photo()
    alpha = np.zeros(image.shape[:2], np.uint8)
    alpha[:, : image.shape[1] // 2] = 255
    rgba = PIL.Image.fromarray(np.concatenate([image, alpha[..., None]], -1))
    composited = _expected_rgb(image, alpha)
    torch.testing.assert_close(segmenter.preprocess(rgba)["pixel_values"],
                               segmenter.preprocess(composited)["pixel_values"], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ EXIF orientation
def test_exif_orientation_is_applied_by_processors_and_pipelines(segmenter, tmp_path):
    """A camera JPEG stored sideways with orientation 6 ("rotate 90 degrees clockwise to view") is read upright by
    the processors too, as transformers' `load_image` and the pipelines read it; `image_size` agrees."""
    from seem_hf.image_utils import image_size

    stored = _photo(40, 56)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    PIL.Image.fromarray(stored).save(path, exif=exif, quality=95)
    opened = PIL.Image.open(path)
    upright = PIL.ImageOps.exif_transpose(PIL.Image.open(path))
    assert upright.size == (40, 56) and image_size(opened) == (56, 40)
    for name in NAMES:
        torch.testing.assert_close(_pixel_values(name, opened), _pixel_values(name, upright), rtol=0, atol=1e-6)
    results = segmenter(path, subtask="semantic")
    assert results[0]["mask"].size == (40, 56)  # PIL sizes are (width, height)


# --------------------------------------------------------------------------------------- paths and errors (item 13)
def test_paths_urls_and_file_errors_name_the_file(segmenter, tmp_path, monkeypatch):
    image = _photo()
    path = tmp_path / "image.png"
    PIL.Image.fromarray(image).save(path)
    expected = [r["label"] for r in segmenter(image, subtask="semantic")]
    assert [r["label"] for r in segmenter(path, subtask="semantic")] == expected  # a pathlib.Path

    from huggingface_hub.utils import httpx

    class _Response:
        content = path.read_bytes()

        def raise_for_status(self):
            return None

    monkeypatch.setattr(httpx, "get", lambda url, **kwargs: _Response())
    assert [r["label"] for r in segmenter("https://example.com/image.png", subtask="semantic")] == expected

    missing = tmp_path / "no such image.png"
    with pytest.raises(FileNotFoundError, match="no such image.png"):
        segmenter(str(missing))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.png"):
        segmenter(str(truncated))
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="notes.png"):
        segmenter(str(not_an_image))


def test_empty_and_batched_pipeline_inputs(segmenter):
    image = _photo()
    with pytest.raises(ValueError, match="empty list"):
        segmenter([])
    batch = np.stack([image, image[::-1].copy()])
    from_array = segmenter(batch, subtask="semantic")  # a 4-D array is a batch, as for the processors
    from_tuple = segmenter((image, image[::-1].copy()), subtask="semantic")
    assert len(from_array) == len(from_tuple) == 2
    assert [r["label"] for r in from_array[1]] == [r["label"] for r in from_tuple[1]]


def test_read_image_reads_bytes_like_base64_and_refuses_garbage():
    from seem_hf.image_utils import read_image

    buffer = io.BytesIO()
    PIL.Image.fromarray(_photo()).save(buffer, format="PNG")
    import base64

    data = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    np.testing.assert_array_equal(read_image(data, allow_paths=True), _photo())
    with pytest.raises(FileNotFoundError, match="No image file"):
        read_image("cat.jpg", allow_paths=True)
    with pytest.raises(ValueError, match="Unsupported image type str"):
        read_image("cat.jpg")  # processors take images, not paths (as transformers' processors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a uint8 image is read without a word
        read_image(_photo())


def test_seem_prompts_for_a_4d_batch_and_a_single_visual_prompt():
    """A 4-D array is a batch for the prompts too (its images used to count as one), and one object's visual prompt
    may be a dict on its own, as one sentence may be a string (it used to fail with a bare KeyError)."""
    processor = PROCESSORS["seem"]
    image = _photo()
    batch = np.stack([image, image[::-1].copy()])
    outputs = processor(images=batch, visual_prompts=[[{"points": [(3, 4)]}], [{"points": [(50, 30)]}]])
    expected = processor(images=list(batch), visual_prompts=[[{"points": [(3, 4)]}], [{"points": [(50, 30)]}]])
    assert torch.equal(outputs["spatial_positive_masks"], expected["spatial_positive_masks"])
    assert processor(images=batch, sentences=[["a"], ["b"]])["grounding_input_ids"].shape[:2] == (2, 1)
    single = processor(images=image, visual_prompts={"points": [(3, 4)]})["spatial_positive_masks"]
    assert torch.equal(single, processor(images=image, visual_prompts=[{"points": [(3, 4)]}])["spatial_positive_masks"])


# ------------------------------------------------------------------------ overshoot, byte order, data format (probe)
def test_float_images_overshooting_the_unit_range_are_clipped_with_a_warning():
    """Bicubic resampling of an image on [0, 1] leaves values slightly outside it: read as [0, 1] and clipped, with a
    warning counting them (it was read as [0, 255], a black image, or refused as normalised pixel values)."""
    from seem_hf.image_utils import read_image

    unit = _photo().astype(np.float32) / 255
    expected = read_image(unit)
    for low, high in ((0.0, 1.035), (-0.037, 1.0), (-0.037, 1.035)):
        overshooting = unit.copy()
        overshooting[0, 0, 0], overshooting[1, 1, 1] = low, high
        with pytest.warns(UserWarning, match=rf"{int(low < 0) + int(high > 1)} of its values.*clipped to \[0, 1\]"):
            read = read_image(overshooting)
        changed = np.zeros(unit.shape, bool)
        changed[0, 0, 0] = changed[1, 1, 1] = True
        np.testing.assert_array_equal(read[~changed], expected[~changed])
        assert read[0, 0, 0] == round(255 * max(low, 0)) and read[1, 1, 1] == round(255 * min(high, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(unit), expected)  # no overshoot: no warning
    with pytest.raises(ValueError, match="Normalised"):
        read_image(unit * 2 - 0.5)  # [-0.5, 1.5]: beyond overshoot, and not [0, 255]


def test_big_endian_arrays_read_as_native_ones():
    from seem_hf.image_utils import read_image

    image = _photo()
    sixteen = image.astype(np.uint16) * 257
    np.testing.assert_array_equal(read_image(sixteen.astype(">u2")), read_image(sixteen))
    np.testing.assert_array_equal(read_image(sixteen.astype(">u2")), image)
    with pytest.warns(UserWarning, match="16-bit image.*nearly black"):
        read_image(image.astype(">u2"))
    unit = image.astype(np.float32) / 255
    np.testing.assert_array_equal(read_image(unit.astype(">f4")), read_image(unit))
    np.testing.assert_array_equal(read_image(image.astype(">i4")), image)


def test_input_data_format_is_checked():
    from seem_hf.image_utils import read_image

    hwc = _photo()
    with pytest.raises(ValueError, match="input_data_format must be one of"):
        read_image(hwc, input_data_format="bogus")
    with pytest.raises(ValueError, match="input_data_format must be one of"):
        PROCESSORS["seem"](images=hwc, input_data_format="bogus")
    with pytest.raises(ValueError, match=r"channels_first.*first axis.*\(40, 56, 3\)"):
        PROCESSORS["seem"](images=hwc, input_data_format="channels_first")
    with pytest.raises(ValueError, match="last axis"):
        read_image(hwc.transpose(2, 0, 1), input_data_format="channels_last")
    np.testing.assert_array_equal(read_image(hwc.transpose(2, 0, 1), input_data_format="channels_first"), hwc)


# ------------------------------------------------------------------------------- errors in a batch, odd containers
@pytest.mark.parametrize("batch_size", [1, 4])
def test_pipeline_errors_name_the_image_of_the_batch(segmenter, tmp_path, batch_size):
    """An unreadable image in a pipeline batch used to be reported with no word of which one it was (the processors
    named it); both pipelines now name its index, for arrays and for files, one at a time and batched."""
    image = _photo()
    bad = np.zeros((5, 5, 2), np.uint8)
    with pytest.raises(ValueError, match=r"1, 3 or 4 channels.*\(image 2\)"):
        segmenter([image, image, bad, image], batch_size=batch_size)
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg.*image 1 of the batch"):
        segmenter([image, missing], batch_size=batch_size)
    referring = pipeline("referring-segmentation", model=str(FIXTURES / "tiny-random-seem"))
    with pytest.raises(ValueError, match=r"Unsupported image type NoneType \(image 1\)"):
        referring([image, None], sentences=["a cat"], batch_size=batch_size)
    # the wrapping is invisible to readable batches
    assert [len(r) for r in segmenter([image, image], batch_size=batch_size, subtask="semantic")] == [
        len(segmenter(image, subtask="semantic"))] * 2


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_closed_images_directories_bytes_and_array_subclasses(segmenter, tmp_path):
    """A PIL image whose `with PIL.Image.open(...)` block had ended failed with a bare AssertionError from PIL's
    loader, and an np.matrix with numpy's 'shape too large to be a matrix'; a directory was 'No image file', encoded
    bytes had no hint. Each is now read or named with its fix."""
    from seem_hf.image_utils import read_image

    path = tmp_path / "image.png"
    PIL.Image.fromarray(_photo()).save(path)
    with PIL.Image.open(path) as closed:
        pass
    with pytest.raises(ValueError, match=r"image\.png.*closed before its pixels were loaded.*image\.load\(\)"):
        read_image(closed)
    with pytest.raises(ValueError, match="closed before"):
        segmenter(closed)
    with pytest.raises(IsADirectoryError, match="is a directory, not an image file"):
        segmenter(tmp_path)
    with pytest.raises(ValueError, match=r"Unsupported image type bytes.*io\.BytesIO"):
        segmenter(path.read_bytes())
    gray = _photo()[..., 0]
    np.testing.assert_array_equal(read_image(np.asmatrix(gray)), read_image(gray))
    torch.testing.assert_close(_pixel_values("seem", np.asmatrix(gray)), _pixel_values("seem", gray), rtol=0, atol=0)


def test_files_of_several_frames_are_closed_and_read_by_their_first_frame_with_a_warning(segmenter, tmp_path):
    """An animated GIF (or a multi-page TIFF) given by path was left open by PIL after its first frame was decoded
    (a ResourceWarning per image, one open file per image read until garbage collection), and its other frames
    were dropped without a word. The file is now closed once read, and the warning names it, the number of frames
    and how to segment each."""
    import gc

    first, second = _photo(), _photo(seed=1)[::-1].copy()
    path = tmp_path / "animation.gif"
    PIL.Image.fromarray(first).save(path, save_all=True, append_images=[PIL.Image.fromarray(second)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = segmenter.preprocess(str(path))
        gc.collect()
    messages = [str(warning.message) for warning in caught]
    assert not [message for message in messages if "unclosed file" in message], messages
    assert [message for message in messages if "animation.gif holds 2 frames" in message
            and "PIL.ImageSequence.Iterator" in message]
    with PIL.Image.open(path) as animation:
        expected = segmenter.preprocess(animation.convert("RGB"))  # the first frame
    torch.testing.assert_close(inputs["pixel_values"], expected["pixel_values"], rtol=0, atol=0)
    PIL.Image.fromarray(first).save(tmp_path / "still.gif")
    with warnings.catch_warnings(record=True) as caught:  # a file of one frame: no warning
        warnings.simplefilter("always")
        results = segmenter(str(tmp_path / "still.gif"))
        gc.collect()
    assert not caught, [str(warning.message) for warning in caught]
    assert all(result["mask"].size == (56, 40) for result in results)


def test_a_datasets_column_of_images_is_a_batch(segmenter):
    """`segmenter(dataset["image"])`: since datasets 4 a column is a lazy `Column` sequence, not a list, and the
    pipeline and the processors took it for one image ('Unsupported image type Column'). Any sequence of images
    (not a string) is now a batch, as a list is; the results are those of the list."""
    import datasets

    images = [PIL.Image.fromarray(_photo()), PIL.Image.fromarray(_photo(30, 20, seed=1))]
    dataset = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())
    column = dataset["image"]
    assert not isinstance(column, (list, tuple))
    expected = segmenter(images)
    results = segmenter(column)
    assert len(results) == 2 and [[segment["mask"].size for segment in result] for result in results] == [
        [segment["mask"].size for segment in result] for result in expected]
    for name in NAMES:
        same_size = datasets.Dataset.from_dict({"image": [images[0]] * 2}).cast_column("image", datasets.Image())
        torch.testing.assert_close(_pixel_values(name, same_size["image"]), _pixel_values(name, [images[0]] * 2))
    prompts = [{"points": [(5, 5)]}], [{"points": [(3, 3)]}]
    inputs = PROCESSORS["seem"](images=column, visual_prompts=list(prompts))
    assert inputs["spatial_positive_masks"].shape[0] == 2


def test_a_pandas_column_of_images_or_paths_is_a_batch(segmenter, tmp_path):
    """`segmenter(dataframe["path"])` or `processor(images=dataframe["image"])`: a pandas column (a Series of
    objects) was taken for one image ('Unsupported image type Series'). A one-dimensional array of objects is a
    batch, as a list is; a one-dimensional array of numbers is still no image."""
    import pandas

    paths = []
    for index, image in enumerate((_photo(), _photo(30, 20, seed=1))):
        paths.append(str(tmp_path / f"{index}.png"))
        PIL.Image.fromarray(image).save(paths[-1])
    frame = pandas.DataFrame({"path": paths, "image": [PIL.Image.open(path) for path in paths]})
    expected = [[segment["mask"].size for segment in result] for result in segmenter(paths)]
    for column in (frame["path"], frame["image"], frame["path"].to_numpy()):
        assert [[segment["mask"].size for segment in result] for result in segmenter(column)] == expected
    torch.testing.assert_close(_pixel_values("lseg", frame["path"][:1]), _pixel_values("lseg", paths[0]))
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        _pixel_values("lseg", np.zeros(5))


def test_processors_read_paths_as_transformers_processors_do(tmp_path):
    """transformers' image processors read a path or URL given as an image (`DetrImageProcessorPil()(images=
    "photo.jpg")` works); seem_hf's refused it ('Unsupported image type str'), so code written for transformers'
    DETR or DPT failed on ours. Paths (`str`, `pathlib.Path`, alone or in a list) now read as the pipelines read them:
    the same pixels as the opened file, EXIF-upright, and SEEM's visual prompts placed on that image; a missing
    file is named."""
    path = tmp_path / "turned.jpg"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored 56x40 (w x h), upright 40x56
    PIL.Image.fromarray(_photo()).save(path, exif=exif, quality=95)
    with PIL.Image.open(path) as opened:
        opened.load()
    for name in NAMES:
        expected = _pixel_values(name, opened)
        for given in (str(path), path, [path, str(path)]):
            pixel_values = _pixel_values(name, given)
            torch.testing.assert_close(pixel_values, expected.expand(len(pixel_values), -1, -1, -1), rtol=0, atol=0)
    prompts = [{"points": [(30, 50)]}]  # inside the upright 40x56 image only
    by_path = PROCESSORS["seem"](images=str(path), visual_prompts=prompts)
    by_image = PROCESSORS["seem"](images=opened, visual_prompts=prompts)
    assert torch.equal(by_path["spatial_positive_masks"], by_image["spatial_positive_masks"])
    with pytest.raises(FileNotFoundError, match=r"No image file at '.*missing\.jpg'"):
        PROCESSORS["lseg"](images=str(tmp_path / "missing.jpg"))


def test_image_size_of_a_path_is_its_upright_size(tmp_path):
    """`image_size` gives the (height, width) to post-process at (`target_sizes=[image_size(image)]`, as the docs
    show); given the path a processor now reads, it failed with "'str' object has no attribute 'shape'". A path's
    size is read from the file's header, upright by its EXIF orientation, as the processors read its pixels."""
    from seem_hf.image_utils import image_size

    path = tmp_path / "turned.jpg"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored 56x40 (w x h), upright 40x56
    PIL.Image.fromarray(_photo()).save(path, exif=exif)
    assert image_size(str(path)) == image_size(path) == (56, 40)
    height, width = _pixel_values("lseg", path).shape[-2:]
    assert height > width  # the pixels are read upright too
    with pytest.raises(FileNotFoundError, match="No image file"):
        image_size(str(tmp_path / "missing.jpg"))
