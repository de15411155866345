"""Workers starting together on the SQLite broker: both come up (the loser of the table race used to exit)."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import TEST_BROKER

# Without the retry about four races in five failed: three trials catch a regression all but surely.
TRIALS = 3


def _declare_when_released(broker_url: str, start_together: Barrier, outcomes: Queue[str]) -> None:
    # Imported here: the worker module reads the settings the test puts in the environment.
    from workers.celery_app import celery_app, declare_task_queues

    celery_app.conf.broker_url = broker_url
    start_together.wait()
    try:
        declare_task_queues(["celery"])
        outcomes.put("declared")
    except Exception as error:  # the outcome is what the test looks at
        outcomes.put(type(error).__name__)


@pytest.mark.skipif(TEST_BROKER != "embedded", reason="the SQLite broker's race: its stage runs it")
@pytest.mark.timeout(120)
def test_two_workers_declaring_on_a_fresh_sqlite_broker_both_succeed(
    tmp_path: Path, base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in base_settings.as_environment().items():
        monkeypatch.setenv(name, value)
    # Spawned, so nothing of this process (its pooled connections) is shared; the barrier lines the two up after
    # their imports, and they reach the broker within a millisecond of each other.
    context = multiprocessing.get_context("spawn")
    for trial in range(TRIALS):
        broker_url = f"sqla+sqlite:///{tmp_path / f'broker-{trial}.sqlite'}"
        start_together, outcomes = context.Barrier(2), context.Queue()
        racers = [
            context.Process(target=_declare_when_released, args=(broker_url, start_together, outcomes))
            for _ in range(2)
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
        assert sorted(outcomes.get(timeout=5) for _ in racers) == ["declared", "declared"], f"trial {trial}"
