"""Numbers, counts, durations and instants as the portal's pages write them.

Percentages are bounded and short ("99.9 %", not "99.900 %"), an error budget is shown as the share used, with
"exhausted" past 100 % (never "-99900 %"), counts agree with their noun, and every instant is UTC, labelled,
to the second.
"""

from __future__ import annotations

from datetime import UTC, datetime

EXHAUSTED = "exhausted"
NO_DATA = "—"


def percent(fraction: float | None, decimals: int = 3) -> str:
    """A fraction as a percentage with up to `decimals` decimals and no trailing zeros: 0.999 -> "99.9 %"."""
    if fraction is None:
        return NO_DATA
    text = f"{fraction * 100:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text} %"


def budget_used(remaining: float | None) -> str:
    """The share of an error budget spent, from the share left (1 untouched, negative overspent).

    Past 100 % the number stops meaning anything to a reader (a budget spent 1,000 times is as gone as one spent
    once): it reads "exhausted".
    """
    if remaining is None:
        return NO_DATA
    used = 1.0 - remaining
    if used >= 1.0 - 1e-9:  # spent exactly, give or take float noise in the allowance
        return EXHAUSTED
    # Never "100 % used" for a budget not yet spent: the last tenth of a percent still counts.
    return f"{percent(min(max(used, 0.0), 0.999), decimals=1)} used"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """ "1 period", "2 periods"."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def duration(seconds: float) -> str:
    """A span in its natural unit: "5 minutes", "1 hour", "6 hours", "3 days", "45 seconds"."""
    for unit_seconds, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= unit_seconds and seconds % unit_seconds == 0:
            return plural(int(seconds // unit_seconds), name)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return plural(round(seconds), "second")


def utc_time(value: datetime | str | None) -> str:
    """An instant (or its ISO text) in UTC to the second, labelled: "2026-12-08 14:03:07 UTC"."""
    if value is None or value == "":
        return NO_DATA
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)  # our columns hold UTC
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
