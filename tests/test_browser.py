"""The page of `facearith serve` in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver (`make test` installs both where it can; CI must have them)."""

import os
import shutil
from pathlib import Path

import pytest

from .test_serve import _get, _post, _start

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and os.environ.get("CI"):
    raise RuntimeError("CI needs Debian's chromium and chromium-driver for the browser tests (make browser)")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no chromium and chromedriver: `make browser`")
# `make screenshot` keeps the picture of the page the README shows
SCREENSHOT = os.environ.get("FACEARITH_SCREENSHOT")


@pytest.fixture(scope="module")
def root(request) -> Path:
    """The tiny trained pipeline, or the one FACEARITH_PAGE_ROOT names (`make screenshot`: this checkout's)."""
    chosen = os.environ.get("FACEARITH_PAGE_ROOT")
    return Path(chosen).resolve() if chosen else request.getfixturevalue("trained_pipeline")


@pytest.fixture(scope="module")
def page(root):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    proc, url = _start(root)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.get(url + "/")
    wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
    yield driver, url
    driver.quit()
    proc.terminate()
    proc.wait(timeout=30)


def wait_for(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _first_result(driver) -> tuple[str, str]:
    first = wait_for(driver, lambda d: d.find_elements("css selector", "#results li"))[0]
    return first.get_attribute("data-person"), first.get_attribute("data-expression")


def test_the_page_loads_the_gallery_and_a_click_composes(page):
    driver, url = page
    status, gallery = _get(f"{url}/api/gallery")
    cells = driver.find_elements("css selector", "#gallery td button")
    assert status == 200 and len(cells) == len(gallery["cells"]) == len(gallery["persons"]) * 7
    cell = driver.find_element("css selector", 'button[data-person="BG"][data-expression="SU"]')
    cell.click()
    wait_for(driver, lambda d: d.find_element("id", "asked").text == "BG + SU")
    status, answer = _get(f"{url}/api/compose?person=BG&expression=SU&k=5")
    want = answer["results"][0]
    assert status == 200 and _first_result(driver) == (want["person"], want["expression"])
    items = driver.find_elements("css selector", "#results li")
    assert len(items) == 5 and all(li.get_attribute("class") in ("hit", "miss") for li in items)
    marked = [li.get_attribute("class") == "hit" for li in items]
    assert marked == [r["person"] == "BG" and r["expression"] == "SU" for r in answer["results"]]


def test_an_uploaded_image_gets_a_transfer(page, root):
    from selenium.webdriver.support.ui import Select

    driver, url = page
    image = next((root / "data/raw").glob("BC.AN2.*.tiff"))
    driver.find_element("id", "upload").send_keys(str(image))
    Select(driver.find_element("id", "target")).select_by_visible_text("HA")
    driver.find_element("id", "transfer").click()
    wait_for(driver, lambda d: d.find_element("id", "asked").text.endswith("+HA"))
    status, answer = _post(f"{url}/api/transfer", {"plus": "HA", "k": "5"}, (image.name, image.read_bytes()))
    want = answer["results"][0]
    assert status == 200 and _first_result(driver) == (want["person"], want["expression"])
    assert driver.find_element("id", "message").text == ""
    if SCREENSHOT:  # a composition's first result, then that face with another expression
        driver.find_element("css selector", 'button[data-person="BJ"][data-expression="NE"]').click()
        wait_for(driver, lambda d: d.find_element("id", "asked").text == "BJ + NE")
        driver.find_element("css selector", "#results li").click()
        Select(driver.find_element("id", "target")).select_by_visible_text("HA")
        driver.find_element("id", "transfer").click()
        wait_for(driver, lambda d: d.find_element("id", "asked").text.endswith("+HA"))
        wait_for(driver, lambda d: d.execute_script("return [...document.images].every((i) => i.complete)"))
        driver.save_screenshot(SCREENSHOT)


def test_a_bad_upload_shows_the_message(page, tmp_path: Path):
    driver, _ = page
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    driver.find_element("id", "upload").send_keys(str(bad))
    driver.find_element("id", "transfer").click()
    message = wait_for(driver, lambda d: d.find_element("id", "message").text)
    assert "notes.txt is not an image" in message
