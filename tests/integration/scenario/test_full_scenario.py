"""The full scenario end to end: separate processes, a seeded workload with chaos, every invariant held.

Runs `python -m harness sandbox --scenario full` as a subprocess, small (8 subscriptions) and with a fixed seed:
on the embedded default in the SQLite stage, on PostgreSQL plus a private Redis in the PostgreSQL stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.scenario.consumers import CONNECTABLE
from harness.scenario.private_redis import redis_server_available
from tests.conftest import POSTGRES_URL, TEST_DATABASE

SUBSCRIPTIONS = 8
EVENTS = 16
SEED = 7
# A deadline for a hung run, not a performance figure: the run itself takes about two minutes.
RUN_TIMEOUT_SECONDS = 600


def run_scenario(data_dir: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the scenario and read its summary.json."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "sandbox",
            "--scenario",
            "full",
            "--subscriptions",
            str(SUBSCRIPTIONS),
            "--events",
            str(EVENTS),
            "--seed",
            str(SEED),
            "--data-dir",
            str(data_dir),
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    summary_path = data_dir / "summary.json"
    assert summary_path.exists(), completed.stdout[-4000:] + completed.stderr[-4000:]
    return completed, json.loads(summary_path.read_text())


def assert_held(completed: subprocess.CompletedProcess[str], summary: dict[str, Any], backend: str) -> None:
    failed = [item for item in summary["invariants"] if not item["passed"]]
    assert summary["error"] is None, summary["error"]
    assert not failed, json.dumps(failed, indent=2)
    assert completed.returncode == 0, completed.stdout[-4000:]
    assert summary["options"]["backend"] == backend
    names = {item["name"] for item in summary["invariants"]}
    assert names == {
        "every Marketplace operation reported",
        "every cluster's observed spec equals its desired spec",
        "every closed ledger hour accepted exactly once",
        "every subscription billed its in-window usage, to each dimension's precision",
        "no orphaned ARM resources",
        "nothing foreign touched, nothing needed missing",
        "audit trail complete",
        "expected connections approved, nothing else automatically",
        "no secrets written down",
    }
    # The run did what it claims: every purchase recorded, actions taken, usage billed, faults injected.
    assert sum(summary["subscriptions"].values()) == SUBSCRIPTIONS
    # Every customer action became exactly one operation with us (the stream ends early only if all unsubscribed).
    actions = sum(summary["workload"]["actions_sent"].values())
    assert 0 < actions <= EVENTS
    assert sum(summary["operations"].values()) == actions
    assert summary["ledger"].get("accepted", 0) > 0
    assert sum(summary["faults_injected"].values()) > 0
    assert summary["reconciliation"]["marketplace"]["status"] == "completed"
    # Each kind of consumer that can target a partner Private Link Service connected, and a spoof was tried.
    assert set(summary["workload"]["consumers_connected"]) == set(CONNECTABLE)
    assert summary["workload"]["spoofed_connections"] > 0


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)
@pytest.mark.skipif(TEST_DATABASE == "postgresql", reason="the embedded variant runs in the SQLite stage")
def test_full_scenario_with_chaos_on_the_embedded_default(tmp_path: Path) -> None:
    completed, summary = run_scenario(tmp_path / "scenario", "--backend", "embedded", "--chaos")
    assert_held(completed, summary, "embedded")


@pytest.mark.postgres_only
@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)
@pytest.mark.skipif(TEST_DATABASE != "postgresql", reason="the scaled variant runs in the PostgreSQL stage")
@pytest.mark.skipif(not redis_server_available(), reason="redis-server is not installed")
def test_full_scenario_with_chaos_on_postgresql_and_redis(tmp_path: Path) -> None:
    completed, summary = run_scenario(
        tmp_path / "scenario", "--backend", "scaled", "--postgres-url", POSTGRES_URL, "--chaos"
    )
    assert_held(completed, summary, "scaled")
