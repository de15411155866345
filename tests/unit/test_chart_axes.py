"""Chart axes people can read: round value ticks, hour and day ticks in UTC, and the usage and SLI chart geometry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.usage.queries import HourlyUsage
from portal.chart_axes import format_number, nice_step, nice_ticks, time_ticks
from portal.slo_chart import MINIMUM_BAR_HEIGHT, build_sli_chart
from portal.usage_chart import PLOT_BOTTOM, build_usage_chart

NOW = datetime(2026, 12, 8, 14, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 1475.15, [0, 500, 1000, 1500]),  # the axis maximum becomes a round one
        (0, 25, [0, 5, 10, 15, 20, 25]),
        (0, 7, [0, 2, 4, 6, 8]),
        (0, 0.3, [0, 0.1, 0.2, 0.3]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1]),  # nothing measured still draws an axis
        (94, 100, [94, 96, 98, 100]),
        (98.9, 100, [98.75, 99, 99.25, 99.5, 99.75, 100]),
    ],
)
def test_value_ticks_are_round_numbers_that_cover_the_data(low: float, high: float, expected: list[float]) -> None:
    ticks = nice_ticks(low, high)

    assert ticks == pytest.approx(expected)
    assert ticks[0] <= low
    assert ticks[-1] >= high


def test_a_tick_step_is_one_two_two_and_a_half_or_five_times_a_power_of_ten() -> None:
    for span in (0.07, 1, 3, 9.9, 13, 77, 420, 1475.15, 98_765):
        step = nice_step(span, 5)
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1, 2, 2.5, 5, 10), (span, step)
        assert span / step <= 5 + 1e-9


@pytest.mark.parametrize(
    ("value", "text"),
    [(1475.15, "1,475.15"), (12.0, "12"), (0.5, "0.5"), (1234567.891, "1,234,567.89"), (0, "0"), (0.004, "0.004")],
)
def test_quantities_read_without_float_noise(value: float, text: str) -> None:
    assert format_number(value) == text


def test_a_day_long_axis_has_hour_ticks_and_names_the_day_at_midnight() -> None:
    start = datetime(2026, 12, 7, 13, 27, tzinfo=UTC)

    ticks = time_ticks(start, start + timedelta(hours=24), left=64, width=576)

    assert [tick.label for tick in ticks] == [
        "15:00",
        "18:00",
        "21:00",
        "Tue 8 Dec",
        "03:00",
        "06:00",
        "09:00",
        "12:00",
    ]
    assert [tick.major for tick in ticks].count(True) == 1
    # Placed by time: 15:00 is 93 minutes after the start of a 1,440-minute axis.
    assert ticks[0].position == pytest.approx(64 + 576 * 93 / 1440, abs=0.01)
    assert all(64 <= tick.position <= 640 for tick in ticks)


def test_a_week_long_axis_has_one_tick_a_day_at_midnight_utc() -> None:
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)

    ticks = time_ticks(start, start + timedelta(days=7), left=0, width=700)

    assert [tick.label for tick in ticks] == [
        f"{day:%a} {day.day} Dec" for day in (datetime(2026, 12, number, tzinfo=UTC) for number in range(2, 9))
    ]


def test_an_instant_in_another_zone_is_placed_and_named_in_utc() -> None:
    start = datetime(2026, 12, 7, 23, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))

    ticks = time_ticks(start, start + timedelta(hours=3), left=0, width=300)

    assert [tick.label for tick in ticks] == ["23:00", "Tue 8 Dec", "01:00", "02:00"]


def _hours(*measured: float, included: float = 10.0) -> list[HourlyUsage]:
    first = NOW.replace(minute=0) - timedelta(hours=len(measured))
    return [
        HourlyUsage(first + timedelta(hours=index), value, included, max(value - included, 0.0), "accepted")
        for index, value in enumerate(measured)
    ]


def test_the_usage_chart_ends_its_value_axis_on_a_round_number_and_draws_the_allowance() -> None:
    chart = build_usage_chart(
        "capacity_tib", "Stored capacity", "TiB", _hours(12, 25, 14), end=NOW, earliest=NOW - timedelta(days=7)
    )

    assert [tick.label for tick in chart.value_ticks] == ["0", "5", "10", "15", "20", "25"]
    assert chart.value_ticks[-1].position == chart.plot_top
    assert chart.included_label == "included in your plan: 10 TiB per hour"
    # The allowance line sits at 10 on a 0-25 axis.
    assert chart.included_y == pytest.approx(PLOT_BOTTOM - (PLOT_BOTTOM - chart.plot_top) * 10 / 25, abs=0.01)
    # At least a day of time axis, so three hours do not stretch across the chart.
    assert len(chart.time_ticks) >= 4
    assert [bar.value_label for bar in chart.bars] == ["12", "25", "14"]
    assert [row.billed for row in chart.rows] == ["2", "15", "4"]
    assert chart.rows[0].hour.endswith("UTC")


def test_bars_stand_at_their_hour_so_a_gap_in_usage_stays_a_gap() -> None:
    hours = _hours(5, 6, 7, 8)
    del hours[1]

    chart = build_usage_chart("requests", "Requests", "millions", hours, end=NOW, earliest=NOW - timedelta(days=7))

    xs = [bar.x for bar in chart.bars]
    assert xs[1] - xs[0] == pytest.approx(2 * (xs[2] - xs[1]), abs=0.05)


def test_a_week_of_hours_labels_only_the_busiest_bar() -> None:
    measured = [float(10 + index % 24) for index in range(24 * 7)]
    chart = build_usage_chart(
        "transfer", "Transfer", "GiB", _hours(*measured), end=NOW, earliest=NOW - timedelta(days=7)
    )

    labelled = [bar.value_label for bar in chart.bars if bar.value_label]
    assert set(labelled) == {"33"}
    assert all(tick.label[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"} for tick in chart.time_ticks)


def _series(*buckets: tuple[int, int]) -> dict[str, object]:
    start = NOW - timedelta(hours=len(buckets))
    return {
        "bucket_minutes": 60,
        "points": [
            {"start": (start + timedelta(hours=index)).isoformat(), "total": total, "available": good, "fast": good}
            for index, (good, total) in enumerate(buckets)
        ],
    }


def test_an_sli_of_zero_is_still_a_visible_bar_with_its_value_written() -> None:
    chart = build_sli_chart("availability", 0.999, _series((20, 20), (0, 10), (0, 0), (9, 10)))

    assert [tick.label for tick in chart.value_ticks] == ["0 %", "20 %", "40 %", "60 %", "80 %", "100 %"]
    zero = next(bar for bar in chart.bars if bar.sli == 0)
    assert zero.height >= MINIMUM_BAR_HEIGHT
    assert zero.value_label == "0 %"
    assert [bar.value_label for bar in chart.bars] == [None, "0 %", "90 %"]
    assert chart.caption == "Availability per hour: 3 hours with probe checks, 2 below the 99.9 % target"


def test_one_bucket_is_one_hour_not_one_hours() -> None:
    chart = build_sli_chart("latency", 0.99, _series((0, 0), (10, 10)))

    assert chart.caption == "Latency per hour: 1 hour with probe checks, 0 below the 99 % target"
    assert chart.axis_floor == pytest.approx(0.98)
