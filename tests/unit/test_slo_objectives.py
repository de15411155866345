"""Error budget and burn-rate arithmetic, and the multi-window rule."""

from __future__ import annotations

import pytest

from core.slo.objectives import BURN_RATE_RULES, Tally, burn_rate, error_budget_remaining, rule_fires

PAGE = next(rule for rule in BURN_RATE_RULES if rule.severity == "page")


def test_burn_rate_is_the_bad_fraction_over_the_allowed_fraction() -> None:
    assert burn_rate(Tally(good=990, total=1000), 0.99) == pytest.approx(1.0)
    assert burn_rate(Tally(good=1000, total=1000), 0.999) == 0.0
    assert burn_rate(Tally(good=0, total=0), 0.999) is None


def test_error_budget_remaining() -> None:
    assert error_budget_remaining(Tally(good=995, total=1000), 0.99) == pytest.approx(0.5)
    assert error_budget_remaining(Tally(good=980, total=1000), 0.99) == pytest.approx(-1.0)
    assert error_budget_remaining(Tally(good=0, total=0), 0.99) is None


def test_a_rule_needs_both_windows_burning() -> None:
    burning = Tally(good=80, total=100)  # burn 200 at 99.9%
    calm = Tally(good=100, total=100)
    assert rule_fires(PAGE, burning, burning, 0.999)
    assert not rule_fires(PAGE, burning, calm, 0.999)  # it stopped: the short window is clean
    assert not rule_fires(PAGE, calm, burning, 0.999)  # a blip: the long window is not significant
    assert not rule_fires(PAGE, burning, Tally(good=0, total=0), 0.999)  # no recent evidence


def test_the_threshold_is_inclusive() -> None:
    # 14.4 x 0.001 = 1.44% bad: exactly at the threshold fires, just under does not.
    at_threshold = Tally(good=98_560, total=100_000)
    under = Tally(good=98_561, total=100_000)
    assert rule_fires(PAGE, at_threshold, at_threshold, 0.999)
    assert not rule_fires(PAGE, under, under, 0.999)
