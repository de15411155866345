"""Usage charts as server-rendered SVG geometry: one bar per ledger hour, included part below, billed part above."""

from __future__ import annotations

from dataclasses import dataclass

from core.usage.queries import HourlyUsage

CHART_WIDTH = 640
CHART_HEIGHT = 200
AXIS_MARGIN = 48
BAR_GAP = 2


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


@dataclass(frozen=True)
class UsageChart:
    """Everything the template needs to draw one dimension's chart and its accessible summary."""

    dimension_id: str
    title: str
    unit: str
    width: int
    height: int
    axis_x: int
    peak: float
    bars: list[ChartBar]
    total_measured: float
    total_included: float
    total_billed: float


def bar_slot(index: int, count: int) -> tuple[float, float]:
    """The x and width of bar `index` of `count` across the plot area (shared by every bar chart)."""
    slot = (CHART_WIDTH - AXIS_MARGIN) / max(count, 1)
    return round(AXIS_MARGIN + index * slot + BAR_GAP / 2, 2), round(max(slot - BAR_GAP, 1.0), 2)


def build_usage_chart(dimension_id: str, title: str, unit: str, hours: list[HourlyUsage]) -> UsageChart:
    """Scale the hours to the chart: height is proportional to the measured quantity of the busiest hour."""
    peak = max((hour.measured for hour in hours), default=0.0)
    scale = (CHART_HEIGHT - 10) / peak if peak > 0 else 0.0
    bars = []
    for index, hour in enumerate(hours):
        # The included part is what the plan covers of what was measured; the billed part is the ledger's overage.
        covered = min(hour.measured, hour.included)
        included_height = covered * scale
        billed_height = hour.billed * scale
        x, width = bar_slot(index, len(hours))
        bars.append(
            ChartBar(
                x=x,
                width=width,
                included_y=round(CHART_HEIGHT - included_height, 2),
                included_height=round(included_height, 2),
                billed_y=round(CHART_HEIGHT - included_height - billed_height, 2),
                billed_height=round(billed_height, 2),
                label=f"{hour.hour_start:%Y-%m-%d %H:00} UTC: measured {hour.measured:g}, included {covered:g}, "
                f"billed {hour.billed:g} {unit} ({hour.status})",
            )
        )
    return UsageChart(
        dimension_id=dimension_id,
        title=title,
        unit=unit,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        axis_x=AXIS_MARGIN,
        peak=peak,
        bars=bars,
        total_measured=round(sum(hour.measured for hour in hours), 6),
        total_included=round(sum(min(hour.measured, hour.included) for hour in hours), 6),
        total_billed=round(sum(hour.billed for hour in hours), 6),
    )
