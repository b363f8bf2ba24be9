"""The demo page: its segmentation functions on the tiny checkpoints, then the page itself in headless Chromium
(Debian's chromium and chromedriver, driven by selenium): give a sentence, then a click, and a mask image comes
back."""

from __future__ import annotations

import base64
import io
import shutil
import socket
import time

import numpy as np
import PIL.Image
import pytest

from seem_hf.app import Segmenters, build_app, example_image
from seem_hf.testing import FIXTURES


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
    with pytest.raises(ValueError, match="non-empty"):
        segmenters.segment_lseg(image, " , ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
def test_page_in_headless_chromium(segmenters):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    port = _free_port()
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

        # a click on the image adds a prompt; Segment again gives another picture
        sentence.clear()
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
    finally:
        driver.quit()
        app.close()
