"""Open the report in headless Chromium and check the screenshot shows a rendered page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.report import build_report

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file() and shutil.which("chromium") is None,
        reason="Debian chromium is not installed (apt-get install chromium) — browser test skipped",
    ),
]


def test_screenshot_of_the_report_is_not_blank(tiny_dataset: Path, tmp_path: Path, make_eval_dir) -> None:
    report = build_report(make_eval_dir(tmp_path, tiny_dataset))
    shot = tmp_path / "report.png"
    binary = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 20  # not a blank page
    # The header band is the report's blue, and the summary shows a red (poor) and a green (good) card edge.
    assert np.all(np.abs(pixels[40, 200] - np.array([0x25, 0x4A, 0xA0])) < 60)
    reds = ((pixels[..., 0] > 170) & (pixels[..., 1] < 70) & (pixels[..., 2] < 70)).sum()
    greens = ((pixels[..., 1] > 110) & (pixels[..., 0] < 60) & (pixels[..., 2] < 90)).sum()
    assert reds > 200 and greens > 200
