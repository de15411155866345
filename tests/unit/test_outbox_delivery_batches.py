"""How the relay groups due outbox rows into broker messages."""

from __future__ import annotations

from core.outbox.models import OutboxMessage
from workers.relay import delivery_batches


def _rows(*task_names: str) -> list[OutboxMessage]:
    return [OutboxMessage(id=index, task_name=name, arguments={}) for index, name in enumerate(task_names, start=1)]


def _ids(batches: list[list[OutboxMessage]]) -> list[list[int | None]]:
    return [[row.id for row in batch] for batch in batches]


def test_rows_of_one_task_share_messages_and_other_tasks_get_their_own() -> None:
    rows = _rows("clusters.reconcile", "system.pipeline_probe", "clusters.reconcile", "clusters.reconcile")
    assert _ids(delivery_batches(rows, 8)) == [[1, 3, 4], [2]]


def test_a_task_with_more_rows_than_a_message_holds_is_spread_evenly_in_id_order() -> None:
    rows = _rows(*["clusters.reconcile"] * 10)
    batches = _ids(delivery_batches(rows, 8))
    assert [len(batch) for batch in batches] == [5, 5]
    assert all(batch == sorted(batch) for batch in batches)  # type: ignore[type-var]
    assert sorted(row for batch in batches for row in batch) == list(range(1, 11))  # type: ignore[type-var]


def test_size_one_sends_every_row_alone() -> None:
    rows = _rows("clusters.reconcile", "clusters.reconcile", "system.pipeline_probe")
    assert _ids(delivery_batches(rows, 1)) == [[1], [2], [3]]


def test_no_rows_make_no_messages() -> None:
    assert delivery_batches([], 8) == []


def test_rows_of_a_task_with_a_deadline_travel_alone_so_none_waits_for_the_others() -> None:
    rows = _rows("subscriptions.process_operation", "clusters.reconcile", "subscriptions.process_operation")
    batches = delivery_batches(rows, 8, alone=frozenset({"subscriptions.process_operation"}))
    assert _ids(batches) == [[1], [3], [2]]
