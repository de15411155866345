"""The billable window rule on its own: boundaries, missing facts, and the offer's suspension policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.window import BillableWindow, Suspension, WindowRefusal

READY = datetime(2026, 12, 7, 16, 19, 21, tzinfo=UTC)
ACTIVATED = datetime(2026, 12, 7, 16, 19, 53, tzinfo=UTC)
SUSPENDED = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
REINSTATED = datetime(2026, 12, 7, 19, 30, tzinfo=UTC)
UNSUBSCRIBED = datetime(2026, 12, 7, 22, 5, tzinfo=UTC)


def window(*, waive: bool = True, **changes: object) -> BillableWindow:
    facts: dict[str, object] = {
        "cluster_id": "c",
        "first_ready_at": READY,
        "activated_at": ACTIVATED,
        "requires_activation": True,
        "unsubscribed_at": UNSUBSCRIBED,
        "suspensions": (Suspension(SUSPENDED, REINSTATED),),
        "waive_suspended": waive,
    }
    facts.update(changes)
    return BillableWindow(**facts)  # type: ignore[arg-type]


def reason_of(rule: BillableWindow, moment: datetime) -> str | None:
    refusal = rule.refusal(moment)
    return None if refusal is None else refusal.split(":")[0]


def test_the_window_opens_at_the_later_of_ready_and_activation_and_closes_at_unsubscribe() -> None:
    rule = window()
    assert rule.opens_at == ACTIVATED
    assert reason_of(rule, READY - timedelta(seconds=1)) == WindowRefusal.NOT_READY
    assert reason_of(rule, ACTIVATED - timedelta(microseconds=1)) == WindowRefusal.NOT_ACTIVATED
    assert rule.refusal(ACTIVATED) is None
    assert rule.refusal(UNSUBSCRIBED - timedelta(microseconds=1)) is None
    assert reason_of(rule, UNSUBSCRIBED) == WindowRefusal.UNSUBSCRIBED


def test_activation_before_the_cluster_was_ready_opens_at_ready() -> None:
    rule = window(activated_at=READY - timedelta(hours=2))
    assert rule.opens_at == READY
    assert reason_of(rule, READY - timedelta(minutes=1)) == WindowRefusal.NOT_READY


def test_nothing_is_billable_before_both_facts_exist() -> None:
    assert window(activated_at=None).opens_at is None
    assert reason_of(window(activated_at=None), REINSTATED) == WindowRefusal.NOT_ACTIVATED
    assert reason_of(window(first_ready_at=None), REINSTATED) == WindowRefusal.NOT_READY
    # A managed application has no Marketplace activation: its first ready time opens the window.
    assert window(activated_at=None, requires_activation=False).refusal(READY) is None


def test_suspension_follows_the_offer_policy() -> None:
    waived = window(waive=True)
    assert reason_of(waived, SUSPENDED) == WindowRefusal.SUSPENDED
    assert "inactive_subscription_usage=waive" in (waived.refusal(SUSPENDED) or "")
    assert waived.refusal(REINSTATED) is None
    assert window(waive=False).refusal(SUSPENDED) is None
    still_suspended = window(suspensions=(Suspension(SUSPENDED, None),), unsubscribed_at=None)
    assert reason_of(still_suspended, SUSPENDED + timedelta(days=3)) == WindowRefusal.SUSPENDED
