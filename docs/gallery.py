"""Regenerate the README gallery: docs/report.png (report.html in headless Chromium) and
docs/cli.txt (the terminal table), from the real flights data.

    .venv/bin/python docs/gallery.py data/flights

Needs Chromium from the OS packages (``apt-get install chromium``) for the screenshot.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

DOCS = Path(__file__).resolve().parent
#: A handful of columns keeps the screenshot to one screen: overview, summary, heatmap, sections.
COLUMNS = ["dep_delay", "arr_delay", "distance", "carrier"]


def cli_table(data: str) -> str:
    """``analytics profile DATA`` as printed to a pipe (plain text, 160 columns)."""
    from analytics.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["profile", data, "--engine", "threads", "--workers", "2", "--quiet"])
    if code:
        raise SystemExit(f"analytics profile failed (exit code {code})")
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    return "\n".join([f"$ analytics profile {data}", *lines]) + "\n"


def report_png(data: str, png: Path, width: int = 1200, height: int = 2600) -> None:
    """Screenshot of report.html for ``COLUMNS``, trimmed and reduced to a small palette."""
    import numpy as np
    from PIL import Image

    import analytics
    from analytics.report.html import write_profile_html

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is needed for the screenshot: apt-get install chromium")
    result = analytics.profile(data, columns=COLUMNS, engine="threads", workers=2)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_profile_html(Path(tmp) / "report.html", result.to_dict(), inputs=data)
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}",
                f"--window-size={width},{height}", page.as_uri(),
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        image = Image.open(shot).convert("RGB")
    # Trim the empty space below the page's last line.
    drawn = np.flatnonzero((np.asarray(image.convert("L")) < 240).any(axis=1))
    image = image.crop((0, 0, image.width, min(image.height, int(drawn[-1]) + 24)))
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="data/flights", help="the flights dataset")
    args = parser.parse_args(argv)
    (DOCS / "cli.txt").write_text(cli_table(args.data))
    report_png(args.data, DOCS / "report.png")
    for name in ("cli.txt", "report.png"):
        print(f"wrote {DOCS / name} ({(DOCS / name).stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
