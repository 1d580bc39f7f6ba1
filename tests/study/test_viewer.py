"""The reading view in a real browser: true window/level on the served pixels, presets, radiology drag direction,
1:1 and nearest-neighbour magnification, settings kept across cases, and a layout for 1280x720 and a tablet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from study.browser import browser_missing, chromium, serve
from study.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SCREENSHOT_DIR = "SYNTHMED_STUDY_SCREENSHOT_DIR"  # set (e.g. to bench/results) to keep the screenshots
COORDS = [(0, 0), (5, 7), (16, 16), (31, 20)]


@pytest.fixture(autouse=True)
def _need_browser():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)


def _ready(driver) -> None:  # noqa: ANN001
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script(
            "return document.getElementById('stage').dataset.ready === '1' && window.synthmedViewer"
        )
    )


def _js(driver, script: str):  # noqa: ANN001, ANN202
    return driver.execute_script(f"return {script}")


def _click(driver, action: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'[data-action="{action}"]').click()


def _expected(value: int, window: float, level: float, invert: bool = False) -> int:
    out = min(255, max(0, round((value - (level - window / 2)) * 255 / window)))
    return 255 - out if invert else out


def _shown_matches_lut(driver, window: float, level: float, invert: bool = False) -> None:  # noqa: ANN001
    for x, y in COORDS:
        served = _js(driver, f"synthmedViewer.served({x}, {y})")[0]
        shown = _js(driver, f"synthmedViewer.pixel({x}, {y})")
        assert shown == [_expected(served, window, level, invert)] * 3, (x, y, served, shown)


def _in_view(driver, element_id: str) -> bool:  # noqa: ANN001
    return _js(
        driver,
        f"(() => {{ const r = document.getElementById('{element_id}').getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth; })()",
    )


def test_viewer_controls_and_layout(tmp_path, image_folders):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    screenshots = Path(os.environ.get(SCREENSHOT_DIR) or tmp_path)
    created, settings = make_study(tmp_path, image_folders, None, cases=6, readers=["alice"])
    with serve(settings.study_dir, log_path=tmp_path / "serve.log") as url, chromium(width=1280, height=720) as driver:
        driver.get(f"{url}/invite/{created.invitations['alice']}")
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.NAME, "confirm").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit].btn-primary").click()
        WebDriverWait(driver, 20).until(lambda d: "/reader/case/1" in d.current_url)
        _ready(driver)
        driver.set_window_size(1280, 720)
        _ready(driver)
        # Defaults: W 255 / L 127.5 shows the served pixels unchanged; nearest-neighbour magnification.
        _shown_matches_lut(driver, 255, 127.5)
        assert _js(driver, "getComputedStyle(document.getElementById('case-canvas')).imageRendering") == "pixelated"
        # Presets change the lookup table on the pixel values.
        _click(driver, "bright")
        _shown_matches_lut(driver, 128, 191.5)
        _click(driver, "dark")
        _shown_matches_lut(driver, 128, 63.5)
        _click(driver, "auto")
        low, high = _js(
            driver,
            "(() => { const c = document.getElementById('case-canvas'); let lo = 255, hi = 0; "
            "for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) { "
            "const v = synthmedViewer.served(x, y)[0]; lo = Math.min(lo, v); "
            "hi = Math.max(hi, v); } return [lo, hi]; })()",
        )
        state = _js(driver, "synthmedViewer.state")
        assert (state["window"], state["level"]) == (max(high - low, 1), (high + low) / 2)
        _click(driver, "invert")
        _shown_matches_lut(driver, state["window"], state["level"], invert=True)
        # Radiology drag: right = wider window, up = higher level.
        _click(driver, "full")
        stage = driver.find_element(By.ID, "stage")
        ActionChains(driver).key_down(Keys.SHIFT).click_and_hold(stage).move_by_offset(40, -20).release().key_up(
            Keys.SHIFT
        ).perform()
        state = _js(driver, "synthmedViewer.state")
        assert (state["window"], state["level"]) == (295, 147.5), state
        _shown_matches_lut(driver, 295, 147.5, invert=True)
        # Zoom: buttons, 1:1, fit, smooth toggle.
        fit = _js(driver, "synthmedViewer.view.scale")
        _click(driver, "zoom-in")
        assert _js(driver, "synthmedViewer.view.scale") == pytest.approx(fit * 1.25)
        _click(driver, "zoom-out")
        assert _js(driver, "synthmedViewer.view.scale") == pytest.approx(fit)
        _click(driver, "one-to-one")
        ratio = _js(driver, "window.devicePixelRatio")
        assert _js(driver, "synthmedViewer.view.scale") == pytest.approx(1 / ratio)
        assert "1:1" in driver.find_element(By.ID, "readout").text
        _click(driver, "smooth")
        assert _js(driver, "getComputedStyle(document.getElementById('case-canvas')).imageRendering") == "auto"
        # 1280x720: the answer controls and the navigation are on screen without scrolling.
        for element in ("answer-form", "next-link"):
            assert _in_view(driver, element), f"{element} is below the fold at 1280x720"
        assert _js(driver, "document.documentElement.scrollWidth <= window.innerWidth")
        screenshots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshots / "study_viewer_1280x720.png"))
        # Settings are kept on the next case.
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("f", "3", Keys.ENTER)
        WebDriverWait(driver, 20).until(lambda d: "/reader/case/2" in d.current_url)
        _ready(driver)
        state = _js(driver, "synthmedViewer.state")
        assert (state["window"], state["level"], state["invert"], state["zoom"], state["smooth"]) == (
            295,
            147.5,
            True,
            "1:1",
            True,
        )
        _shown_matches_lut(driver, 295, 147.5, invert=True)
        _click(driver, "reset")
        _shown_matches_lut(driver, 255, 127.5)
        # Tablets: portrait and landscape, no sideways scrolling, tools and answers reachable.
        for width, height in ((768, 1024), (1024, 768)):
            driver.set_window_size(width, height)
            _ready(driver)
            assert _js(driver, "document.documentElement.scrollWidth <= window.innerWidth"), (width, height)
            assert _js(
                driver,
                "document.querySelector('[data-action=\"drag-wl\"]').getBoundingClientRect().right "
                "<= window.innerWidth",
            )
            if width > height:
                assert _in_view(driver, "answer-form") and _in_view(driver, "next-link")
            driver.save_screenshot(str(screenshots / f"study_viewer_{width}x{height}.png"))
        # Touch-friendly W/L: the drag mode makes a plain drag adjust window/level.
        _click(driver, "drag-wl")
        ActionChains(driver).click_and_hold(driver.find_element(By.ID, "stage")).move_by_offset(
            -30, 10
        ).release().perform()
        state = _js(driver, "synthmedViewer.state")
        assert (state["window"], state["level"]) == (225, 117.5), state
