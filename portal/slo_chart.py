"""SLI charts as server-rendered SVG geometry: one bar per time bucket, as tall as its SLI, and the target line.

The vertical axis starts a little below the lowest of the target and the observed SLIs, not at 0: SLIs live
near 100 %, and a 0-100 % axis would flatten every dip that matters. Its ticks are round percentages; the time
axis names UTC hours. A bucket whose checks all failed (0 %) still shows as a short bar in the "missed" colour
with its value written above, so the worst hour is never the invisible one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from portal.chart_axes import Tick, nice_ticks, time_ticks
from portal.readable import percent, plural
from portal.usage_chart import AXIS_MARGIN, CHART_HEIGHT, CHART_WIDTH, PLOT_BOTTOM, PLOT_TOP, bar_slot

# Which count of a series point is good for each objective (see core.slo.service.cluster_time_series).
GOOD_COUNT_OF_OBJECTIVE = {"availability": "available", "latency": "fast"}
# The least height of a bucket with checks, so that an SLI on the axis floor (0 %) is still seen.
MINIMUM_BAR_HEIGHT = 3.0


@dataclass(frozen=True)
class SliBar:
    """One bucket with probe checks: its SLI (good / total) and where to draw it."""

    x: float
    width: float
    y: float
    height: float
    sli: float
    met: bool
    label: str
    # Written above the bar for buckets below target, so the bad ones read without hovering.
    value_label: str | None
    value_y: float


@dataclass(frozen=True)
class SliChart:
    """Everything the template needs to draw one objective's SLI chart and its accessible summary."""

    objective: str
    target: float
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    axis_floor: float
    target_y: float
    value_ticks: list[Tick]
    time_ticks: list[Tick]
    bars: list[SliBar]
    bucket_minutes: float
    buckets_with_checks: int
    buckets_below_target: int
    caption: str


def bucket_name(minutes: float) -> str:
    """What one bucket is called in words: "hour", "30 minutes"."""
    if minutes == 60:
        return "hour"
    if minutes % 60 == 0:
        return f"{int(minutes // 60)} hours"
    return f"{minutes:g} minutes"


def build_sli_chart(objective: str, target: float, series: dict[str, Any]) -> SliChart:
    """Bars for the buckets of `series` (cluster_time_series output) that had probe checks; empty buckets stay gaps."""
    good_key = GOOD_COUNT_OF_OBJECTIVE[objective]
    points: list[dict[str, Any]] = series["points"]
    bucket = timedelta(minutes=series["bucket_minutes"])
    slis = [point[good_key] / point["total"] if point["total"] else None for point in points]
    observed = [sli for sli in slis if sli is not None]
    # Round percentages below the lowest value of interest, so the target line and every bar stay on the chart.
    lowest = min([target, *observed]) * 100
    ticks = [value for value in nice_ticks(max(lowest - 1, 0.0), 100.0) if value <= 100]
    axis_floor = ticks[0] / 100
    scale = (PLOT_BOTTOM - PLOT_TOP) / (1.0 - axis_floor)
    bars = []
    for index, (point, sli) in enumerate(zip(points, slis, strict=True)):
        if sli is None:
            continue
        x, width = bar_slot(index, len(points))
        height = max((sli - axis_floor) * scale, MINIMUM_BAR_HEIGHT)
        started = datetime.fromisoformat(point["start"])
        met = sli >= target
        bars.append(
            SliBar(
                x=x,
                width=width,
                y=round(PLOT_BOTTOM - height, 2),
                height=round(height, 2),
                sli=sli,
                met=met,
                label=f"{started:%Y-%m-%d %H:%M} UTC: {point[good_key]} of {point['total']} checks good "
                f"({percent(sli)}, target {percent(target)})",
                value_label=None if met else percent(sli, decimals=1),
                value_y=round(PLOT_BOTTOM - height - 4, 2),
            )
        )
    start = datetime.fromisoformat(points[0]["start"]) if points else None
    below = sum(1 for bar in bars if not bar.met)
    noun = "hour" if series["bucket_minutes"] == 60 else "period"
    caption = (
        f"{objective.capitalize()} per {bucket_name(series['bucket_minutes'])}: {plural(len(bars), noun)} with "
        f"probe checks, {below} below the {percent(target)} target"
    )
    return SliChart(
        objective=objective,
        target=target,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=AXIS_MARGIN,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_BOTTOM,
        axis_floor=axis_floor,
        target_y=round(PLOT_BOTTOM - (target - axis_floor) * scale, 2),
        value_ticks=[
            Tick(round(PLOT_BOTTOM - (value / 100 - axis_floor) * scale, 2), f"{value:g} %") for value in ticks
        ],
        time_ticks=time_ticks(start, start + bucket * len(points), AXIS_MARGIN, CHART_WIDTH - AXIS_MARGIN)
        if start
        else [],
        bars=bars,
        bucket_minutes=series["bucket_minutes"],
        buckets_with_checks=len(bars),
        buckets_below_target=below,
        caption=caption,
    )
