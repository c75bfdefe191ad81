"""Screenshots of the committed report (`plots/report.html`) as a reader sees it: headless Chromium at 1,400 px
width and 100% zoom, cut into screens of 1,600 px, written to docs/report/report-N.png.

    python docs/scripts/report_screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
WIDTH, SCREEN = 1400, 1600


def main() -> int:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("chromium is not installed", file=sys.stderr)
        return 1
    out_dir = ROOT / "docs/report"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "page.png"
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--window-size={WIDTH},16000", f"--screenshot={shot}",
                        (ROOT / "plots/report.html").as_uri()], check=True, capture_output=True, timeout=120)
        page = np.asarray(Image.open(shot).convert("RGB"))
    used = np.nonzero((page < 250).any(axis=(1, 2)))[0]
    page = page[: used.max() + 20]
    for old in out_dir.glob("report-*.png"):
        old.unlink()
    for k, top in enumerate(range(0, len(page), SCREEN)):
        Image.fromarray(page[top:top + SCREEN]).save(out_dir / f"report-{k + 1}.png", optimize=True)
    print(f"{out_dir}: {k + 1} screens of {WIDTH} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
