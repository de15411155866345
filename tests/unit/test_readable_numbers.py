"""The SLO pages' numbers: bounded percentages, the budget as the share used, counts, durations and UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.slo.objectives import Tally, error_budget_remaining
from portal.readable import budget_used, duration, percent, plural, utc_time


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(0.999, "99.9 %"), (0.95, "95 %"), (0.99912, "99.912 %"), (0.0, "0 %"), (1.0, "100 %"), (None, "—")],
)
def test_percentages_have_no_trailing_zeros(fraction: float | None, text: str) -> None:
    assert percent(fraction) == text


def test_the_issues_overspent_budget_reads_exhausted_not_minus_99900_percent() -> None:
    # 1,000 failed checks out of 1,000 against a 99.9 % target: the budget allowed one.
    remaining = error_budget_remaining(Tally(good=0, total=1000), 0.999)
    assert remaining is not None
    assert remaining < -900

    assert budget_used(remaining) == "exhausted"


@pytest.mark.parametrize(
    ("good", "total", "text"),
    [(1000, 1000, "0 % used"), (9995, 10000, "50 % used"), (9990, 10000, "exhausted"), (9999, 10000, "10 % used")],
)
def test_the_budget_is_the_share_used_and_never_beyond_exhausted(good: int, total: int, text: str) -> None:
    assert budget_used(error_budget_remaining(Tally(good=good, total=total), 0.999)) == text


def test_no_checks_means_no_budget_figure() -> None:
    assert budget_used(error_budget_remaining(Tally(good=0, total=0), 0.999)) == "—"


def test_counts_agree_with_their_noun() -> None:
    assert plural(1, "period") == "1 period"
    assert plural(2, "period") == "2 periods"
    assert plural(0, "hour") == "0 hours"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "5 minutes"),
        (1800, "30 minutes"),
        (3600, "1 hour"),
        (21600, "6 hours"),
        (28 * 86400, "28 days"),
        (5400, "90 minutes"),
        (5430, "1.5 hours"),
        (45, "45 seconds"),
    ],
)
def test_alert_windows_read_as_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_every_instant_is_utc_to_the_second_and_says_so() -> None:
    assert utc_time("2026-12-08T01:02:03.123456+00:00") == "2026-12-08 01:02:03 UTC"
    assert utc_time(datetime(2026, 12, 8, 2, 2, 3, tzinfo=timezone(timedelta(hours=1)))) == "2026-12-08 01:02:03 UTC"
    assert utc_time(datetime(2026, 12, 8, 1, 2, 3, 999, tzinfo=UTC)) == "2026-12-08 01:02:03 UTC"
    assert utc_time(None) == "—"
