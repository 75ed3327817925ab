"""report.html: the page for the real flights profile, its numbers, its safety, its looks.

The page is checked as text (a section per column, the numbers of profile.json, no URL at
all, a small size, every data-derived string escaped) and, where Chromium is installed, as
pixels: a headless screenshot that must not be blank.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _data import flights_dir

import analytics
from analytics.report.files import write_json
from analytics.report.html import (
    coarsen,
    input_size,
    percent,
    render_profile_html,
    tick_label,
    write_profile_html,
)

XSS_NAME = "<script>alert(1)</script>"
XSS_VALUES = ['"><img src=x onerror=alert(1)>', "<b>bold</b>", "a & b", "it's", ""]


@pytest.fixture(scope="module")
def flights_report(tmp_path_factory) -> tuple[dict, str, Path]:
    """(profile.json as read back, report.html text, its path) for the real flights data."""
    data = flights_dir(tmp_path_factory) / "flights"
    result = analytics.profile(data, engine="threads", workers=2)
    out = tmp_path_factory.mktemp("report")
    write_json(out / "profile.json", result.to_dict())
    page = write_profile_html(out / "report.html", result.to_dict(), inputs=str(data))
    document = json.loads((out / "profile.json").read_text())
    return document, page.read_text(encoding="utf-8"), page


def shown(value: float) -> str:
    """How the page shows a float: 6 significant digits, the exact value in the title."""
    return f'title="{value!r}">{value:.6g}<'


def test_one_section_per_column(flights_report):
    document, page, _ = flights_report
    sections = re.findall(
        r'<section class="column" id="col-(\d+)">\s*<h3><span class="cname">([^<]*)<', page
    )
    assert [html.unescape(name) for _, name in sections] == list(document["columns"])
    assert [int(i) for i, _ in sections] == list(range(len(document["columns"])))
    # The summary table links each section; the overview names the run.
    for index, name in enumerate(document["columns"]):
        assert f'<a href="#col-{index}">{html.escape(name)}</a>' in page
    assert "336,776" in page and "threads" in page
    assert "Correlation" in page and 'aria-label="correlation heatmap"' in page
    assert page.count('aria-label="histogram"') == sum(
        1 for c in document["columns"].values() if c.get("histogram")
    )


def test_numbers_match_profile_json(flights_report):
    document, page, _ = flights_report
    for name, stats in document["columns"].items():
        assert f'title="{stats["count"]}">{stats["count"]:,}<' in page, name
        if stats.get("mean") is None:
            continue
        for key in ("mean", "std", "var", "sum", "skew", "kurtosis"):
            assert shown(stats[key]) in page, (name, key)
        for value in stats["quantiles"].values():
            assert shown(value) in page, (name, value)
        hist = stats["histogram"]
        if len(hist["counts"]) > 1:
            first = f"[{hist['edges'][0]!r}, {hist['edges'][1]!r}): {hist['counts'][0]:,} values"
            assert first in page, name
    carrier = document["columns"]["carrier"]
    for value, count in carrier["top"]:
        assert f">{value}</span></td>" in page and f'title="{count}">{count:,}<' in page
    matrix = document["correlation"]["matrix"]
    strongest = max(
        (abs(v), v)
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
        if v is not None and i != j
    )[1]
    assert f"r = {strongest!r}" in page


def test_timings_and_data_size(flights_report, tmp_path_factory):
    document, page, _ = flights_report
    for entry in document["passes"]:
        assert f'title="{entry["seconds"]!r} s">{entry["seconds"]:.3f} s<' in page
        assert html.escape(entry["pass"]) in page
    data = flights_dir(tmp_path_factory) / "flights"
    files = sorted(data.rglob("*.parquet"))
    size = input_size(str(data))
    assert size is not None and size["files"] == len(files) > 1
    assert size["bytes"] == sum(f.stat().st_size for f in files)
    assert size["uncompressed_bytes"] > 0
    assert f'title="{size["bytes"]:,} bytes"' in page and f"{len(files)} Parquet files" in page
    assert input_size(data.parent / "does-not-exist") is None
    assert input_size(pa.table({"x": [1]})) is None


def test_self_contained_and_small(flights_report):
    _, page, path = flights_report
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert not re.search(
        r"""(?:src|href|action)\s*=\s*["']?\s*(?://|[a-z][a-z0-9+.-]*:)""", lowered
    )
    assert "<script" not in lowered and "url(" not in lowered and "@import" not in lowered
    assert not re.search(r"<(?:img|link|iframe|object|embed)\b", lowered)
    assert "default-src 'none'" in page  # CSP: nothing may load even if something slipped in
    assert path.stat().st_size < 1_000_000


def test_page_size_does_not_grow_with_bins(tmp_path):
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(size=20_000), "y": rng.exponential(size=20_000)})
    small = render_profile_html(analytics.profile(table, engine="serial", bins=20).to_dict())
    large = render_profile_html(analytics.profile(table, engine="serial", bins=5000).to_dict())
    assert len(large) < 2 * len(small)


def test_everything_from_the_data_is_escaped():
    n = 500
    values = [XSS_VALUES[i % len(XSS_VALUES)] for i in range(n)]
    table = pa.table(
        {
            XSS_NAME: np.arange(n, dtype=np.float64),
            "other": np.arange(n, dtype=np.float64) ** 2,
            'label "quoted" & <tag>': values,
        }
    )
    document = analytics.profile(table, engine="serial").to_dict()
    page = render_profile_html(document, title="<i>title</i>")
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<i>title" not in page
    assert "<b>bold" not in page and "onerror=alert(1)>" not in page
    assert html.escape(XSS_NAME) in page  # shown, as text
    assert html.escape('label "quoted" & <tag>') in page
    assert html.escape(XSS_VALUES[0]) in page
    assert "(empty string)" in page


def test_columns_without_values_and_approximate_quantiles():
    empty = pa.table(
        {"x": pa.array([None] * 5, pa.float64()), "s": pa.array([None] * 5, pa.string())}
    )
    page = render_profile_html(analytics.profile(empty, engine="serial").to_dict())
    assert "No finite values" in page and ">NaN<" not in page
    rng = np.random.default_rng(5)
    table = pa.table({"x": rng.normal(size=3000), "y": rng.normal(size=3000)})
    page = render_profile_html(
        analytics.profile(table, engine="serial", quantiles="approx").to_dict()
    )
    assert "approximate, KLL sketch, rank error" in page
    nothing = render_profile_html(
        analytics.profile(pa.table({"x": pa.array([], pa.int64())}), engine="serial").to_dict()
    )
    assert "0 rows" in nothing


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (0, 10, "0%"),
        (10, 10, "100%"),
        (1, 3, "33.3%"),
        (1, 400, "0.25%"),
        (1, 10**8, "<0.001%"),
        (9999, 10000, ">99.9%"),
    ],
)
def test_percent(part, whole, text):
    assert percent(part, whole) == text


def test_tick_labels_tell_ticks_apart():
    assert [tick_label(v, 0.5) for v in (-1.0, -0.5, 0.0, 0.5)] == ["-1.0", "-0.5", "0", "0.5"]
    assert tick_label(4e7, 2e7) == "40M"
    assert tick_label(1e12 + 0.002, 0.002) == "1000000000000.002"


def test_coarsen_keeps_counts_exact():
    edges = list(np.linspace(0.0, 1.0, 1001))
    counts = list(range(1000))
    merged_edges, merged = coarsen({"edges": edges, "counts": counts}, 100)
    assert len(merged) == 100 and sum(merged) == sum(counts)
    assert merged_edges[0] == 0.0 and merged_edges[-1] == 1.0 and len(merged_edges) == 101


# ----------------------------------------------------------------------- headless browser


def chromium() -> str | None:
    """The Chromium binary from the OS packages, if installed."""
    for name in ("chromium", "chromium-browser"):
        for candidate in (f"/usr/bin/{name}", shutil.which(name)):
            if candidate and Path(candidate).exists():
                return candidate
    return None


def screenshot(
    page: Path, png: Path, profile_dir: Path, width: int = 1200, height: int = 2000
) -> None:
    """Render ``page`` with headless Chromium (no network, no sandbox, a throwaway profile)."""
    browser = chromium()
    assert browser is not None
    profile_dir.mkdir(parents=True, exist_ok=True)
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
        f"--user-data-dir={profile_dir}", f"--screenshot={png}", f"--window-size={width},{height}",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=profile_dir)
    assert png.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"


@pytest.mark.skipif(
    chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_headless_screenshot_is_not_blank(flights_report, tmp_path):
    import matplotlib.image

    _, _, page = flights_report
    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    pixels = matplotlib.image.imread(str(png))[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05
    # Ink (not background white) on a good share of the page: tables, bars and a heatmap.
    ink = (pixels.mean(axis=2) < 0.85).mean()
    assert ink > 0.03, f"only {ink:.1%} of the pixels are drawn"
    # The histogram bars' blue is there.
    blue = (pixels[..., 2] > 0.6) & (pixels[..., 0] < 0.45)
    assert blue.mean() > 0.002
