"""SLI charts as server-rendered SVG geometry: one bar per time bucket, as tall as its SLI, and the target line.

The vertical axis starts a little below the lowest of the target and the observed SLIs, not at 0: SLIs live
near 100 %, and a 0-100 % axis would flatten every dip that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.usage_chart import AXIS_MARGIN, CHART_HEIGHT, CHART_WIDTH, bar_slot

# Which count of a series point is good for each objective (see core.slo.service.cluster_time_series).
GOOD_COUNT_OF_OBJECTIVE = {"availability": "available", "latency": "fast"}
TOP_PADDING = 10


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


@dataclass(frozen=True)
class SliChart:
    """Everything the template needs to draw one objective's SLI chart and its accessible summary."""

    objective: str
    target: float
    width: int
    height: int
    axis_x: int
    axis_floor: float
    target_y: float
    bars: list[SliBar]
    bucket_minutes: float
    buckets_with_checks: int
    buckets_below_target: int


def build_sli_chart(objective: str, target: float, series: dict[str, Any]) -> SliChart:
    """Bars for the buckets of `series` (cluster_time_series output) that had probe checks; empty buckets stay gaps."""
    good_key = GOOD_COUNT_OF_OBJECTIVE[objective]
    points: list[dict[str, Any]] = series["points"]
    slis = [point[good_key] / point["total"] if point["total"] else None for point in points]
    observed = [sli for sli in slis if sli is not None]
    # Whole percent below the lowest value of interest, so the target line and every bar stay on the chart.
    axis_floor = max(0.0, math.floor(min([target, *observed]) * 100 - 1) / 100)
    scale = (CHART_HEIGHT - TOP_PADDING) / (1.0 - axis_floor)
    bars = []
    for index, (point, sli) in enumerate(zip(points, slis, strict=True)):
        if sli is None:
            continue
        x, width = bar_slot(index, len(points))
        height = (sli - axis_floor) * scale
        started = datetime.fromisoformat(point["start"])
        bars.append(
            SliBar(
                x=x,
                width=width,
                y=round(CHART_HEIGHT - height, 2),
                height=round(height, 2),
                sli=sli,
                met=sli >= target,
                label=f"{started:%Y-%m-%d %H:%M} UTC: {point[good_key]} of {point['total']} checks good "
                f"({sli:.3%}, target {target:.3%})",
            )
        )
    return SliChart(
        objective=objective,
        target=target,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        axis_x=AXIS_MARGIN,
        axis_floor=axis_floor,
        target_y=round(CHART_HEIGHT - (target - axis_floor) * scale, 2),
        bars=bars,
        bucket_minutes=series["bucket_minutes"],
        buckets_with_checks=len(bars),
        buckets_below_target=sum(1 for bar in bars if not bar.met),
    )
