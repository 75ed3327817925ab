"""A self-contained HTML page for a profile: overview, one section per column, correlations.

The page makes no network request: CSS is inline, every chart is hand-written inline SVG (a
few hundred bytes per histogram, crisp at any zoom), there is no script, and a
Content-Security-Policy forbids loading anything. Its size does not grow with the rows: the
profile document is already a fixed-size summary (20 bins, 10 top values, one k x k matrix),
so 336k rows and 1e8 rows give pages of the same size (~20 kB per column).

Every piece of data-derived text (column names, string values, type names) goes through
:func:`html.escape`. Numbers show 6 significant digits; the exact value (Python's shortest
round-trip ``repr``, the same digits as profile.json) is in the element's ``title``.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analytics.report.files import atomic_write

#: Quantiles shown in the per-column table, with their labels.
QUANTILE_LABELS = (
    ("0.0", "min"),
    ("0.05", "5%"),
    ("0.25", "25%"),
    ("0.5", "median"),
    ("0.75", "75%"),
    ("0.95", "95%"),
    ("1.0", "max"),
)
#: Above this many numeric columns the heatmap shows the first ones only (k^2 cells).
HEATMAP_MAX_COLUMNS = 40
#: At most this many bars per histogram; more bins are summed in runs for display.
MAX_BARS = 100
#: Longer string values are cut in the page (the whole value stays in the title).
MAX_VALUE_CHARS = 48
#: ... and in the title at most this many.
MAX_TITLE_CHARS = 500


# ----------------------------------------------------------------------------- formatting


def esc(text: Any) -> str:
    """``text`` as HTML-escaped text, quotes included (safe in text and attributes)."""
    return html.escape(str(text), quote=True)


def _finite(value: Any) -> bool:
    """True for a real, finite number (not a bool, not None, NaN or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def exact(value: Any) -> str:
    """The exact text of a number: the shortest string that reads back as the same float."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def short(value: Any) -> str:
    """A number in at most 6 significant digits (integers in full, with thousands commas)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+inf" if value > 0 else "\u2212inf"
        return f"{value:.6g}"
    return str(value)


def num(value: Any, *, missing: str = "\u2013") -> str:
    """``<span>`` with the short form of ``value`` and its exact value in ``title``; None and
    NaN (a statistic of no values: null in profile.json) show as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f'<span class="na" title="not defined">{missing}</span>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<span class="n" title="{esc(exact(value))}">{esc(short(value))}</span>'
    return value_text(value)


def value_text(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A data value (string, date, number) escaped, cut to ``limit`` characters (full in title)."""
    if value is None:
        return '<span class="na" title="not defined">\u2013</span>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<span class="n" title="{value}">{value}</span>'
    if isinstance(value, float):
        return num(value)
    text = str(value)
    if text == "":
        return '<span class="na">(empty string)</span>'
    shown = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    if len(text) > MAX_TITLE_CHARS:  # a megabyte-long value must not make a megabyte page
        text = f"{text[:MAX_TITLE_CHARS]}\u2026 ({len(text):,} characters)"
    return f'<span class="v" title="{esc(text)}">{esc(shown)}</span>'


def compact(value: float) -> str:
    """An axis label: 12, 3.4k, 1.2M, 5G (counts at 1e8 rows stay short)."""
    magnitude = abs(value)
    if magnitude >= 1e18:
        return f"{value:.3g}"
    for limit, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.4g}"


def human_bytes(size: int) -> str:
    """``size`` in binary units: 6.7 MiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """A duration: 0.23 s, 5.47 s, 2 min 05 s."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s"


def percent(part: float, whole: float) -> str:
    """``part/whole`` as a percentage with enough digits to show a tiny non-zero share."""
    if not whole:
        return "\u2013"
    share = 100.0 * part / whole
    if share in (0, 100):
        return f"{share:.0f}%"
    if share >= 99.95:
        return ">99.9%"
    if share >= 10:
        return f"{share:.1f}%"
    if share >= 0.1:
        return f"{share:.2f}%"
    if share >= 0.001:
        return f"{share:.2g}%"
    return "<0.001%"


# ----------------------------------------------------------------------------- charts


def tick_label(value: float, step: float) -> str:
    """An axis tick with just the digits that tell ticks ``step`` apart: 0.25, 1500, 1e+12."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        digits = math.floor(math.log10(abs(value))) - math.floor(math.log10(step)) + 1
        if digits <= 3:
            return compact(value)
        return f"{value:.{max(1, min(digits, 17))}g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _nice_step(span: float, ticks: int = 4) -> float:
    """A 1/2/5 x 10^k step giving about ``ticks`` intervals over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def coarsen(histogram: Mapping[str, Any], bars: int) -> tuple[list[float], list[int]]:
    """``(edges, counts)`` with runs of adjacent bins summed so that at most ``bars`` remain
    (``--bins 10000`` must not make a megabyte of SVG); the counts stay exact."""
    edges = [float(e) for e in histogram["edges"]]
    counts = [int(c) for c in histogram["counts"]]
    group = max(1, math.ceil(len(counts) / bars))
    if group == 1:
        return edges, counts
    merged = [sum(counts[i : i + group]) for i in range(0, len(counts), group)]
    return edges[::group] + ([edges[-1]] if (len(edges) - 1) % group else []), merged


def histogram_svg(
    histogram: Mapping[str, Any], quantiles: Mapping[str, Any] | None, mean: Any, total: int
) -> str:
    """Bars of ``histogram`` (``edges``, ``counts``) with a count axis, the value range, and a
    box strip below: quartile box, 5-95% whiskers, median line and the mean as a diamond.

    Every non-empty bin is at least 1 px tall, so a single outlier in a long tail shows.
    Each bar's ``<title>`` gives its exact bin and count.
    """
    edges, counts = coarsen(histogram, MAX_BARS)
    width, height = 480, 176
    left, right, top, plot_h = 46, 12, 10, 120
    plot_w = width - left - right
    lo, hi = edges[0], edges[-1]
    span = hi - lo
    peak = max(counts) if counts else 0
    step = _nice_step(peak)
    y_max = max(step * math.ceil(peak / step), 1) if peak else 1

    def x_of(value: float) -> float:
        if span <= 0:
            return left + plot_w / 2
        return left + (value - lo) / span * plot_w

    def y_of(count: float) -> float:
        return top + plot_h - count / y_max * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="histogram">'
    ]
    for index in range(round(y_max / step) + 1):
        tick = index * step
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="ax" x="{left - 5}" y="{y + 3.5:.1f}" text-anchor="end">'
            f"{esc(compact(tick))}</text>"
        )
    bins = len(counts)
    for i, count in enumerate(counts):
        if span > 0:
            x0, x1 = x_of(edges[i]), x_of(edges[i + 1])
        else:
            x0, x1 = left + plot_w * 0.3, left + plot_w * 0.7
        bar_h = count / y_max * plot_h
        if count and bar_h < 1:
            bar_h = 1.0
        closing = "]" if i == bins - 1 else ")"
        label = (
            f"[{exact(edges[i])}, {exact(edges[i + 1])}{closing}: "
            f"{count:,} values ({percent(count, total)})"
        )
        parts.append(
            f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{top + plot_h - bar_h:.1f}" '
            f'width="{max(x1 - x0 - 1, 1):.1f}" height="{bar_h:.1f}">'
            f"<title>{esc(label)}</title></rect>"
        )
    base = top + plot_h
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{base}" y2="{base}"/>')
    # Round-number ticks (1/2/5 x 10^k) inside the range; the bins' edges are in the titles.
    if span > 0:
        x_step = _nice_step(span, 7)
        first = math.ceil(lo / x_step)
        ticks = [k * x_step for k in range(first, first + 16) if k * x_step <= hi + 1e-9 * span]
        labels = [tick_label(v, x_step) for v in ticks]
        stride = 1
        # Thin out long labels (1e12 + small steps) until they fit side by side (~6.5 px/char).
        while (
            len(ticks) > 2 * stride
            and max(map(len, labels)) * 6.5 + 8 > plot_w * stride * x_step / span
        ):
            stride += 1
        for value, label in list(zip(ticks, labels, strict=True))[::stride]:
            x = x_of(value)
            parts.append(
                f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
                f'<text class="ax" x="{x:.1f}" y="{base + 15}" text-anchor="middle">'
                f"{esc(label)}</text>"
            )
    else:
        parts.append(
            f'<text class="ax" x="{left + plot_w / 2:.1f}" y="{base + 15}" '
            f'text-anchor="middle">{esc(f"{lo:.6g}")} (every value)</text>'
        )
    if quantiles and span > 0 and all(_finite(quantiles.get(k)) for k in ("0.05", "0.95")):
        parts.append(_box_strip(quantiles, mean, x_of, base + 26))
    parts.append("</svg>")
    return "".join(parts)


def _box_strip(quantiles: Mapping[str, Any], mean: Any, x_of: Any, y: float) -> str:
    """The box plot row under a histogram (shares its x scale)."""
    q05, q25, q50, q75, q95 = (float(quantiles[k]) for k in ("0.05", "0.25", "0.5", "0.75", "0.95"))
    a, b, c, d, e = (x_of(v) for v in (q05, q25, q50, q75, q95))
    title = (
        f"5%: {exact(q05)} \u00b7 25%: {exact(q25)} \u00b7 median: {exact(q50)} \u00b7 "
        f"75%: {exact(q75)} \u00b7 95%: {exact(q95)}"
    )
    parts = [
        f"<g><title>{esc(title)}</title>",
        f'<line class="whisker" x1="{a:.1f}" x2="{e:.1f}" y1="{y + 8}" y2="{y + 8}"/>',
        f'<line class="whisker" x1="{a:.1f}" x2="{a:.1f}" y1="{y + 3}" y2="{y + 13}"/>',
        f'<line class="whisker" x1="{e:.1f}" x2="{e:.1f}" y1="{y + 3}" y2="{y + 13}"/>',
        f'<rect class="box" x="{b:.1f}" y="{y}" width="{max(d - b, 1):.1f}" height="16"/>',
        f'<line class="median" x1="{c:.1f}" x2="{c:.1f}" y1="{y - 1}" y2="{y + 17}"/>',
        "</g>",
    ]
    if _finite(mean):
        m = x_of(float(mean))
        parts.append(
            f'<path class="mean" d="M{m:.1f} {y + 2}l6 6-6 6-6-6z">'
            f"<title>mean: {esc(exact(mean))}</title></path>"
        )
    return "".join(parts)


def sparkline_svg(histogram: Mapping[str, Any] | None) -> str:
    """A 90 x 20 px histogram for the summary table (no axes)."""
    if not histogram or not histogram.get("counts"):
        return ""
    _, counts = coarsen(histogram, 30)
    peak = max(counts) or 1
    width, height = 90, 20
    bar = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = count / peak * height
        if count and h < 1:
            h = 1.0
        bars.append(
            f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 0.6, 0.6):.1f}" '
            f'height="{h:.1f}"/>'
        )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-hidden="true">{"".join(bars)}</svg>'
    )


def _diverging(r: float) -> str:
    """Blue (-1) through near-white (0) to red (+1)."""
    r = max(-1.0, min(1.0, r))
    white = (247, 247, 247)
    end = (178, 24, 43) if r > 0 else (33, 102, 172)
    t = abs(r) ** 0.8
    rgb = (round(w + (e - w) * t) for w, e in zip(white, end, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap_svg(columns: Sequence[str], matrix: Sequence[Sequence[Any]]) -> str:
    """The correlation matrix as coloured cells (values printed when cells are big enough);
    each cell's ``<title>`` holds the pair and the exact coefficient."""
    k = len(columns)
    cell = max(12, min(40, 640 // max(k, 1)))
    longest = max((len(c) for c in columns), default=1)
    label_w = min(8 + 7 * min(longest, 24), 180)
    size = label_w + k * cell + 8
    parts = [
        f'<svg class="heat" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
        f'role="img" aria-label="correlation heatmap">'
    ]
    font = min(11, cell * 0.42)
    for i, name in enumerate(columns):
        label = name if len(name) <= 24 else name[:23] + "\u2026"
        y = label_w + i * cell + cell / 2 + 4
        parts.append(
            f'<text class="lab" x="{label_w - 6}" y="{y:.1f}" text-anchor="end">'
            f"<title>{esc(name)}</title>{esc(label)}</text>"
        )
        x = label_w + i * cell + cell / 2 + 4
        parts.append(
            f'<text class="lab" transform="translate({x:.1f} {label_w - 6}) rotate(-60)">'
            f"<title>{esc(name)}</title>{esc(label)}</text>"
        )
    for i, row in enumerate(matrix[:k]):
        for j, value in enumerate(row[:k]):
            x, y = label_w + j * cell, label_w + i * cell
            pair = f"{columns[i]} \u00d7 {columns[j]}"
            if _finite(value):
                fill = _diverging(float(value))
                title = f"{pair}: r = {exact(float(value))}"
            else:
                fill = "var(--undef)"
                title = f"{pair}: undefined (a constant column or too few pairs)"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}">'
                f"<title>{esc(title)}</title></rect>"
            )
            if cell >= 28 and _finite(value):
                ink = "hi" if abs(value) > 0.55 else "lo"  # white on dark cells
                parts.append(
                    f'<text x="{x + (cell - 1) / 2:.1f}" y="{y + cell / 2 + 3:.1f}" '
                    f'text-anchor="middle" font-size="{font:.0f}" class="{ink}">'
                    f"{_two_decimals(float(value))}</text>"
                )
    parts.append("</svg>")
    return "".join(parts)


def _two_decimals(r: float) -> str:
    """``r`` to 2 decimals, without the "-0.00" of a tiny negative."""
    text = f"{r:.2f}"
    return "0.00" if text == "-0.00" else text


def _heat_legend() -> str:
    """The colour scale under the heatmap."""
    stops = "".join(
        f'<rect x="{i * 12}" y="0" width="12" height="10" fill="{_diverging(-1 + i / 10)}"/>'
        for i in range(21)
    )
    return (
        '<div class="legend"><span>\u22121</span>'
        f'<svg viewBox="0 0 252 10" width="252" height="10" aria-hidden="true">{stops}</svg>'
        '<span>+1</span><span class="swatch undef"></span><span>undefined</span></div>'
    )


# ----------------------------------------------------------------------------- page parts


def _kinds_summary(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """ "9 int, 5 float, 4 string": how many columns of each kind."""
    counts: dict[str, int] = {}
    for stats in columns.values():
        counts[stats.get("kind", "other")] = counts.get(stats.get("kind", "other"), 0) + 1
    order = ("int", "float", "bool", "string", "temporal", "other")
    return ", ".join(f"{counts[k]} {k}" for k in order if k in counts)


def _overview(document: Mapping[str, Any], data_size: Mapping[str, Any] | None) -> str:
    """Cards (rows, columns, engine, time, data size, quantile method) and the passes."""
    columns = document.get("columns") or {}
    cards = [
        ("rows", num(document.get("rows"))),
        ("columns", f"{num(len(columns))}<small>{esc(_kinds_summary(columns))}</small>"),
        (
            "engine",
            f"{esc(document.get('engine', '?'))}"
            f"<small>{esc(document.get('workers', '?'))} workers</small>",
        ),
        (
            "time",
            f'<span title="{esc(exact(document.get("seconds")))} s">'
            f"{esc(human_seconds(float(document.get('seconds') or 0)))}</span>"
            f"<small>{len(document.get('passes') or [])} passes over the data</small>",
        ),
    ]
    if data_size and data_size.get("bytes") is not None:
        detail = f"{data_size.get('files', '?')} Parquet files"
        if data_size.get("uncompressed_bytes"):
            detail += f", {human_bytes(int(data_size['uncompressed_bytes']))} uncompressed"
        cards.append(
            (
                "data",
                f'<span title="{int(data_size["bytes"]):,} bytes">'
                f"{esc(human_bytes(int(data_size['bytes'])))}</span>"
                f"<small>{esc(detail)}</small>",
            )
        )
    method = document.get("quantiles_method", "exact")
    quantiles = (
        "exact (numpy \u201clinear\u201d)" if method == "exact" else "approximate (KLL sketch)"
    )
    cards.append(("quantiles", f"{esc(method)}<small>{esc(quantiles)}</small>"))
    html_cards = "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="val">{v}</div></div>'
        for k, v in cards
    )
    return (
        f'<section id="overview"><div class="cards">{html_cards}</div>{_passes(document)}</section>'
    )


def _passes(document: Mapping[str, Any]) -> str:
    """One row per pass over the data: what it computed and how long it took."""
    passes = document.get("passes") or []
    if not passes:
        return ""
    longest = max(float(p.get("seconds") or 0) for p in passes) or 1.0
    rows = []
    for number, entry in enumerate(passes, start=1):
        seconds = float(entry.get("seconds") or 0)
        rows.append(
            f"<tr><td class=r>{number}</td><td>{esc(entry.get('pass', ''))}</td>"
            f'<td class="barcell"><div class="hbar" style="width:{100 * seconds / longest:.1f}%">'
            f'</div></td><td class=r><span title="{esc(exact(seconds))} s">'
            f"{seconds:.3f} s</span></td></tr>"
        )
    return (
        '<table class="passes"><caption>Passes (each one scan of fused aggregates)</caption>'
        "<thead><tr><th class=r>#</th><th>aggregates</th><th></th><th class=r>seconds</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _missing(stats: Mapping[str, Any]) -> int:
    """Rows with no usable value: nulls, NaN and infinities."""
    return sum(int(stats.get(k) or 0) for k in ("nulls", "nan", "posinf", "neginf"))


def _share(part: int, whole: int) -> str:
    """`` <small>2.45%</small>`` for a non-zero part, else nothing."""
    return f" <small>{esc(percent(part, whole))}</small>" if part else ""


def _summary_table(document: Mapping[str, Any]) -> str:
    """One row per column, linking its section, with a sparkline of its histogram."""
    rows_total = int(document.get("rows") or 0)
    body = []
    for index, (name, stats) in enumerate((document.get("columns") or {}).items()):
        quantiles = stats.get("quantiles") or {}
        missing = _missing(stats)
        distinct = stats.get("distinct")
        approx = "" if stats.get("distinct_exact", True) else "~"
        body.append(
            f'<tr><td class="name"><a href="#col-{index}">{esc(name)}</a></td>'
            f'<td><span class="kind k-{esc(stats.get("kind", "other"))}">{esc(stats.get("type", ""))}</span></td>'
            f"<td class=r>{num(stats.get('count'))}</td>"
            f"<td class=r>{num(missing)}{_share(missing, rows_total)}</td>"
            f"<td class=r>{num(stats.get('mean'))}</td>"
            f"<td class=r>{num(stats.get('std'))}</td>"
            f"<td class='r mm'>{value_text(stats.get('min'), 26)}</td>"
            f"<td class=r>{num(quantiles.get('0.5'))}</td>"
            f"<td class='r mm'>{value_text(stats.get('max'), 26)}</td>"
            f"<td class=r>{approx}{num(distinct)}</td>"
            f"<td>{sparkline_svg(stats.get('histogram'))}</td></tr>"
        )
    head = "".join(
        f"<th{' class=r' if h not in ('column', 'type', 'distribution') else ''}>{h}</th>"
        for h in (
            "column",
            "type",
            "count",
            "missing",
            "mean",
            "std",
            "min",
            "median",
            "max",
            "distinct",
            "distribution",
        )
    )
    return (
        '<section id="summary"><h2>Columns</h2><div class="scroll"><table class="summary">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></section>"
    )


def _stats_table(stats: Mapping[str, Any], rows_total: int) -> str:
    """A column's counts and moments (min/max too where there are no quantiles)."""
    rows: list[tuple[str, str]] = []
    count = stats.get("count")
    rows.append(("count", f"{num(count)} <small>{esc(percent(count or 0, rows_total))}</small>"))
    rows.append(
        (
            "nulls",
            f"{num(stats.get('nulls'))} <small>{esc(percent(stats.get('nulls') or 0, rows_total))}</small>",
        )
    )
    if "nan" in stats:
        special = [stats.get(k) for k in ("nan", "posinf", "neginf")]
        rows.append(("NaN \u00b7 +inf \u00b7 \u2212inf", " \u00b7 ".join(num(v) for v in special)))
    if stats.get("distinct") is not None:
        if stats.get("distinct_exact", True):
            rows.append(("distinct", num(stats["distinct"])))
        else:
            rows.append(
                (
                    "distinct",
                    f'<span title="HyperLogLog estimate, 0.81% relative standard error">~</span>'
                    f"{num(stats['distinct'])}",
                )
            )
    for key in ("mean", "std", "var", "sum", "skew", "kurtosis"):
        if key in stats:
            label = {"kurtosis": "excess kurtosis", "var": "variance"}.get(key, key)
            rows.append((label, num(stats.get(key))))
    if not stats.get("quantiles"):
        rows.append(("min", value_text(stats.get("min"))))
        rows.append(("max", value_text(stats.get("max"))))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="stats">{body}</table>'


def _quantile_table(stats: Mapping[str, Any]) -> str:
    """Min, 5%, quartiles, 95%, max in one row (under the histogram and its box strip)."""
    quantiles = stats.get("quantiles")
    if not quantiles:
        return ""
    if stats.get("quantiles_rank_error") is not None:
        how = f"approximate, KLL sketch, rank error \u00b1{short(stats['quantiles_rank_error'])}"
    else:
        how = "exact, numpy \u201clinear\u201d"
    head = "".join(f"<th>{esc(label)}</th>" for _, label in QUANTILE_LABELS)
    cells = "".join(f"<td>{num(quantiles.get(key))}</td>" for key, _ in QUANTILE_LABELS)
    return (
        f'<table class="quant"><caption>Quantiles <small>({esc(how)})</small></caption>'
        f"<thead><tr>{head}</tr></thead><tbody><tr>{cells}</tr></tbody></table>"
    )


def _top_table(stats: Mapping[str, Any], rows_total: int) -> str:
    """The most frequent values with bars, counts and shares, then the rest as "others"."""
    top = stats.get("top")
    if not top:
        return ""
    peak = max(int(c) for _, c in top) or 1
    body = []
    for value, count in top:
        body.append(
            f"<tr><td class=val>{value_text(value)}</td>"
            f'<td class="barcell"><div class="hbar" style="width:{100 * int(count) / peak:.1f}%"></div></td>'
            f"<td class=r>{num(int(count))}</td>"
            f"<td class=r><small>{esc(percent(int(count), rows_total))}</small></td></tr>"
        )
    shown = sum(int(c) for _, c in top)
    others = int(stats.get("count") or 0) - shown
    if others > 0:
        body.append(
            f'<tr class="others"><td class=val><span class="na">{_others(stats, len(top))}</span></td>'
            f"<td></td><td class=r>{num(others)}</td>"
            f"<td class=r><small>{esc(percent(others, rows_total))}</small></td></tr>"
        )
    return (
        f'<table class="top"><caption>Top {len(top)} values</caption>'
        '<colgroup><col class="c-val"><col class="c-bar"><col class="c-n"><col class="c-p">'
        f"</colgroup><tbody>{''.join(body)}</tbody></table>"
    )


def _others(stats: Mapping[str, Any], shown: int) -> str:
    """``"1,011 others"`` (``~`` when the distinct count is an estimate)."""
    rest = max(int(stats.get("distinct") or 0) - shown, 0)
    approx = "" if stats.get("distinct_exact", True) else "~"
    return f"{approx}{rest:,} others" if rest else "others"


def _column_section(index: int, name: str, stats: Mapping[str, Any], rows_total: int) -> str:
    """One column: statistics | histogram with box strip | top values (what applies)."""
    kind = stats.get("kind", "other")
    histogram = stats.get("histogram")
    chart = ""
    if histogram and histogram.get("counts"):
        chart = (
            "<figure><figcaption>Histogram of finite values</figcaption>"
            + histogram_svg(
                histogram, stats.get("quantiles"), stats.get("mean"), int(stats.get("count") or 0)
            )
            + "</figure>"
            + _quantile_table(stats)
        )
    elif kind in ("float", "int") and not stats.get("count"):
        chart = '<p class="note">No finite values, so no histogram.</p>'
    top = _top_table(stats, rows_total)
    if not top:
        notes = {
            "float": "Top values are not listed for float columns.",
            "temporal": "Top values are not listed for temporal columns.",
        }
        top = f'<p class="note">{esc(notes.get(kind, "No top values."))}</p>'
    panels = [f"<div>{_stats_table(stats, rows_total)}</div>"]
    if chart:
        panels.append(f'<div class="chartpanel">{chart}</div>')
    panels.append(f'<div class="toppanel">{top}</div>')
    layout = "grid3" if chart else "grid2"
    return (
        f'<section class="column" id="col-{index}">'
        f'<h3><span class="cname">{esc(name)}</span> <span class="kind k-{esc(kind)}">'
        f"{esc(stats.get('type', ''))}</span>"
        f'<a class="up" href="#summary" title="back to the list">\u2191 columns</a></h3>'
        f'<div class="{layout}">{"".join(panels)}</div></section>'
    )


def _strongest_pairs(columns: Sequence[str], matrix: Sequence[Sequence[Any]], n: int = 10) -> str:
    """The ``n`` pairs with the largest ``|r|`` (off the diagonal), as a table."""
    pairs = []
    for i in range(len(columns)):
        for j in range(i + 1, len(columns)):
            value = matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else None
            if _finite(value):
                pairs.append((-abs(float(value)), i, j, float(value)))
    if not pairs:
        return ""
    rows = "".join(
        f"<tr><td>{esc(columns[i])}</td><td>{esc(columns[j])}</td>"
        f'<td class=r><span class="chip" style="background:{_diverging(r)}"></span>{num(r)}</td></tr>'
        for _, i, j, r in sorted(pairs)[:n]
    )
    return (
        '<table class="pairs"><caption>Strongest correlations</caption>'
        f"<thead><tr><th>column</th><th>column</th><th class=r>r</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _correlation_section(correlation: Mapping[str, Any] | None) -> str:
    """The heatmap, its legend and the strongest pairs (nothing without a matrix)."""
    if not correlation or not correlation.get("columns"):
        return ""
    columns = list(correlation["columns"])
    matrix = correlation.get("matrix") or []
    note = ""
    if len(columns) > HEATMAP_MAX_COLUMNS:
        note = (
            f'<p class="note">The first {HEATMAP_MAX_COLUMNS} of {len(columns)} numeric columns '
            "are shown; profile.json holds the whole matrix.</p>"
        )
        columns = columns[:HEATMAP_MAX_COLUMNS]
    return (
        '<section id="correlation"><h2>Correlation</h2>'
        '<p class="note">Pearson correlation of each pair over the rows where both are finite; '
        "correctly rounded. Hover a cell for the exact value.</p>"
        f'{note}<div class="heatwrap"><div class="scroll">{heatmap_svg(columns, matrix)}'
        f"{_heat_legend()}</div>{_strongest_pairs(list(correlation['columns']), matrix)}</div></section>"
    )


CSS = """
:root{--fg:#1d2430;--muted:#667085;--line:#e4e7ec;--bg:#fff;--panel:#f8f9fb;--accent:#2f6fb0;
--bar:#4a86c5;--box:#dbe8f5;--mean:#d9480f;--undef:#d0d5dd;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#98a2b3;--line:#344054;
--bg:#12161c;--panel:#1b2129;--accent:#7cb2ea;--bar:#6aa3dc;--box:#23384f;--undef:#475467}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
header h1{font-size:22px;margin:0 0 2px}header p{margin:0;color:var(--muted)}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:0 0 10px;display:flex;align-items:baseline;gap:10px}
.cname{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.up{margin-left:auto;text-decoration:none;color:var(--muted);font-weight:400}
a{color:var(--accent)}
small,.note,.na{color:var(--muted)}small{font-size:12px}.note{font-size:13px;margin:4px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:8px 14px;
flex:1 1 0;min-width:120px}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.card .val{font-size:20px;font-weight:600}.card small{display:block;font-weight:400}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;text-align:left;vertical-align:middle}.r{text-align:right}
caption{text-align:left;font-weight:600;padding:2px 0 6px;color:var(--muted);font-size:13px}
.scroll{overflow-x:auto}
table.summary{width:100%;font-size:13px}
table.summary th{border-bottom:2px solid var(--line);white-space:nowrap}
table.summary td{border-bottom:1px solid var(--line);white-space:nowrap}
table.summary td.mm{white-space:normal;max-width:130px;overflow-wrap:anywhere;font-size:12px}
table.summary td.mm .n{white-space:nowrap}
table.summary td.name a{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
text-decoration:none}
table.summary tbody tr:hover{background:var(--panel)}
.kind{font-size:11px;padding:1px 6px;border-radius:9px;background:var(--panel);
border:1px solid var(--line);color:var(--muted);font-weight:400;white-space:nowrap}
.k-int,.k-float{border-color:#9ec5ea}.k-string{border-color:#b7d9a8}.k-temporal{border-color:#e6c58f}
.passes{margin:6px 0 0;font-size:13px;min-width:520px}.passes td{border-top:1px solid var(--line)}
.barcell{width:200px}.hbar{height:10px;background:var(--bar);border-radius:2px;min-width:1px}
section.column{border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:14px 0;
background:var(--bg);break-inside:avoid}
.grid3,.grid2{display:grid;gap:20px;align-items:start}
.grid3{grid-template-columns:250px minmax(0,1fr) 320px}.grid2{grid-template-columns:250px minmax(0,1fr)}
@media (max-width:1020px){.grid3{grid-template-columns:250px minmax(0,1fr)}.grid3 .toppanel{grid-column:1/-1}}
@media (max-width:640px){.grid3,.grid2{grid-template-columns:1fr}}
.grid2 .toppanel table.top{max-width:520px}
table.stats{font-size:13px;width:100%}table.stats th,table.stats td{padding:2px 6px}
table.stats th{font-weight:400;color:var(--muted);white-space:nowrap}
table.stats td{text-align:right;white-space:nowrap}
table.stats td .v{white-space:normal;overflow-wrap:anywhere}
table.stats tr+tr>*{border-top:1px solid var(--line)}
figure{margin:0}figcaption{font-weight:600;color:var(--muted);font-size:13px;padding:2px 0 4px}
svg.chart{width:100%;max-width:560px;height:auto;display:block}
table.top{font-size:13px;width:100%;table-layout:fixed}
table.top td{padding:2px 4px}.c-val{width:28%}.c-bar{width:24%}.c-n{width:31%}.c-p{width:17%}
table.quant{font-size:13px;width:100%;max-width:560px;margin-top:6px;table-layout:fixed}
table.quant th{font-weight:400;color:var(--muted);text-align:right;border-bottom:1px solid var(--line)}
table.quant td{text-align:right}
table.top td.val{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
table.top tr.others td.val{font-family:inherit}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--fg)}
svg .ax{fill:var(--muted)}svg .grid{stroke:var(--line)}svg .axis{stroke:var(--muted)}
svg .bar{fill:var(--bar)}svg .bar:hover{fill:var(--mean)}
svg .box{fill:var(--box);stroke:var(--bar)}svg .whisker{stroke:var(--bar);stroke-width:1.5}
svg .median{stroke:var(--fg);stroke-width:2}svg .mean{fill:var(--mean)}
svg.spark{display:block}svg.spark rect{fill:var(--bar)}
svg.heat .lab{font-size:11px;fill:var(--fg)}svg.heat text.lo{fill:#222}svg.heat text.hi{fill:#fff}
.legend{display:flex;align-items:center;gap:6px;font-size:12px;color:var(--muted);margin:6px 0}
.swatch{display:inline-block;width:12px;height:10px;margin-left:12px}.undef{background:var(--undef)}
.heatwrap{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}
table.pairs{font-size:13px}table.pairs td{border-top:1px solid var(--line);font-family:ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}table.pairs th{color:var(--muted);font-weight:400}
.chip{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
footer{margin-top:30px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:8px}
"""

#: No script, no network: even an escaping mistake could not run code or fetch anything.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_profile_html(
    document: Mapping[str, Any],
    *,
    title: str | None = None,
    data_size: Mapping[str, Any] | None = None,
) -> str:
    """The whole report page for a profile ``document`` (:meth:`Profile.to_dict` shape).

    ``title`` names the data (e.g. the input path); ``data_size`` is
    ``{"files", "bytes", "uncompressed_bytes"}`` as :func:`input_size` returns (or a
    ``"data_size"`` entry of the document) and is shown in the overview when known.
    """
    from analytics import __version__

    data_size = data_size or document.get("data_size")
    columns = document.get("columns") or {}
    rows_total = int(document.get("rows") or 0)
    name = title or "profile"
    sections = "".join(
        _column_section(i, column, stats, rows_total)
        for i, (column, stats) in enumerate(columns.items())
    )
    subtitle = (
        f"{rows_total:,} rows \u00b7 {len(columns)} columns \u00b7 engine "
        f"{document.get('engine', '?')} ({document.get('workers', '?')} workers)"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(name)} \u2013 analytics profile</title><style>{CSS}</style></head>"
        f"<body><main><header><h1>Profile: {esc(name)}</h1><p>{esc(subtitle)}</p></header>"
        f"{_overview(document, data_size)}{_summary_table(document)}"
        f"{_correlation_section(document.get('correlation'))}"
        '<h2 id="columns">Column details</h2><p class="note">Under each histogram: the box spans '
        "the quartiles, whiskers the 5% and 95% quantiles, the line is the median and the "
        f"diamond the mean. Hover a bar for its exact bin and count.</p>{sections}"
        f"<footer>analytics {esc(__version__)}. Counts, sums, means, variances, standard "
        "deviations and correlations are correctly rounded (identical on every engine). "
        "Numbers show 6 significant digits; hover one for its exact value. Missing = nulls + NaN "
        "+ \u00b1inf, which never enter other statistics.</footer></main></body></html>\n"
    )


def input_size(inputs: Any) -> dict[str, int] | None:
    """``{"files", "bytes", "uncompressed_bytes"}`` of Parquet input(s) (a path, glob, list of
    paths or a :class:`~analytics.dataset.Dataset`), from the file system and the footers;
    None for in-memory inputs or when the files cannot be read."""
    from analytics.dataset import Dataset, open_dataset
    from analytics.errors import AnalyticsError

    try:
        if isinstance(inputs, Dataset):
            dataset = inputs
        elif isinstance(inputs, (str, os.PathLike)) or (
            isinstance(inputs, (list, tuple))
            and all(isinstance(i, (str, os.PathLike)) for i in inputs)
        ):
            dataset = open_dataset(inputs)
        else:
            return None
        import pyarrow.parquet as pq

        files = dataset.files
        on_disk = sum(os.path.getsize(f) for f in files)
        uncompressed = 0
        for f in files:
            meta = pq.read_metadata(f)
            uncompressed += sum(
                meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)
            )
    except (AnalyticsError, OSError):
        return None
    return {"files": len(files), "bytes": on_disk, "uncompressed_bytes": uncompressed}


def write_profile_html(
    path: str | Path,
    document: Mapping[str, Any],
    *,
    inputs: Any = None,
    title: str | None = None,
) -> Path:
    """Write the report page for ``document`` to ``path`` atomically; returns ``path``.

    ``inputs`` (the paths given to :func:`analytics.profile`) adds the data size to the
    overview and, unless ``title`` is given, names the page.
    """
    if title is None and inputs is not None and isinstance(inputs, (str, os.PathLike, list, tuple)):
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        title = ", ".join(str(i) for i in items)
    size = input_size(inputs) if inputs is not None else None
    page = render_profile_html(document, title=title, data_size=size)
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
