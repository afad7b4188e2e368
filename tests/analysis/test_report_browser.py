"""The report as a reader sees it: headless Chromium renders report.html to a PNG (skipped without Chromium).

To look at it yourself: python tests/analysis/test_report_browser.py OUT.png [REPORT.html]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def browser() -> str | None:
    return next(
        (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
    )


def screenshot(page: Path, png: Path, *, width: int = 1200, height: int = 5000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(browser() is None, reason="no headless Chromium here (CI installs it: apt-get install chromium)")
def test_the_report_renders_with_its_figures(tmp_path: Path):
    import numpy as np
    import optuna
    from matplotlib.image import imread

    from odyssey.analysis.report import build_report
    from odyssey.analysis.synthetic import write_synthetic_study

    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="seen", variants=("V", "NFG", "CIFG"), trials=25)
    page = build_report(storage=storage, name="seen", out_dir=tmp_path / "out", refits=2)
    png = tmp_path / "report.png"
    screenshot(page, png)
    pixels = imread(png)[..., :3]
    assert pixels.shape[:2] == (5000, 1200)
    # Text and tables (dark), figures (colour) and the page (white): not a blank or error page.
    dark = (pixels.max(axis=2) < 0.3).mean()
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean()
    assert 0.005 < dark < 0.5 and coloured > 0.005, (dark, coloured)
    rows = np.flatnonzero(pixels.min(axis=(1, 2)) < 0.9)
    assert rows.max() - rows.min() > 2500  # content runs down the page: figures inlined, not broken images


if __name__ == "__main__":
    if browser() is None:
        raise SystemExit("no chromium on PATH")
    screenshot(Path(sys.argv[2]) if len(sys.argv) > 2 else Path("results/report.html"), Path(sys.argv[1]))
