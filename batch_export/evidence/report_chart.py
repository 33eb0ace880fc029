"""The report's chart: exports per minute over time, as inline SVG (no script, no font file).

Bars are counted from the journal's ``done`` timestamps. A long archive
(resumed over days) would need thousands of one-minute bars, so bars widen
(2, 5, 10 … minutes, up to a day) until there are at most ``MAX_BARS``; each
bar's height stays a rate in exports per minute (its count divided by its
minutes), so the axis means the same at every width. The colours are dark on
white and every mark has a stroke or fill that survives a black-and-white
printer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["MAX_BARS", "Bars", "bars_per_minute", "chart_svg", "nice_ceiling"]

#: at most this many bars are drawn
MAX_BARS = 120
#: the chart spans at least this many bars (empty ones after the last export)
MIN_BARS = 10
#: the bar widths tried, in minutes
_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)

_W, _H = 900, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 30, 60
_BAR = "#2f5d8a"
_GRID = "#cccccc"
_INK = "#111111"


@dataclass(frozen=True)
class Bars:
    """Saved exports counted into equal time slots."""

    #: Unix time where the first bar begins (a whole minute)
    start: float
    #: each bar's width in minutes
    minutes: int
    counts: list[int]

    def rate(self, index: int) -> float:
        """Bar ``index`` as exports per minute."""
        return self.counts[index] / self.minutes

    @property
    def peak(self) -> tuple[float, float]:
        """The highest rate in exports per minute and when its bar begins."""
        index = max(range(len(self.counts)), key=self.counts.__getitem__)
        return self.rate(index), self.start + index * self.minutes * 60


def bars_per_minute(times: Sequence[float]) -> Bars | None:
    """Count ``times`` into at most ``MAX_BARS`` bars (None when there are none)."""
    if not times:
        return None
    first, last = min(times), max(times)
    start = math.floor(first / 60) * 60
    span = math.floor((last - start) / 60) + 1  # minutes covered, the last one included
    minutes = next((w for w in _WIDTHS if math.ceil(span / w) <= MAX_BARS), _WIDTHS[-1])
    # At least MIN_BARS slots: a run of a few seconds is one bar, not a wall of blue.
    counts = [0] * max(MIN_BARS, math.ceil(span / minutes))
    for moment in times:
        counts[min(len(counts) - 1, int((moment - start) // (minutes * 60)))] += 1
    return Bars(start, minutes, counts)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step * power) for step in (1, 2, 5, 10) if step * power >= value)


def _clock(moment: float, with_day: bool) -> str:
    return time.strftime("%m-%d %H:%M" if with_day else "%H:%M", time.gmtime(moment))


def _number(value: float) -> str:
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.2g}"


def chart_svg(bars: Bars, markers: Sequence[tuple[float, str]] = ()) -> str:
    """The bars as an ``<svg>`` element, with axes, labels and a dashed line per marker.

    ``markers`` are ``(Unix time, label)``, e.g. each run's start.
    """
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = nice_ceiling(max(bars.rate(i) for i in range(len(bars.counts))))
    seconds = len(bars.counts) * bars.minutes * 60
    end = bars.start + seconds
    with_day = time.gmtime(bars.start)[:3] != time.gmtime(end)[:3]

    def x(moment: float) -> float:
        return _LEFT + (moment - bars.start) / seconds * width

    def y(rate: float) -> float:
        return _TOP + height - rate / top * height

    unit = "minute" if bars.minutes == 1 else f"{bars.minutes}-minute bar"
    parts = [
        # No xmlns: inline in HTML it is not needed, and the file names no web address.
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" '
        f'width="100%" role="img" aria-label="Exports saved per minute over time" '
        f'font-family="sans-serif" font-size="12" fill="{_INK}">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
    ]
    # Grid steps of 1, 2 or 5 units (never 1.25): 5 steps up to a 1 or 5, 4 up to a 2.
    steps = 4 if f"{top:e}".startswith("2") else 5
    for step in range(steps + 1):  # horizontal grid lines and their labels
        rate = top * step / steps
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + width}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" '
            f'stroke="{_GRID}"/><text x="{_LEFT - 6}" y="{y(rate) + 4:.1f}" '
            f'text-anchor="end">{_number(rate)}</text>'
        )
    slot = width / len(bars.counts)
    for index, count in enumerate(bars.counts):
        if not count:
            continue
        begin = bars.start + index * bars.minutes * 60
        top_y = y(bars.rate(index))
        parts.append(
            f'<rect class="bar" x="{_LEFT + index * slot:.2f}" y="{top_y:.2f}" '
            f'width="{max(slot * 0.85, 0.5):.2f}" height="{_TOP + height - top_y:.2f}" '
            f'fill="{_BAR}" stroke="{_INK}" stroke-width="0.3">'
            f"<title>{escape(_clock(begin, True))} UTC: {count} exports "
            f"({_number(bars.rate(index))} per minute)</title></rect>"
        )
    ticks = min(8, len(bars.counts))
    for tick in range(ticks + 1):  # time labels along the x axis
        moment = bars.start + seconds * tick / ticks
        parts.append(
            f'<line x1="{x(moment):.1f}" x2="{x(moment):.1f}" y1="{_TOP + height}" '
            f'y2="{_TOP + height + 5}" stroke="{_INK}"/><text x="{x(moment):.1f}" '
            f'y="{_TOP + height + 18}" text-anchor="middle">{_clock(moment, with_day)}</text>'
        )
    parts += _markers(markers, bars.start, end, x, _TOP + height)
    parts += [
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + height}" stroke="{_INK}"/>',
        f'<line x1="{_LEFT}" x2="{_LEFT + width}" y1="{_TOP + height}" '
        f'y2="{_TOP + height}" stroke="{_INK}"/>',
        f'<text x="{_LEFT + width / 2}" y="{_H - 12}" text-anchor="middle">time (UTC)</text>',
        f'<text transform="translate(16 {_TOP + height / 2}) rotate(-90)" '
        f'text-anchor="middle">exports per minute'
        f"{'' if bars.minutes == 1 else f' (mean over each {unit})'}</text>",
        "</svg>",
    ]
    return "".join(parts)


def _markers(
    markers: Sequence[tuple[float, str]],
    start: float,
    end: float,
    x: Callable[[float], float],
    bottom: float,
) -> list[str]:
    """A dashed line and a label per marker; labels of close markers step down, not overlap."""
    parts: list[str] = []
    previous, level = -1e9, 0
    for moment, label in sorted(markers):
        if not start <= moment <= end:
            continue
        where = x(moment)
        level = (level + 1) % 3 if where - previous < 60 else 0
        previous = where
        parts.append(
            f'<line class="marker" x1="{where:.1f}" x2="{where:.1f}" y1="{_TOP}" '
            f'y2="{bottom}" stroke="{_INK}" stroke-dasharray="4 3"/>'
            f'<text x="{where + 3:.1f}" y="{_TOP - 6 + level * 15}">{escape(label)}</text>'
        )
    return parts
