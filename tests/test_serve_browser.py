"""The page of ``ser serve`` in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): upload a RAVDESS file, the label, the heatmap, hover, click to play,
switching the class, and a bad upload's message."""

import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import RAVDESS
from tests.serving import start_server

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ANGRY = RAVDESS / "Actor_01" / "03-01-05-02-01-01-01.wav"

pytestmark = [
    pytest.mark.skipif(not ANGRY.is_file(), reason="needs the RAVDESS corpus in ../shared/corpora"),
    pytest.mark.skipif(
        CHROMIUM is None or not Path(CHROMEDRIVER).is_file(),
        reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]

#: Counts the heatmap canvas's pixels that differ from its white background.
DRAWN_PIXELS = """
const c = document.getElementById('heatmap');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
return n;
"""

#: A hash of the heatmap's pixels, to see it change.
PIXEL_HASH = """
const c = document.getElementById('heatmap');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let h = 0;
for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;
return h;
"""


@pytest.fixture(scope="module")
def server():
    proc, url = start_server()
    yield url
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,768",
    ):
        options.add_argument(arg)
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    # a fake microphone (a beeping tone), granted without asking
    options.add_argument("--use-fake-ui-for-media-stream")
    options.add_argument("--use-fake-device-for-media-stream")
    options.binary_location = CHROMIUM
    # an explicit driver: Selenium Manager never tries to download one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(1366, 768)
    yield driver
    driver.quit()


def _upload(driver, path):
    driver.find_element("id", "file").send_keys(str(path))


def test_the_page_classifies_draws_hovers_plays_and_reports_errors(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(server)
    wait.until(lambda d: "model:" in d.find_element("id", "model").text)
    _upload(browser, ANGRY)
    wait.until(lambda d: d.find_element("id", "label").text and d.find_element("id", "view").is_displayed())
    label = browser.find_element("id", "label").text
    assert label.split()[0] in {"angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert len(browser.find_elements("css selector", "#probs li")) == 8
    drawn = browser.execute_script(DRAWN_PIXELS)
    assert drawn > 50_000  # the plot area is about 900 x 290 pixels

    # hover a cell in the middle of the plot: time, band, value
    overlay = browser.find_element("id", "overlay")
    ActionChains(browser).move_to_element_with_offset(overlay, 40, 0).perform()
    readout = browser.find_element("id", "readout").text
    assert " s · " in readout and " Hz · t·h (" in readout and "=" in readout, readout
    shown_time = float(readout.split(" s · ")[0])

    # a click plays from that time
    ActionChains(browser).move_to_element_with_offset(overlay, 40, 0).click().perform()
    now = browser.execute_script("return document.getElementById('audio').currentTime")
    assert abs(now - shown_time) < 0.3, (now, shown_time)
    browser.execute_script("document.getElementById('audio').pause()")

    # another class draws another map
    before = browser.execute_script(PIXEL_HASH)
    classes = Select(browser.find_element("id", "class"))
    other = next(o.get_attribute("value") for o in classes.options if not o.is_selected())
    classes.select_by_value(other)
    assert browser.execute_script(PIXEL_HASH) != before

    browser.save_screenshot(str(tmp_path / "page.png"))

    # a text file: the server's message on the page
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n")
    _upload(browser, text)
    wait.until(lambda d: d.find_element("id", "error").is_displayed())
    message = browser.find_element("id", "error").text
    assert message.startswith("notes.txt: not a readable audio file"), message


def test_a_long_file_has_a_timeline_and_a_recording_is_classified(server, browser, tmp_path):
    import time

    import numpy as np
    import soundfile as sf
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    parts = [sf.read(str(p)) for p in sorted(ANGRY.parent.glob("*.wav"))[:5]]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([y for y, _ in parts]), parts[0][1])
    browser.get(server)
    wait.until(lambda d: "model:" in d.find_element("id", "model").text)
    _upload(browser, long)
    wait.until(lambda d: d.find_element("id", "view").is_displayed())
    windows = browser.find_elements("css selector", "#timeline button")
    note = browser.find_element("id", "file-note").text
    assert len(windows) >= 8, note
    assert windows[0].get_attribute("aria-selected") == "true"
    shown = browser.find_element("id", "range").text
    windows[3].click()
    wait.until(lambda d: d.find_element("id", "range").text != shown)
    assert windows[3].get_attribute("aria-selected") == "true"
    start = float(browser.find_element("id", "range").text.split("-")[0])
    assert 6.0 <= start < 10.0  # the fourth window, 6-10 s, less its leading silence

    # the microphone: recorded by MediaRecorder, turned into WAV in the page, classified
    browser.find_element("id", "record").click()
    time.sleep(1.5)
    browser.find_element("id", "record").click()
    wait.until(lambda d: d.find_element("id", "file-note").text.startswith("recording.wav"))
    assert browser.find_element("id", "label").text
