"""The arithmetic of objectives: attainment, error budget and burn rate, and the multi-window alert rules.

Burn rate = the bad fraction in a window divided by the bad fraction the objective allows; 1 spends the
budget exactly over the SLO window. An alert fires only when a long and a short window both burn
faster than the rule's threshold: the long one proves it is significant, the short one that it is
still happening (the usual multi-window, multi-burn-rate scheme).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class BurnRateRule:
    """Fire when both windows burn at least `threshold` times the sustainable rate."""

    severity: str
    long_window: timedelta
    short_window: timedelta
    threshold: float


# 2% of a 30-day budget in one hour pages; 5% in six hours opens a ticket.
BURN_RATE_RULES = (
    BurnRateRule("page", timedelta(hours=1), timedelta(minutes=5), 14.4),
    BurnRateRule("ticket", timedelta(hours=6), timedelta(minutes=30), 6.0),
)


@dataclass(frozen=True)
class Tally:
    """Good events out of all events in some window."""

    good: int
    total: int

    @property
    def bad(self) -> int:
        return self.total - self.good

    @property
    def attainment(self) -> float | None:
        return self.good / self.total if self.total else None


def burn_rate(tally: Tally, objective: float) -> float | None:
    """How fast the window spends the error budget (None without events)."""
    if not tally.total:
        return None
    return (tally.bad / tally.total) / (1.0 - objective)


def error_budget_remaining(tally: Tally, objective: float) -> float | None:
    """The share of the window's error budget left: 1 untouched, 0 spent, negative overspent."""
    if not tally.total:
        return None
    allowed_bad = (1.0 - objective) * tally.total
    return 1.0 - tally.bad / allowed_bad


def rule_fires(rule: BurnRateRule, long_tally: Tally, short_tally: Tally, objective: float) -> bool:
    """Both windows have events and burn at least the threshold."""
    long_rate = burn_rate(long_tally, objective)
    short_rate = burn_rate(short_tally, objective)
    if long_rate is None or short_rate is None:
        return False
    slowest = min(long_rate, short_rate)
    # Inclusive threshold; isclose absorbs binary rounding of fractions like 0.0144 / 0.001.
    return slowest >= rule.threshold or math.isclose(slowest, rule.threshold, rel_tol=1e-9)
