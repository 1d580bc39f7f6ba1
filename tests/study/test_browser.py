"""A real browser: a reader accepts an invitation, answers by keyboard, leaves, resumes, submits; the admin sees it."""

from __future__ import annotations

import pytest

from study.browser import browser_missing, chromium, serve
from study.helpers import ADMIN_PASSWORD, PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _need_browser():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)


def _answer_with_keys(driver, call_key: str, confidence_key: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(call_key, confidence_key)
    body.send_keys(Keys.ENTER)


def _wait_url(driver, fragment: str) -> None:  # noqa: ANN001
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: fragment in d.current_url)


def test_reader_answers_leaves_resumes_submits_and_admin_sees_it(tmp_path, image_folders):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    created, settings = make_study(tmp_path, image_folders, None, cases=6, readers=["alice"])
    with serve(settings.study_dir, log_path=tmp_path / "serve.log") as url:
        # Accept the invitation and answer three cases with the keyboard.
        with chromium() as driver:
            driver.get(f"{url}/invite/{created.invitations['alice']}")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.NAME, "confirm").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit].btn-primary").click()
            _wait_url(driver, "/reader/case/1")
            image = driver.find_element(By.ID, "case-image")
            WebDriverWait(driver, 20).until(
                lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
            )
            driver.find_element(By.NAME, "findings").send_keys("left lower lobe <b>effusion</b>")
            _answer_with_keys(driver, "f", "4")
            _wait_url(driver, "/reader/case/2")
            _answer_with_keys(driver, "r", "2")
            _wait_url(driver, "/reader/case/3")
            _answer_with_keys(driver, "u", "1")
            _wait_url(driver, "/reader/case/4")
        # The browser was closed; a new one logs in and continues at case 4.
        with chromium() as driver:
            driver.get(f"{url}/login")
            driver.find_element(By.NAME, "name").send_keys("alice")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit].btn-primary").click()
            _wait_url(driver, "/reader/case/4")
            assert "3 answered" in driver.page_source
            for position in (4, 5, 6):
                _answer_with_keys(driver, "f" if position % 2 else "r", "5")
                # Wait for the next page itself (the current URL already contains "/reader/case/").
                _wait_url(driver, f"/reader/case/{position + 1}" if position < 6 else "/reader/review")
            _wait_url(driver, "/reader/review")
            driver.find_element(By.ID, "submit-study").click()
            driver.switch_to.alert.accept()
            WebDriverWait(driver, 20).until(lambda d: "you have submitted" in d.page_source)
        # The organiser closes the study and reads the result.
        with chromium() as driver:
            driver.get(f"{url}/admin/login")
            driver.find_element(By.NAME, "name").send_keys("admin")
            driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit].btn-primary").click()
            _wait_url(driver, "/admin")
            row = driver.find_element(By.ID, "progress-table").text
            assert "alice" in row and "6 / 6" in row and "yes" in row
            driver.find_element(By.ID, "close-study").click()
            driver.switch_to.alert.accept()
            _wait_url(driver, "/admin/results")
            metrics = driver.find_element(By.ID, "metrics-table").text
            assert "alice" in metrics and "Pooled" in metrics
            findings = driver.find_element(By.ID, "findings-table").text
            assert "left lower lobe <b>effusion</b>" in findings  # shown as text, not markup
