"""The benchmark results as an SVG chart: one horizontal bar per row that has a target.

Every bar shows the row's headroom, normalised so all rows read the same way: target/measured
for ``<=`` targets and measured/target for ``>=`` targets, on a log scale centred on the 1.0
"target" line. A passing row's bar grows right of the line in green, a failing row's left of it
in red, a row that could not run is a grey band. Rows printed without a target are listed in a
footnote. Standard library only, hand-written SVG with every text escaped, so RESULTS.md can
embed it and any browser or GitHub can show it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from benchmarks.common import Row

WIDTH = 800
LABEL_RIGHT = 322  # right edge of the row labels
AREA_LEFT, AREA_RIGHT = 342, 770  # the bars' log scale
ROW_HEIGHT = 30
BAR_HEIGHT = 16
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif"
FONT_SIZE = 13
CHAR_WIDTH = 0.6 * FONT_SIZE  # a generous average, so estimated text widths do not overflow
COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "none": "#9e9e9e"}
TEXT, MUTED, GRID = "#212121", "#616161", "#e0e0e0"
MAX_SPAN = 1000.0  # the scale never reaches past 1000x headroom either way
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    """``value`` safe as XML character data or a quoted attribute."""
    return escape(_NOT_XML.sub("?", value), {'"': "&quot;"})


def _fit(value: str, chars: int) -> str:
    """``value`` cut to ``chars`` characters, with an ellipsis when cut."""
    return value if len(value) <= chars else value[: max(chars - 1, 0)] + "…"


def _width(value: str, size: float = FONT_SIZE) -> float:
    return len(value) * CHAR_WIDTH * size / FONT_SIZE


def _chars(pixels: float, size: float = FONT_SIZE) -> int:
    """How many characters fit in ``pixels`` at ``size``, by the same estimate as _width."""
    return int(pixels / (CHAR_WIDTH * size / FONT_SIZE))


def _times(value: float) -> str:
    if not math.isfinite(value):
        return "∞×"
    return (f"{value:.3g}" if value < 1000 else f"{value:,.0f}") + "×"


@dataclass
class _Bar:
    """One drawn row: its label, how it stands (pass, fail or none) and its headroom."""

    row: Row
    kind: str
    label: str
    headroom: float | None
    summary: str


def headroom(row: Row) -> float | None:
    """How far the row's ratio is inside its target (> 1) or short of it (< 1); None when the
    row has no target or no ratio. Zero or negative figures, which a log scale cannot show,
    give 0 or infinity by the verdict."""
    if row.target is None or row.ratio is None or row.error:
        return None
    ratio, bound = row.ratio, row.target.bound
    top, bottom = (bound, ratio) if row.target.op == "<=" else (ratio, bound)
    if math.isnan(top) or math.isnan(bottom):
        return 0.0
    if top > 0 and bottom > 0:
        return top / bottom
    return math.inf if row.verdict == "PASS" else 0.0


def _bar(row: Row) -> _Bar | None:
    """How ``row`` is drawn, or None for a row printed without a target (the footnote's)."""
    target = f" ({row.target})" if row.target is not None else ""
    if row.error or (row.target is not None and row.ratio is None):
        why = f": {row.error}" if row.error else ""
        summary = f"{row.name}{target}: could not run{why}"
        return _Bar(row, "none", _fit(row.name + target, _chars(LABEL_RIGHT - 8)), None, summary)
    if row.target is None:
        return None
    room = headroom(row)
    kind = "pass" if row.verdict == "PASS" else "fail"
    figure = f" {row.ratio_text}{target}"
    name = _fit(row.name, max(_chars(LABEL_RIGHT - 8) - len(figure), 8))
    summary = f"{row.name} {row.ratio_text}{target}: {row.verdict}, headroom {_times(room or 0.0)}"
    return _Bar(row, kind, name + figure, room, summary)


def _span(bars: Sequence[_Bar]) -> float:
    """The scale's reach either side of 1.0: the widest headroom, rounded up to 2, 5 or 10 x a
    power of ten, at least 2x and at most MAX_SPAN."""
    widest = 1.5
    for bar in bars:
        if bar.headroom is not None and bar.headroom > 0 and math.isfinite(bar.headroom):
            widest = max(widest, bar.headroom, 1 / bar.headroom)
        elif bar.headroom is not None:
            widest = MAX_SPAN
    widest = min(widest * 1.15, MAX_SPAN)  # room for the figure at the bar's tip
    power = 10 ** math.floor(math.log10(widest))
    for step in (1, 2, 5, 10):
        if step * power >= widest - 1e-9:
            return float(min(step * power, MAX_SPAN))
    return MAX_SPAN


def _ticks(span: float) -> list[float]:
    """Gridline values from 1/span to span: 1, 2 and 5 x powers of ten, or only the powers of
    ten when those would crowd the scale."""
    decades = math.ceil(math.log10(span) - 1e-9)
    steps = (1, 2, 5) if span <= 20 else (1, 5) if span <= 100 else (1,)
    ups = [s * 10**d for d in range(decades + 1) for s in steps if 1 < s * 10**d <= span * 1.0001]
    return sorted([1 / v for v in ups] + [1.0] + ups)


def _wrap(text: str, chars: int) -> list[str]:
    """``text`` in lines of at most ``chars`` characters, broken at spaces where it can be."""
    lines: list[str] = []
    while len(text) > chars:
        cut = text.rfind(" ", 0, chars + 1)
        cut = cut if cut > 0 else chars
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*lines, text]


def _tick_text(value: float) -> str:
    return f"{value:g}×"


def results_svg(rows: Sequence[Row]) -> str:
    """The results as a standalone SVG document ~800 px wide that grows one line per row: a
    bar per targeted row (and a grey band per row that could not run), labelled with the row's
    name and raw figure against its target, and a footnote naming the rows without a target."""
    bars = [(row, _bar(row)) for row in rows]
    drawn = [bar for _, bar in bars if bar is not None]
    untargeted = [row.name for row, bar in bars if bar is None]
    span = _span(drawn)
    scale = (AREA_RIGHT - AREA_LEFT) / (2 * math.log10(span))
    centre = (AREA_LEFT + AREA_RIGHT) / 2

    def x_of(value: float) -> float:
        clamped = min(max(value, 1 / span), span) if value > 0 else 1 / span
        return centre + math.log10(clamped) * scale

    counts = {kind: sum(bar.kind == kind for bar in drawn) for kind in COLOURS}
    title = "Benchmark results: each row against its target"
    desc = (
        f"{len(rows)} rows: {counts['pass']} pass, {counts['fail']} fail, {counts['none']} could not run, "
        f"{len(untargeted)} without a target. Each bar is a row's headroom on a log scale: "
        "target/measured for <= targets, measured/target for >= targets; right of the 1.0 target "
        "line passes, left of it fails. " + "; ".join(bar.summary for bar in drawn) + "."
    )
    out: list[str] = []
    y = 28
    out.append(f'<text x="16" y="{y}" font-size="16" font-weight="bold">{_text(title)}</text>')
    y += 24
    legend_x: float = 16
    for kind, words in (("pass", "passes"), ("fail", "fails"), ("none", "could not run")):
        out.append(
            f'<rect x="{legend_x:.0f}" y="{y - 10}" width="12" height="12" rx="2" fill="{COLOURS[kind]}"/>'
            f'<text x="{legend_x + 17:.0f}" y="{y}" fill="{MUTED}">{words}</text>'
        )
        legend_x += 17 + _width(words) + 18
    y += 20
    explain = "Bar: headroom on a log scale (target ÷ measured for ≤ targets, measured ÷ target for ≥)"
    out.append(f'<text x="16" y="{y}" font-size="12" fill="{MUTED}">{_text(explain)}</text>')
    y += 30
    out.append(
        f'<text x="{AREA_LEFT}" y="{y}" font-size="12" fill="{MUTED}">← short of target</text>'
        f'<text x="{centre:.1f}" y="{y}" font-size="12" font-weight="bold" text-anchor="middle">target</text>'
        f'<text x="{AREA_RIGHT}" y="{y}" font-size="12" fill="{MUTED}" text-anchor="end">room to spare →</text>'
    )
    top = y + 8
    bottom = top + max(len(drawn), 1) * ROW_HEIGHT
    for tick in _ticks(span):
        if tick != 1.0:
            out.append(
                f'<line x1="{x_of(tick):.1f}" y1="{top}" x2="{x_of(tick):.1f}" y2="{bottom}" '
                f'stroke="{GRID}"/>'
            )
        out.append(
            f'<text x="{x_of(tick):.1f}" y="{bottom + 16}" font-size="11" fill="{MUTED}" '
            f'text-anchor="middle">{_tick_text(tick)}</text>'
        )
    if not drawn:
        out.append(
            f'<text x="{centre:.1f}" y="{top + 20}" fill="{MUTED}" text-anchor="middle">'
            "no row with a target</text>"
        )
    out.append(
        f'<line class="target" x1="{centre:.1f}" y1="{top - 4}" x2="{centre:.1f}" y2="{bottom}" '
        f'stroke="{TEXT}" stroke-width="2"/>'
    )
    for index, bar in enumerate(drawn):
        out.append(_row_svg(bar, top + index * ROW_HEIGHT, x_of, centre))
    y = bottom + 44
    if untargeted:
        footnote = "Printed without a target (not charted): " + ", ".join(untargeted)
        for line in _wrap(footnote, _chars(WIDTH - 32, 12)):
            out.append(
                f'<text class="footnote" x="16" y="{y}" font-size="12" fill="{MUTED}">{_text(line)}</text>'
            )
            y += 17
    height = y + 4
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        f'font-family="{_text(FONT)}" font-size="{FONT_SIZE}" fill="{TEXT}">'
    )
    return (
        "\n".join(
            [
                head,
                f'<title id="chart-title">{_text(title)}</title>',
                f'<desc id="chart-desc">{_text(desc)}</desc>',
                f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
                *out,
                "</svg>",
            ]
        )
        + "\n"
    )


def _row_svg(bar: _Bar, y: float, x_of: Callable[[float], float], centre: float) -> str:
    """One row's group: label, bar (or grey band) and the headroom at the bar's tip."""
    mid = y + ROW_HEIGHT / 2
    bar_top = mid - BAR_HEIGHT / 2
    parts = [f'<g class="row {bar.kind}"><title>{_text(bar.summary)}</title>']
    parts.append(f'<text x="{LABEL_RIGHT}" y="{mid + 4.5:.1f}" text-anchor="end">{_text(bar.label)}</text>')
    if bar.kind == "none":
        left, right = x_of(0.0), x_of(math.inf)
        note = _fit(
            "could not run" + (f": {bar.row.error}" if bar.row.error else ""),
            _chars(right - left - 16, 12),
        )
        parts.append(
            f'<rect class="bar none" x="{left:.1f}" y="{bar_top:.1f}" width="{right - left:.1f}" '
            f'height="{BAR_HEIGHT}" rx="3" fill="#ececec" stroke="{COLOURS["none"]}"/>'
            f'<text x="{left + 8:.1f}" y="{mid + 4:.1f}" font-size="12" font-style="italic" '
            f'fill="{MUTED}">{_text(note)}</text>'
        )
        return "".join(parts) + "</g>"
    room = bar.headroom if bar.headroom is not None else 0.0
    rightward = bar.kind == "pass"
    # A row right on its target still gets a few pixels, to show its colour.
    tip = max(x_of(room), centre + 4) if rightward else min(x_of(room), centre - 4)
    left, right = min(tip, centre), max(tip, centre)
    parts.append(
        f'<rect class="bar {bar.kind}" x="{left:.1f}" y="{bar_top:.1f}" width="{right - left:.1f}" '
        f'height="{BAR_HEIGHT}" rx="3" fill="{COLOURS[bar.kind]}"/>'
    )
    figure = _times(room)
    size = _width(figure, 12)
    if rightward:
        outside = tip + 5 + size <= WIDTH - 4
        x, anchor = (tip + 5, "start") if outside else (tip - 5, "end")
    else:
        outside = tip - 5 - size >= AREA_LEFT  # never into the row labels
        x, anchor = (tip - 5, "end") if outside else (tip + 5, "start")
    colour = TEXT if outside else "#ffffff"  # no room past the scale's end: inside the bar
    parts.append(
        f'<text x="{x:.1f}" y="{mid + 4:.1f}" font-size="12" text-anchor="{anchor}" '
        f'fill="{colour}">{_text(figure)}</text>'
    )
    return "".join(parts) + "</g>"
