"""Helpers shared by the `dvc repro` tests (default pipeline and real-dataset pipelines)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def merge(base: dict, extra: dict) -> dict:
    """`extra`'s nested keys written over `base` (a params.yaml tree), in place."""
    for key, value in extra.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


CHROMIUM = "/usr/bin/chromium-headless-shell"


def offline_plots_template(path: Path) -> Path:
    """A `dvc plots show --html-template` page that carries Vega, Vega-Lite and Vega-Embed
    inline (vl-convert's bundle): DVC's default page loads them from a CDN, blank offline."""
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>{refresh_tag}<title>DVC plots</title>"
        f"<script>{bundle}</script></head>\n<body>\n{{plot_divs}}\n</body></html>\n"
    )
    path.write_text(page)
    return path


def screenshot(page: Path, png: Path, size: str = "1400,1800") -> Path:
    """`page` rendered by headless Chromium into `png` (JS given time to draw)."""
    subprocess.run(
        [CHROMIUM, "--no-sandbox", "--headless", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", f"--window-size={size}", "--virtual-time-budget=10000",
         page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return png


def ink_fraction(png: Path) -> float:
    """Share of pixels that are not white: a page whose scripts failed stays blank (0)."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L"))
    return float((grey < 245).mean())
