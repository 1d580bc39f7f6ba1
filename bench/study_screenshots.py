"""Screenshots of every page of the reader-study app (headless chromium), for a visual check.

    .venv/bin/python bench/study_screenshots.py --out bench/out/study_screenshots

Uses chest X-rays from ../shared/data/cxr_kermany_224 when present (the "synthetic" side is a stand-in
from the other split), else generated test patterns. Writes one PNG per page into --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from study.browser import chromium, serve  # noqa: E402
from study.helpers import make_image_folders  # noqa: E402
from synthmed.study.blinding import StudySpec, build_study  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr_kermany_224"
PASSWORD = "screenshot-password"
ADMIN_PASSWORD = "screenshot-admin-1"


def _sources(root: Path) -> tuple[Path, Path, str]:
    if SHARED.is_dir():
        return SHARED / "test", SHARED / "train", "chest x-ray"
    real, synthetic = make_image_folders(root, per_class=8)
    return real, synthetic, "test pattern"


def _login(driver, url: str, path: str, name: str, password: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    driver.get(url + path)
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button.btn-primary").click()


def _answer(driver, keys: str, findings: str = "") -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if findings:
        driver.find_element(By.NAME, "findings").send_keys(findings)
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(*keys)
    body.send_keys(Keys.ENTER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/study_screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="synthmed-shots-") as tmp:
        real, synthetic, modality = _sources(Path(tmp) / "src")
        created = build_study(
            StudySpec(
                name="Spot the fake: paediatric chest X-ray",
                cases=8,
                readers=["dr_lee"],
                seed=4,
                conditions=["effusion", "pneumonia", "cardiomegaly"],
                modality=modality,
            ),
            real_dir=real,
            synthetic_dir=synthetic,
            study_dir=Path(tmp) / "study",
            admin_password=ADMIN_PASSWORD,
        )
        teaching = build_study(
            StudySpec(name="Teaching set", cases=4, readers=["student"], seed=1, educational=True, modality=modality),
            real_dir=real,
            synthetic_dir=synthetic,
            study_dir=Path(tmp) / "teaching",
        )
        shot = lambda d, name: d.save_screenshot(str(args.out / f"{name}.png"))  # noqa: E731
        with serve(created.study_dir) as url, chromium() as driver:
            driver.get(f"{url}/invite/{created.invitations['dr_lee']}")
            shot(driver, "01_invitation")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.NAME, "confirm").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button.btn-primary").click()
            shot(driver, "02_case_new")
            _answer(driver, "f4", "Right lower lobe opacity, possible pneumonia.")
            _answer(driver, "r3")
            driver.get(f"{url}/reader/case/1")
            shot(driver, "03_case_answered")
            driver.find_element(By.CSS_SELECTOR, "[data-action=zoom-in]").click()
            driver.find_element(By.CSS_SELECTOR, "[data-action=zoom-in]").click()
            driver.execute_script(
                "document.getElementById('level').value=130;"
                "document.getElementById('window').value=160;"
                "document.getElementById('level').dispatchEvent(new Event('input'))"
            )
            shot(driver, "04_case_zoom_window_level")
            driver.get(f"{url}/reader/review")
            shot(driver, "05_review_partial")
            for position in range(3, 9):
                driver.get(f"{url}/reader/case/{position}")
                _answer(driver, "u2" if position % 3 == 0 else "r4" if position % 2 else "f5")
            driver.get(f"{url}/reader/review")
            shot(driver, "06_review_complete")
            driver.find_element(By.ID, "submit-study").click()
            driver.switch_to.alert.accept()
            shot(driver, "07_review_submitted")
            driver.get(f"{url}/reader/case/1")
            shot(driver, "08_case_locked")
            driver.get(f"{url}/reader/case/999")
            shot(driver, "09_error_404")
            driver.delete_all_cookies()
            driver.get(f"{url}/login")
            shot(driver, "10_login")
            _login(driver, url, "/login", "dr_lee", "wrong-password")
            shot(driver, "11_login_failed")
            driver.get(f"{url}/admin/login")
            shot(driver, "12_admin_login")
            _login(driver, url, "/admin/login", "admin", ADMIN_PASSWORD)
            driver.find_element(By.NAME, "name").send_keys("dr_patel")
            driver.find_element(By.CSS_SELECTOR, "form[action='/admin/readers'] button").click()
            shot(driver, "13_admin_dashboard")
            driver.find_element(By.ID, "close-study").click()
            driver.switch_to.alert.accept()
            driver.set_window_size(1440, 2400)
            shot(driver, "14_admin_results")
            driver.set_window_size(1440, 900)
        with serve(teaching.study_dir) as url, chromium() as driver:
            driver.get(f"{url}/invite/{teaching.invitations['student']}")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.NAME, "confirm").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button.btn-primary").click()
            _answer(driver, "f3")
            shot(driver, "15_educational_reveal")
    print(f"screenshots in {args.out}: {sorted(p.name for p in args.out.glob('*.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
