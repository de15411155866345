"""How long the Marketplace emulator's webhook sender waits when the publisher answers with Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from emulators.marketplace.webhooks import MAX_RETRY_AFTER_SECONDS, retry_after_seconds


def test_delta_seconds_are_taken_as_they_are() -> None:
    assert retry_after_seconds("1") == 1.0
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds("0") == 0.0


def test_an_http_date_becomes_the_time_until_then() -> None:
    in_ten_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert retry_after_seconds(in_ten_seconds) == pytest.approx(10, abs=1.5)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past


@pytest.mark.parametrize("value", [None, "", "soon", "-", "nan"])
def test_a_missing_or_unreadable_header_leaves_the_backoff_in_charge(value: str | None) -> None:
    assert retry_after_seconds(value) is None


def test_a_publisher_cannot_park_a_delivery_forever_or_ask_for_negative_time() -> None:
    assert retry_after_seconds("86400") == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds("inf") == MAX_RETRY_AFTER_SECONDS
