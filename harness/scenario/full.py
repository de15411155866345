"""`python -m harness sandbox --scenario full`: the whole system as separate processes, under a seeded workload
and (optionally) chaos, with the invariants checked at the end.

Processes: the emulators (one process of their own), two API processes sharing one port through SO_REUSEPORT
(killing one leaves the other serving the same URL, which is what Marketplace and the browsers know), two
workers and the scheduler. Backend: PostgreSQL (a schema made for the run and dropped after it) plus a private
redis-server when both are there, else the embedded default (SQLite and the SQLite broker).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import sqlalchemy as sa
import typer
from pydantic import SecretStr

from billing.window import waiving_offer_ids
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.settings import Settings
from harness.emulator_environment import settings_for_emulators
from harness.processes import ProcessGroup, free_port, wait_until_ready
from harness.scenario import invariants
from harness.scenario.billing_proof import billed_as_provided
from harness.scenario.invariants import InvariantResult
from harness.scenario.private_redis import PrivateRedis, redis_server_available
from harness.scenario.report import build_summary, print_summary, write_summary
from harness.scenario.workload import ScenarioError, Workload, wait_for

Backend = Literal["auto", "embedded", "scaled"]
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESOURCE_GROUP_PREFIX = "rg-scenario-"
PRODUCT_PROCESSES = ("api-1", "api-2", "worker-1", "worker-2", "beat")
TRACES_FILE = "traces.jsonl"


@dataclass(frozen=True)
class ScenarioOptions:
    """What the run does and on what."""

    data_dir: Path
    seed: int = 20261128
    subscriptions: int = 50
    events: int | None = None  # customer actions after provisioning; default three per subscription
    hours: float = 4.0  # simulated hours of usage metered
    chaos: bool = True
    chaos_intensity: float = 1.0
    backend: Backend = "auto"
    postgres_url: str = DEFAULT_POSTGRES_URL
    phase_timeout_seconds: float | None = None  # deadline of each waiting phase; default grows with the size

    @property
    def phase_deadline(self) -> float:
        """Seconds each waiting phase may take: 5 minutes, or 6 s per subscription for larger runs."""
        return self.phase_timeout_seconds or max(300.0, 6.0 * self.subscriptions)

    @property
    def event_count(self) -> int:
        """Customer actions to take."""
        return self.events if self.events is not None else 3 * self.subscriptions


def say(message: str) -> None:
    """A progress line."""
    typer.secho(f"[scenario {time.strftime('%H:%M:%S')}] {message}", fg=typer.colors.CYAN)


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


class ScenarioBackend:
    """The run's database and broker: a PostgreSQL schema and a private Redis, or SQLite files under data_dir."""

    def __init__(self, options: ScenarioOptions) -> None:
        self.options = options
        self.name = self._choose(options)
        self.schema: str | None = None
        self.redis: PrivateRedis | None = None
        self.database_url = ""
        self.observer_database_url = ""
        self.broker_url = ""

    @staticmethod
    def _choose(options: ScenarioOptions) -> Literal["embedded", "scaled"]:
        if options.backend != "auto":
            return options.backend
        postgres = sa.make_url(options.postgres_url)
        if _reachable(postgres.host or "127.0.0.1", postgres.port or 5432) and redis_server_available():
            return "scaled"
        return "embedded"

    def start(self) -> None:
        """Create the schema and start Redis (scaled), or nothing (embedded: the settings' defaults)."""
        if self.name == "embedded":
            return
        run_id = uuid.uuid4().hex[:8]
        self.schema = f"scenario_{run_id}"
        admin = make_engine(self.options.postgres_url)
        try:
            with admin.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        finally:
            admin.dispose()
        # application_name marks the control plane's connections: chaos drops only those, never the observer's.
        self.database_url = self._schema_url(f"controlplane-scenario-{run_id}")
        self.observer_database_url = self._schema_url(f"controlplane-scenario-observer-{run_id}")
        self.redis = PrivateRedis(self.options.data_dir / "redis")
        self.redis.start()
        self.broker_url = self.redis.url

    def _schema_url(self, application_name: str) -> str:
        return (
            sa.make_url(self.options.postgres_url)
            .update_query_dict({"options": f"-csearch_path={self.schema}", "application_name": application_name})
            .render_as_string(hide_password=False)
        )

    def stop(self) -> None:
        """Stop Redis and drop the schema."""
        if self.redis is not None:
            self.redis.stop()
        if self.schema is not None:
            admin = make_engine(self.options.postgres_url)
            try:
                with admin.begin() as connection:
                    connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            finally:
                admin.dispose()


class EmulatorProcess:
    """`python -m harness emulators` in a process of its own: Marketplace and ARM are other services, not our GIL."""

    def __init__(self, state_dir: Path, seed: int, options: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.seed = seed
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_seconds: float = 60.0) -> dict[str, Any]:
        """Start and return the emulators' state document once written."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        options_path = self.state_dir / "options.json"
        options_path.write_text(json.dumps(self.options))
        log = (self.state_dir / "emulators.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness",
                "emulators",
                "--state-dir",
                str(self.state_dir),
                "--seed",
                str(self.seed),
                "--options",
                str(options_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        state_path = self.state_dir / "emulators.json"
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ScenarioError(f"the emulators exited with {self.process.returncode}; see {self.state_dir}")
            if state_path.exists():
                try:
                    state: dict[str, Any] = json.loads(state_path.read_text())
                    return state
                except json.JSONDecodeError:
                    pass  # written but not complete yet
            time.sleep(0.1)
        raise ScenarioError("the emulators did not start in time")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if they linger."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def scenario_settings(
    state: dict[str, Any], backend: ScenarioBackend, data_dir: Path, api_port: int, subscriptions: int
) -> Settings:
    """The processes' settings: the emulators, the backend, and short intervals so a run converges in minutes."""
    base_url = f"http://127.0.0.1:{api_port}"
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "api_port": api_port,
        "public_base_url": base_url,
        "session_secret": SecretStr(uuid.uuid4().hex + uuid.uuid4().hex),
        "log_format": "json",
        "log_level": "INFO",
        "worker_concurrency": 3,
        "outbox_poll_interval_seconds": 0.2,
        # A message lost with a killed worker or a restarted broker is dispatched again after this long.
        "outbox_redispatch_after_seconds": 10.0,
        # Every running deployment is checked this often: more clusters, fewer checks each, or the checks alone
        # saturate two workers on two cores.
        "provisioning_poll_interval_seconds": max(0.5, subscriptions / 40),
        "provisioning_sweep_interval_seconds": 5.0,
        "private_endpoint_sync_interval_seconds": 2.0,
        "provisioning_retry_backoff_seconds": 1.0,
        "provisioning_retry_budget": 12,
        # Unsubscribed clusters are deleted at once, so ARM can be checked for orphans at the end.
        "cluster_retention_days": 0.0,
        "marketplace_backoff_initial_seconds": 0.2,
        "marketplace_operation_redrive_after_seconds": 20.0,
        "marketplace_reconcile_interval_seconds": 60.0,
        # Drift: every live cluster is compared with ARM once per interval, one fifth of them per beat tick,
        # so a resource chaos deletes out of band is put back well within a phase.
        "drift_observation_interval_seconds": max(10.0, subscriptions / 2),
        "drift_observation_slices": 5,
        # Submitted usage whose answer a fault swallowed is settled through usage retrieval after this long.
        "metering_answer_timeout_minutes": 0.1,
        # Traces are written so the "no secrets" check can read them (URLs with their queries are traced).
        "telemetry_traces_exporter": "jsonl",
        "telemetry_traces_path": data_dir / TRACES_FILE,
    }
    if backend.name == "scaled":
        overrides["database_url"] = backend.database_url
        overrides["broker_url"] = backend.broker_url
    return settings_for_emulators(state, **overrides)


def build_process_group(settings: Settings, log_dir: Path) -> ProcessGroup:
    """Two API processes on one port, two workers, the scheduler."""
    group = ProcessGroup(log_dir, {**os.environ, **settings.as_environment()})
    group.add("api-1", "api", "--reuse-port")
    group.add("api-2", "api", "--reuse-port")
    group.add("worker-1", "worker")
    group.add("worker-2", "worker")
    group.add("beat", "beat")
    return group


def secret_values(settings: Settings, workload: Workload | None) -> list[str]:
    """Every SecretStr of the settings and every token the run handled itself."""
    values = [
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    return values + (workload.tokens_seen if workload is not None else [])


# Billing counts usage from activation, minutes old in a run: the final billing pass runs this far ahead, so the
# hour of activation and the next one close (close cutoff = now - grace - 1 hour).
BILLING_AHEAD = timedelta(hours=2, minutes=20)


def run_full_scenario(options: ScenarioOptions) -> int:
    """Run the scenario, print the summary, write summary.json; 0 when every invariant held."""
    data_dir = options.data_dir
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    backend = ScenarioBackend(options)
    emulators = EmulatorProcess(
        data_dir / "emulators",
        options.seed,
        {
            "arm_deployment_seconds": 0.3,
            "arm_rate_limits": {"write_capacity": 100_000, "read_capacity": 100_000},
            # Marketplace must wait for our PATCH, not accept unpatched operations on its own mid-run.
            "marketplace_operation_timeout_seconds": 3600,
        },
    )
    group: ProcessGroup | None = None
    database: Database | None = None
    workload: Workload | None = None
    monkey: Any = None
    faults: dict[str, int] = {}
    error: str | None = None
    results: list[InvariantResult] = []
    counts: dict[str, dict[str, int]] = {}
    chaos_notes: list[str] = []
    planted: list[str] = []
    try:
        say(f"backend: {backend.name}; starting the emulators in their own process")
        backend.start()
        state = emulators.start()
        settings = scenario_settings(state, backend, data_dir, free_port(), options.subscriptions)
        # The scenario reads (and runs the billing jobs) through its own connections, which chaos leaves alone.
        observer_url = backend.observer_database_url or settings.resolved_database_url
        migrator.upgrade(observer_url)
        database = Database(observer_url)
        with database.session() as session:
            sync_catalog(session, load_catalog(settings.catalog_path))
        group = build_process_group(settings, data_dir / "logs")
        say("starting api-1, api-2 (one port), worker-1, worker-2 and beat")
        group.start_all()
        base_url = f"http://127.0.0.1:{settings.api_port}"
        wait_until_ready(base_url, timeout_seconds=120, group=group)
        workload = Workload(
            seed=options.seed,
            emulator_state=state,
            database=database,
            settings=settings,
            api_base_url=base_url,
            say=say,
        )
        try:
            workload.configure_marketplace()
            say(f"buying {options.subscriptions} subscriptions through the Marketplace emulator")
            workload.buy(options.subscriptions)
            if options.chaos:
                monkey = _start_chaos(options, group, backend, state, base_url, chaos_notes)
            say("landing pages: Entra sign-in and confirmation in the customer's browser")
            workload.complete_landing_pages()
            say("waiting for every cluster to be provisioned and every subscription activated")
            workload.wait_until_subscribed(options.phase_deadline)
            say(f"metering {options.hours:g} simulated hour(s) of usage")
            workload.meter_hours(options.hours)
            say(
                f"{options.event_count} customer actions: plan and quantity changes, suspend, reinstate, "
                "renew, unsubscribe"
            )
            workload.run_action_stream(
                options.event_count, options.phase_deadline, max_in_flight=max(4, options.subscriptions // 2)
            )
            if monkey is not None:
                # On a quick machine the workload can end before the fault plan does: let the plan play out
                # (kills, broker restart, redelivered webhooks) before healing, so every run is tested under it.
                say("chaos: waiting for the rest of the fault plan")
                wait_for(lambda: monkey.finished, timeout_seconds=options.phase_deadline, what="the chaos plan")
        except (ScenarioError, OSError) as problem:
            error = str(problem)
        finally:
            if monkey is not None:
                say("chaos: stopping and healing")
                faults = monkey.stop()
                chaos_notes.extend(getattr(monkey, "failures", []))
                planted = list(getattr(monkey, "planted", []))
        if error is None:
            try:
                say("waiting for convergence: every operation reported, every cluster at its desired spec")
                workload.wait_until_converged(options.phase_deadline)
                # Before the last billing pass: the façade emulator sizes a cluster whose scale set chaos deleted as
                # one unit of the first plan until the repair, so usage read meanwhile would differ from the ground
                # truth the billing proof reads afterwards (a cluster without its scale set serves nothing anyway).
                say("waiting for drift repairs before metering: every live cluster whole in ARM again")
                _wait_until_whole(database, workload, planted, options.phase_deadline)
                workload.wait_until_converged(options.phase_deadline)
                say(
                    f"metering the hours closed since, {BILLING_AHEAD} ahead of real time so the hours since "
                    "activation close; settling the ledger"
                )
                workload.advance_clocks(BILLING_AHEAD)
                workload.meter_hours(options.hours)
                workload.settle_ledger(options.phase_deadline)
                say("reconciliation: Marketplace (publisher API, as an operator) and usage")
                workload.reconcile_marketplace(options.phase_deadline)
                workload.reconcile_usage()
                workload.wait_until_converged(options.phase_deadline)
                say("waiting for drift repairs: every live cluster whole in ARM again, then settled")
                _wait_until_whole(database, workload, planted, options.phase_deadline)
                # A repair's deployment re-creates the resource before the controller records the cluster ready.
                workload.wait_until_converged(options.phase_deadline)
                say("consumers: each kind connects through 'connect a service', with a spoof per cluster")
                workload.connect_consumers(options.phase_deadline)
            except (ScenarioError, OSError) as problem:
                error = str(problem)
        say("checking the invariants")
        results = _check_invariants(database, workload, settings, group, planted)
        counts = invariants.final_states(database)
    except Exception as problem:  # the run's boundary: any failure still gets its summary
        error = error or f"{type(problem).__name__}: {problem}"
    finally:
        if group is not None:
            group.stop_all()
        emulators.stop()
        if database is not None:
            database.dispose()
        backend.stop()
    summary = build_summary(
        options={**asdict(options), "data_dir": str(data_dir), "backend": backend.name, "events": options.event_count},
        counts=counts,
        workload={**asdict(workload.figures), "chaos_notes": chaos_notes} if workload else {},
        faults=faults,
        invariants=results,
        error=error,
    )
    if workload is not None:
        workload.close()
    path = write_summary(data_dir, summary)
    print_summary(summary)
    typer.echo(f"  summary JSON   {path}")
    typer.echo(f"  logs           {data_dir / 'logs'}")
    return 0 if summary["passed"] else 1


def _start_chaos(
    options: ScenarioOptions,
    group: ProcessGroup,
    backend: ScenarioBackend,
    state: dict[str, Any],
    base_url: str,
    notes: list[str],
) -> Any:
    from harness.scenario.chaos import ChaosMonkey

    emulator_urls: dict[str, str] = {
        # Every emulator's control API sits at {base}/_emulator; Entra's document has no base_url of its own.
        name: state[name]["control_url"].removesuffix("/_emulator")
        for name in ("marketplace", "arm", "facade", "entra")
        if name in state
    }
    monkey = ChaosMonkey(
        options.seed,
        group,
        broker=backend.redis,
        database_url=backend.database_url or None,
        emulator_urls=emulator_urls,
        webhook_url=f"{base_url}/marketplace/webhook",
        intensity=options.chaos_intensity,
        ca_bundle=str(state["ca_bundle"]),
        journal_path=group.log_dir / "chaos.jsonl",
    )
    notes.append(f"{len(monkey.plan)} fault(s) planned")
    say(f"chaos: {len(monkey.plan)} fault(s) planned from seed {options.seed}")
    monkey.start()
    return monkey


def _arm_resources(workload: Workload) -> list[dict[str, Any]]:
    with httpx.Client(verify=workload.ca_bundle, timeout=60) as arm:
        resources: list[dict[str, Any]] = (
            arm.get(f"{workload.state['arm']['control_url']}/resources").raise_for_status().json()
        )
    return resources


def _wait_until_whole(database: Database, workload: Workload, planted: list[str], deadline: float) -> None:
    """The observer repairs what chaos deleted within an interval or so; a foreign resource never comes back,
    so a planted resource already gone is left for the invariant to report rather than waited on."""

    def whole() -> bool:
        result = invariants.customer_resources_untouched_and_clusters_whole(database, _arm_resources(workload), [])
        return result.passed

    wait_for(whole, timeout_seconds=deadline, what="every live cluster's resources in ARM", interval=1.0)


def _check_invariants(
    database: Database, workload: Workload, settings: Settings, group: ProcessGroup, planted: list[str]
) -> list[InvariantResult]:
    marketplace = workload.marketplace_state()
    arm_control = workload.state["arm"]["control_url"]
    with httpx.Client(verify=workload.ca_bundle, timeout=60) as arm:
        resources = arm.get(f"{arm_control}/resources").raise_for_status().json()
        groups = arm.get(f"{arm_control}/resource-groups").raise_for_status().json()
    log_files = [group.log_dir / f"{name}.log" for name in PRODUCT_PROCESSES] + [settings.data_dir / TRACES_FILE]
    return [
        invariants.operations_reported(database, marketplace),
        invariants.clusters_converged(database, marketplace, resources),
        invariants.usage_accepted_once(database, marketplace),
        billed_as_provided(
            database,
            marketplace,
            workload.state["facade"],
            workload.ca_bundle,
            closed_through=workload.closed_through,
            waiving_offers=waiving_offer_ids(settings),
        ),
        invariants.no_orphaned_resources(database, groups, RESOURCE_GROUP_PREFIX),
        invariants.customer_resources_untouched_and_clusters_whole(database, resources, planted),
        invariants.audit_trail_complete(database),
        invariants.expected_connections_only(database),
        invariants.no_secrets_written_down(log_files, database, secret_values(settings, workload)),
    ]
