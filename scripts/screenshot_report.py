"""Screenshot an alignbf report.html in headless Chromium and check what it shows.

Usage::

    python scripts/screenshot_report.py runs/study1-synthetic-paper/report/report.html \
        [--out report.png] [--width 1400] [--height 3000]

Checks, each failing with exit code 1 and one line:

* every ``<img>`` of the page is embedded (``data:image/png;base64,…``) and decodes to a
  PNG with a valid header and non-zero size (the report must be self-contained);
* Chromium writes the screenshot;
* the screenshot is non-trivial: the expected size, and enough non-white pixels and
  distinct colours that text, tables and figures were rendered.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and Pillow (a matplotlib
dependency). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html.parser
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_INK = 0.02
MIN_COLOURS = 64


class _Images(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ValueError if ``data`` is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG (bad signature or missing IHDR)")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise ValueError("PNG of zero size")
    return width, height


def check_images(page: str) -> list[tuple[int, int]]:
    """Decode every <img> of the page; returns their sizes."""
    parser = _Images()
    parser.feed(page)
    sizes = []
    for i, src in enumerate(parser.sources):
        prefix = "data:image/png;base64,"
        if not src.startswith(prefix):
            raise ValueError(f"<img> {i + 1} is not an embedded PNG: {src[:60]!r}")
        try:
            sizes.append(png_size(base64.b64decode(src[len(prefix) :], validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"<img> {i + 1} does not decode as PNG: {exc}") from None
    return sizes


def screenshot(page: Path, out: Path, width: int, height: int) -> None:
    """Render ``page`` with headless Chromium into ``out``."""
    profile = tempfile.mkdtemp(prefix="alignbf-chromium-")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        page.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium failed (exit {done.returncode}): {tail}")


def check_screenshot(out: Path, width: int, height: int) -> dict[str, float]:
    """Size, share of non-white pixels and number of distinct colours of the screenshot."""
    from PIL import Image

    data = out.read_bytes()
    size = png_size(data)
    if size != (width, height):
        raise ValueError(f"screenshot is {size[0]}x{size[1]}, expected {width}x{height}")
    with Image.open(out) as image:
        rgb = image.convert("RGB")
        small = rgb.resize((width // 4, height // 4)).convert("L")
        histogram = small.histogram()
        colours = len(rgb.getcolors(maxcolors=1 << 20) or [])
    ink = sum(histogram[:240]) / sum(histogram)
    if ink < MIN_INK or colours < MIN_COLOURS:
        raise ValueError(f"screenshot looks blank: {ink:.1%} non-white, {colours} colours")
    return {"bytes": len(data), "ink": ink, "colours": colours}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="report.html to render")
    parser.add_argument("--out", type=Path, help="PNG to write (default: beside the HTML)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args(argv)
    out = args.out or args.html.with_name("report-screenshot.png")
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} not found; install it: apt-get install -y chromium")
        return 1
    try:
        images = check_images(args.html.read_text(encoding="utf-8"))
        screenshot(args.html, out, args.width, args.height)
        found = check_screenshot(out, args.width, args.height)
    except (OSError, ValueError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}")
        return 1
    print(
        f"{out}: {found['bytes']:,} bytes, {found['ink']:.1%} non-white, "
        f"{found['colours']:,.0f} colours; {len(images)} embedded PNG(s) decode: "
        + ", ".join(f"{w}x{h}" for w, h in images)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
