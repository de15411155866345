"""Usage charts as server-rendered SVG geometry: one bar per ledger hour on a UTC time axis.

Each bar stacks the part the plan includes under the part billed above it; the value axis ends on a round number
with labelled ticks and the dimension's unit; the plan's hourly allowance is a labelled line; a table of the same
hours is the accessible alternative (and the way to read exact values without hovering).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.usage.queries import HourlyUsage
from portal.chart_axes import Tick, format_number, nice_ticks, time_ticks

CHART_WIDTH = 640
CHART_HEIGHT = 240
AXIS_MARGIN = 64  # room for the value labels left of the plot
PLOT_TOP = 36  # room above the plot for the unit and the allowance (left, right) and the top bar's label
PLOT_BOTTOM = 200  # the time axis; its labels go below
BAR_GAP = 2
# The width of one character of a bar's value label (10 px type): a label wider than its bar is left out, so
# narrow bars keep only the busiest hour's label.
LABEL_CHARACTER_WIDTH = 6
MINIMUM_SPAN = timedelta(hours=24)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class ChartBar:
    """One hour: the included part (billed at no extra charge) and the billed overage stacked on it."""

    x: float
    width: float
    included_y: float
    included_height: float
    billed_y: float
    billed_height: float
    label: str
    # The measured value written above the bar, or None where bars are too narrow (all but the busiest hour).
    value_label: str | None
    value_y: float


@dataclass(frozen=True)
class UsageRow:
    """One hour of the table alternative."""

    hour: str
    measured: str
    included: str
    billed: str
    status: str


@dataclass(frozen=True)
class UsageChart:
    """Everything the template needs to draw one dimension's chart, its axes and its table."""

    dimension_id: str
    title: str
    unit: str
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    value_ticks: list[Tick]
    time_ticks: list[Tick]
    bars: list[ChartBar]
    rows: list[UsageRow]
    # The plan's allowance per hour as a line across the plot (None when it changed within the window).
    included_y: float | None
    included_label: str | None
    total_measured: str
    total_included: str
    total_billed: str


def bar_slot(index: int, count: int) -> tuple[float, float]:
    """The x and width of bar `index` of `count` across the plot area (shared by every bar chart)."""
    slot = (CHART_WIDTH - AXIS_MARGIN) / max(count, 1)
    gap = BAR_GAP if slot > 3 * BAR_GAP else slot / 4
    return round(AXIS_MARGIN + index * slot + gap / 2, 2), round(max(slot - gap, 0.5), 2)


def chart_window(hours: list[HourlyUsage], end: datetime, earliest: datetime) -> tuple[datetime, datetime]:
    """The hours the time axis spans: up to `end`, back to the first hour with usage, at least a day, not before
    `earliest` (the page's window)."""
    end = max(end, hours[-1].hour_start + HOUR) if hours else end
    start = min(hours[0].hour_start if hours else end, end - MINIMUM_SPAN)
    return max(start, earliest.replace(minute=0, second=0, microsecond=0)), end


def build_usage_chart(
    dimension_id: str, title: str, unit: str, hours: list[HourlyUsage], *, end: datetime, earliest: datetime
) -> UsageChart:
    """Place each hour at its time and scale it to the axis' round maximum.

    `end` is the start of the current hour (the newest hour that can be closed ends there); `earliest` the start
    of the page's window.
    """
    start, end = chart_window(hours, end.replace(minute=0, second=0, microsecond=0), earliest)
    slots = max(round((end - start) / HOUR), 1)
    allowances = {hour.included for hour in hours}
    allowance = allowances.pop() if len(allowances) == 1 else None
    peak = max((hour.measured for hour in hours), default=0.0)
    ticks = nice_ticks(0.0, max(peak, allowance or 0.0))
    scale = (PLOT_BOTTOM - PLOT_TOP) / ticks[-1]
    bars = []
    for hour in hours:
        index = round((hour.hour_start - start) / HOUR)
        if not 0 <= index < slots:
            continue
        # The included part is what the plan covers of what was measured; the billed part is the ledger's overage.
        covered = min(hour.measured, hour.included)
        included_height = covered * scale
        billed_height = hour.billed * scale
        x, width = bar_slot(index, slots)
        top = PLOT_BOTTOM - included_height - billed_height
        value_text = format_number(hour.measured)
        labelled = hour.measured == peak or len(value_text) * LABEL_CHARACTER_WIDTH <= width + BAR_GAP
        bars.append(
            ChartBar(
                x=x,
                width=width,
                included_y=round(PLOT_BOTTOM - included_height, 2),
                included_height=round(included_height, 2),
                billed_y=round(top, 2),
                billed_height=round(billed_height, 2),
                label=f"{hour_label(hour.hour_start)}: measured {format_number(hour.measured)} {unit}, included "
                f"{format_number(covered)}, billed {format_number(hour.billed)} ({hour.status})",
                value_label=value_text if labelled and hour.measured > 0 else None,
                value_y=round(top - 4, 2),
            )
        )
    rows = [
        UsageRow(
            hour=hour_label(hour.hour_start),
            measured=format_number(hour.measured),
            included=format_number(min(hour.measured, hour.included)),
            billed=format_number(hour.billed),
            status=hour.status,
        )
        for hour in hours
    ]
    return UsageChart(
        dimension_id=dimension_id,
        title=title,
        unit=unit,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=AXIS_MARGIN,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_BOTTOM,
        value_ticks=[Tick(round(PLOT_BOTTOM - value * scale, 2), format_number(value)) for value in ticks],
        time_ticks=time_ticks(start, end, AXIS_MARGIN, CHART_WIDTH - AXIS_MARGIN),
        bars=bars,
        rows=rows,
        included_y=round(PLOT_BOTTOM - allowance * scale, 2) if allowance else None,
        included_label=f"included in your plan: {format_number(allowance)} {unit} per hour" if allowance else None,
        total_measured=format_number(sum(hour.measured for hour in hours)),
        total_included=format_number(sum(min(hour.measured, hour.included) for hour in hours)),
        total_billed=format_number(sum(hour.billed for hour in hours)),
    )


def hour_label(start: datetime) -> str:
    """An hour of the ledger: "2026-12-08 14:00-15:00 UTC"."""
    return f"{start:%Y-%m-%d %H:00}-{start + HOUR:%H:00} UTC"
