"""The demo page: its segmentation functions on the tiny checkpoints; the page's events as gradio wires them (a new
image starts afresh); the served page through gradio's client (a refused request keeps the last result, warns, and
logs one line); then the page itself in headless Chromium (Debian's chromium and chromedriver, driven by selenium):
give a sentence, then a click, and a mask image comes back; a new image clears the prompts; a request with nothing
to segment keeps the last result."""

from __future__ import annotations

import base64
import io
import logging
import shutil
import time

import numpy as np
import PIL.Image
import pytest

from seem_hf.app import NO_PROMPTS, Segmenters, build_app, example_image, scribble_of
from seem_hf.testing import FIXTURES
from tests.helpers import free_port


@pytest.fixture(scope="module")
def segmenters():
    return Segmenters(FIXTURES / "tiny-random-seem", FIXTURES / "tiny-random-lseg")


def test_segment_functions(segmenters):
    image = example_image()
    overlay, summary = segmenters.segment_seem(image, "the circle on the left")
    assert overlay.size == image.size and "sentence 'the circle on the left'" in summary
    scribble = np.zeros((image.height, image.width), dtype=bool)
    scribble[100:104, 60:120] = True
    overlay, summary = segmenters.segment_seem(
        image, "", [("positive click", 128.0, 128.0), ("negative click", 20.0, 20.0), ("box corner", 10.0, 10.0),
                    ("box corner", 90.0, 80.0)], scribble)
    assert "visual prompt (box, mask, negative_points, points)" in summary
    assert np.asarray(overlay)[128, 128].tolist() == [0, 220, 0]  # the positive click is drawn
    overlay, summary = segmenters.segment_lseg(image, "sky, grass, circle")
    assert overlay.size == image.size and "pixels" in summary
    with pytest.raises(ValueError, match="Give a sentence"):
        segmenters.segment_seem(image, "  ")
    with pytest.raises(ValueError, match="Give at least one label"):
        segmenters.segment_lseg(image, " , ")


def test_a_sentence_without_a_match_says_so(segmenters, monkeypatch):
    """Referring post-processing returns no match when even the best query's mask is empty: the page shows the
    image and says so, instead of failing."""
    processor = segmenters.seem_processor
    original = processor.post_process_referring_segmentation

    def no_match(outputs, target_sizes=None, **keywords):
        return [[{key: value[:0] if key in ("masks", "scores") else value for key, value in answer.items()}
                 for answer in image]
                for image in original(outputs, target_sizes=target_sizes, **keywords)]

    monkeypatch.setattr(processor, "post_process_referring_segmentation", no_match)
    image = example_image()
    overlay, summary = segmenters.segment_seem(image, "the purple elephant")
    assert summary == "sentence 'the purple elephant': no match (even the best candidate's mask is empty)"
    assert np.array_equal(np.asarray(overlay), np.asarray(image))  # nothing drawn over the image


def _event(app, elem_id: str, event: str):
    """The function gradio runs when the component `elem_id` fires `event`, with its input and output components."""
    component = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == elem_id)
    functions = [function for function in app.fns.values() if (component._id, event) in function.targets]
    assert len(functions) == 1, f"#{elem_id} {event} runs {len(functions)} functions"
    return functions[0]


def _outputs(function, values) -> dict:
    """A function's returned values by output component (its elem_id, or its class name for a gr.State)."""
    return {getattr(block, "elem_id", None) or type(block).__name__: value
            for block, value in zip(function.outputs, values, strict=True)}


def test_a_new_image_clears_the_prompts_the_scribbles_and_the_result(segmenters):
    """Uploading (or clearing) the SEEM image resets what belonged to the previous one: the clicks (which would
    otherwise be applied to the new image), the scribble pad (which showed the old image) and the result."""
    app = build_app(segmenters, example_image())
    upload = _event(app, "seem-image", "change")
    new_image = PIL.Image.new("RGB", (120, 90), (30, 60, 90))
    reset = _outputs(upload, upload.fn(new_image))
    assert reset["State"] == [] and reset["seem-summary"] == NO_PROMPTS and reset["seem-result"] is None
    assert reset["seem-pad"] is new_image  # the pad now shows the new image, without the old strokes
    cleared = _outputs(upload, upload.fn(None))
    assert cleared["State"] == [] and cleared["seem-pad"] is None
    # "Clear prompts" empties the prompts and the pad too, and keeps the image
    clear = next(function for function in app.fns.values() if function.name == "<lambda>"
                 and [getattr(block, "elem_id", None) for block in function.inputs] == ["seem-image"]
                 and "seem-result" not in [getattr(block, "elem_id", None) for block in function.outputs])
    kept = _outputs(clear, clear.fn(new_image))
    assert kept["State"] == [] and kept["seem-pad"] is new_image
    # the LSeg tab's result goes with its image too
    lseg = _event(app, "lseg-image", "change")
    assert _outputs(lseg, lseg.fn(new_image)) == {"lseg-result": None, "lseg-summary": ""}


def test_scribbles_of_every_layer_at_the_image_size():
    image = PIL.Image.new("RGB", (64, 48))
    first, second = (PIL.Image.new("RGBA", (32, 24)) for _ in range(2))
    first.putpixel((2, 3), (255, 0, 0, 255))
    second.putpixel((20, 10), (0, 0, 255, 255))
    scribble = scribble_of({"background": image, "layers": [first, second]}, image)
    assert scribble.shape == (48, 64) and scribble[6, 4] and scribble[20, 40] and scribble.sum() == 8
    assert scribble_of({"layers": [PIL.Image.new("RGBA", (32, 24))]}, image) is None  # nothing drawn
    assert scribble_of(None, image) is None


def test_a_refused_request_keeps_the_result_warns_and_logs_one_line(segmenters, caplog):
    """The Segment buttons' functions as gradio wires them: a request with nothing to segment changes no output
    (gradio keeps the last good result rather than showing "Error" badges), warns the user with the reason and logs
    one line without a traceback."""
    app = build_app(segmenters, example_image())
    seem = _event(app, "seem-run", "click")
    image = example_image()
    good = _outputs(seem, seem.fn(image, "the circle on the left", [], None))
    assert good["seem-result"].size == image.size
    caplog.set_level(logging.INFO, logger="seem_hf.app")
    with pytest.warns(UserWarning, match="Give a sentence.*the result shown is the previous one"):
        refused = _outputs(seem, seem.fn(image, "  ", [], None))
    assert all(isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1
               for value in refused.values()), refused  # gr.skip(): the page keeps what it shows
    records = [record for record in caplog.records if record.name == "seem_hf.app"]
    assert [record.getMessage() for record in records] == [
        "run_seem refused: Give a sentence, click on the image, mark a box or draw a scribble."]
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()
    lseg = _event(app, "lseg-run", "click")
    with pytest.warns(UserWarning, match="Give at least one label"):
        refused = lseg.fn(image, " , ")
    assert all(value.get("__type__") == "update" for value in refused)


def test_served_page_refuses_without_a_traceback(segmenters, tmp_path, capfd, caplog):
    """The page served by gradio and called through its client, as `python -m seem_hf.app` serves it: a refused
    request gets "no change" for both outputs, the server logs one line and prints no traceback (gradio prints one
    for any exception a request raises, gr.Error included)."""
    from gradio_client import Client, handle_file

    app = build_app(segmenters, example_image())
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    caplog.set_level(logging.INFO, logger="seem_hf.app")
    try:
        client = Client(app.local_url, verbose=False)
        example_image().save(tmp_path / "image.png")
        picture = handle_file(str(tmp_path / "image.png"))
        assert "pixels" in client.predict(picture, "sky, circle", api_name="/run_lseg")[1]
        capfd.readouterr()
        unchanged = ({"__type__": "update"}, {"__type__": "update"})
        assert client.predict(None, "sky", api_name="/run_lseg") == unchanged
        assert client.predict(picture, " , ", api_name="/run_lseg") == unchanged
        printed = capfd.readouterr()
    finally:
        app.close()
    assert "Traceback" not in printed.err + printed.out, printed.err[-3000:]
    assert [(record.levelname, record.getMessage(), record.exc_info) for record in caplog.records
            if record.name == "seem_hf.app"] == [
        ("WARNING", "run_lseg refused: Give an image.", None),
        ("WARNING", "run_lseg refused: Give at least one label: a comma-separated list such as 'sky, grass, circle'.",
         None)]


def _result_image(driver, element_id, previous=None, timeout=60):
    """The PIL image shown in the output component, once it shows one different from `previous`."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        images = driver.find_elements(By.CSS_SELECTOR, f"#{element_id} img")
        source = images[0].get_attribute("src") if images else None
        if source and source != previous:
            if source.startswith("data:"):
                data = base64.b64decode(source.split(",", 1)[1])
            else:
                import urllib.request

                data = urllib.request.urlopen(source, timeout=10).read()
            return source, PIL.Image.open(io.BytesIO(data))
        time.sleep(0.5)
    raise AssertionError(f"no image appeared in #{element_id}; page says: {driver.find_element(By.TAG_NAME, 'body').text[-2000:]}")


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_page_in_headless_chromium(segmenters, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    port = free_port()
    app = build_app(segmenters, example_image())
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        sentence = None
        for _ in range(60):
            boxes = driver.find_elements(By.CSS_SELECTOR, "#seem-sentence textarea, #seem-sentence input")
            if boxes:
                sentence = boxes[0]
                break
            time.sleep(0.5)
        assert sentence is not None, "the page did not load"
        sentence.send_keys("the circle on the left")
        driver.find_element(By.ID, "seem-run").click()
        source, picture = _result_image(driver, "seem-result")
        assert picture.size == (256, 256)

        # a click on the image adds a prompt; Segment again gives another picture (of the click alone: an input event,
        # unlike selenium's clear(), empties gradio's copy of the sentence)
        driver.execute_script("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
                              sentence)
        picture_element = driver.find_element(By.CSS_SELECTOR, "#seem-image img")
        ActionChains(driver).move_to_element(picture_element).click().perform()
        deadline = time.time() + 30
        while "1 prompt(s)" not in driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute(
                "value") and time.time() < deadline:
            time.sleep(0.5)
        assert "positive click" in driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute("value")
        driver.find_element(By.ID, "seem-run").click()
        _, clicked = _result_image(driver, "seem-result", previous=source)
        assert clicked.size == (256, 256)
        deadline = time.time() + 30
        while "visual prompt" not in driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute(
                "value") and time.time() < deadline:
            time.sleep(0.5)
        assert "visual prompt (points)" in driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute(
            "value")
        assert "sentence" not in driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute("value")
        shown = driver.find_elements(By.CSS_SELECTOR, "#seem-result img")[0].get_attribute("src")

        def summary() -> str:
            return driver.find_element(By.CSS_SELECTOR, "#seem-summary textarea").get_attribute("value")

        def wait_for(condition, what, timeout=30):
            deadline = time.time() + timeout
            while not condition():
                assert time.time() < deadline, f"{what}; page says: {driver.find_element(By.TAG_NAME, 'body').text[-1500:]}"
                time.sleep(0.5)

        # nothing to segment: a warning says why, the last result stays, no "Error" badge
        next(button for button in driver.find_elements(By.TAG_NAME, "button")
             if button.text.strip() == "Clear prompts").click()
        wait_for(lambda: summary() == NO_PROMPTS, "Clear prompts did not clear")
        driver.find_element(By.ID, "seem-run").click()
        wait_for(lambda: "Give a sentence" in driver.find_element(By.TAG_NAME, "body").text, "no warning shown")
        assert driver.find_elements(By.CSS_SELECTOR, "#seem-result img")[0].get_attribute("src") == shown
        assert "Error" not in driver.find_element(By.ID, "seem-result").text

        # a new image: the prompts and the result of the previous one are gone
        ActionChains(driver).move_to_element(picture_element).click().perform()
        wait_for(lambda: "1 prompt(s)" in summary(), "the click was not added")
        example_image(1).resize((200, 150)).save(tmp_path / "new.png")
        clear_image = driver.find_elements(By.CSS_SELECTOR, "#seem-image button[aria-label='Remove Image']")
        assert clear_image, "the image has no Remove Image button"
        clear_image[0].click()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#seem-image input[type=file]"), "no upload field")
        driver.find_element(By.CSS_SELECTOR, "#seem-image input[type=file]").send_keys(str(tmp_path / "new.png"))
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#seem-image img"), "the new image did not show")
        wait_for(lambda: summary() == NO_PROMPTS and not driver.find_elements(By.CSS_SELECTOR, "#seem-result img"),
                 "the new image kept the old prompts or result")
    finally:
        driver.quit()
        app.close()
