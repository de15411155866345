"""Axes for the portal's SVG charts: round value ticks ("nice" numbers) and hour/day ticks in UTC.

A reader should get a chart's numbers from the chart itself: the value axis ends on a round number (1,500, not
1,475.15) with evenly spaced labelled ticks, and the time axis names hours within a day or days within a week.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Steps a value axis may take, within each power of ten: 1, 2, 2.5 and 5 read well; 3 or 4 do not.
NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
# Hour tick spacings, and the widest span each is used for (about eight labels per axis).
HOUR_SPACINGS = ((6, 1), (12, 2), (24, 3), (48, 6), (96, 12))


@dataclass(frozen=True)
class Tick:
    """A labelled tick: its value (a number or an instant) placed at `position` on the chart."""

    position: float
    label: str
    # A day tick on an hourly axis (midnight): drawn stronger and labelled with the date.
    major: bool = False


def nice_step(span: float, count: int) -> float:
    """The round step that splits `span` into at most `count` intervals."""
    if span <= 0:
        return 1.0
    rough = span / max(count, 1)
    power: float = 10.0 ** math.floor(math.log10(rough))
    return next(step * power for step in NICE_STEPS if step * power >= rough * (1 - 1e-9))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from `low` (rounded down) to `high` (rounded up), at most `count` intervals.

    An empty range (0 to 0) still gets an axis from 0 to 1.
    """
    if high <= low:
        high = low + 1.0
    step = nice_step(high - low, count)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    intervals = round((last - first) / step)
    # Rounding away float noise (0.30000000000000004) keeps labels and comparisons exact.
    return [round(first + index * step, 10) for index in range(intervals + 1)]


def format_number(value: float) -> str:
    """A quantity as people read it: thousands separated, at most two decimals, no trailing zeros."""
    if value != 0 and abs(value) < 0.01:
        return f"{value:.2g}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def hour_spacing(span: timedelta) -> int | None:
    """Hours between ticks for a span, or None when the span is long enough for one tick a day."""
    hours = span.total_seconds() / 3600
    return next((spacing for limit, spacing in HOUR_SPACINGS if hours <= limit), None)


def time_ticks(start: datetime, end: datetime, left: float, width: float) -> list[Tick]:
    """Ticks on whole UTC hours (a short span) or at UTC midnights (days), placed between `left` and `left + width`.

    Hour ticks read "15:00"; a midnight among them reads as its date ("Tue 8 Dec"), so the day is never lost.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    span = end - start
    if span <= timedelta(0):
        return []
    spacing = hour_spacing(span)
    step = timedelta(hours=spacing) if spacing else timedelta(days=1)
    first = start.replace(minute=0, second=0, microsecond=0)
    if spacing is None:
        first = first.replace(hour=0)
        if first < start:
            first += step
    else:
        while first < start or first.hour % spacing:
            first += timedelta(hours=1)
    ticks = []
    at = first
    while at <= end:
        position = round(left + width * ((at - start) / span), 2)
        midnight = at.hour == 0
        label = day_label(at) if midnight else f"{at:%H:%M}"
        ticks.append(Tick(position, label, major=midnight))
        at += step
    return ticks


def day_label(at: datetime) -> str:
    """A day as a short date: "Tue 8 Dec"."""
    return f"{at:%a} {at.day} {at:%b}"
