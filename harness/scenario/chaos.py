"""Seeded, bounded chaos for the full scenario: crashes, a broker restart, dropped connections, emulator faults.

The fault schedule is a pure function of the seed and of what the run has (process names, emulators,
backends): `plan_faults` returns it up front, so the same seed gives the same faults by kind, target
and order. `ChaosMonkey` walks that plan on a background thread, and `stop()` heals everything it broke.
Only what this run started is ever touched: processes of the given ProcessGroup, our own redis-server,
PostgreSQL backends carrying this run's application_name, and the emulators' fault and control APIs.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from harness.processes import ProcessGroup
from harness.scenario.private_redis import PrivateRedis

logger = logging.getLogger(__name__)

KILL_API = "kill_api"
KILL_WORKER = "kill_worker"
KILL_BEAT = "kill_beat"
BROKER_RESTART = "broker_restart"
POSTGRES_DROP = "postgres_drop"
EMULATOR_FAULT = "emulator_fault"
WEBHOOK_DUPLICATE = "webhook_duplicate"
WEBHOOK_REDELIVER = "webhook_redeliver"
WEBHOOK_REORDER = "webhook_reorder"
# Through the ARM emulator's out-of-band API: a customer puts a resource of their own into a cluster's group, or
# deletes one of a cluster's resources behind our back (the drift observer must put it back).
SHARED_GROUP = "shared_group"
OUT_OF_BAND_DELETION = "out_of_band_deletion"
KILL_KINDS = {KILL_API: "api", KILL_WORKER: "worker", KILL_BEAT: "beat"}
TIMED_KINDS = {*KILL_KINDS, BROKER_RESTART, WEBHOOK_REORDER}

# Faults of each kind at intensity 1.0; intensity scales these (rounded up) and the rate.
DEFAULT_MAX_PER_KIND: dict[str, int] = {
    KILL_API: 2,
    KILL_WORKER: 3,
    KILL_BEAT: 1,
    BROKER_RESTART: 1,
    POSTGRES_DROP: 3,
    EMULATOR_FAULT: 6,
    WEBHOOK_DUPLICATE: 3,
    WEBHOOK_REDELIVER: 2,
    WEBHOOK_REORDER: 2,
    SHARED_GROUP: 1,
    OUT_OF_BAND_DELETION: 2,
}
# Requests hit per emulator rule, backends dropped, webhooks duplicated, re-sent or held (at most).
DEFAULT_MAX_SIZE_PER_FAULT: dict[str, int] = {
    POSTGRES_DROP: 2,
    EMULATOR_FAULT: 3,
    WEBHOOK_DUPLICATE: 3,
    WEBHOOK_REDELIVER: 3,
    WEBHOOK_REORDER: 3,
}
# What each emulator's faults hit: only the APIs the control plane calls, never a customer's browser flow.
EMULATOR_FAULT_PATHS: dict[str, str] = {
    "marketplace": r"^/api/",
    "arm": r"^/subscriptions/",
    "facade": r".*",
    "loganalytics": r".*",
}
EMULATOR_FAULT_VARIANTS = ("latency", "429", "500", "drop")
# What an out-of-band deletion may remove: resources the observer repairs. A deleted key is an operator's
# incident by design (re-creating it would lose data), so chaos never deletes one.
OUT_OF_BAND_DELETION_TYPES = ("Microsoft.Compute/virtualMachineScaleSets", "Microsoft.Network/privateLinkServices")
SCALE_SET_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
CHAOS_APPLICATION_NAME = "controlplane-chaos"
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ChaosLimits:
    """The bounds of a run: faults per kind at intensity 1.0 and the spacing between faults."""

    max_per_kind: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_PER_KIND))
    min_interval_seconds: float = 1.0
    mean_interval_seconds: float = 4.0
    # Longest downtime of a killed process or the broker; webhooks are held for reordering 1x to 3x as long.
    max_downtime_seconds: float = 3.0
    max_size_per_fault: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_SIZE_PER_FAULT))


@dataclass(frozen=True)
class PlannedFault:
    """One fault of the schedule: wait, then inject `kind` on `target`."""

    index: int
    wait_seconds: float
    kind: str
    target: str = ""
    variant: str = ""
    size: int = 1
    downtime_seconds: float = 0.0
    choice_seed: int = 0


def plan_faults(
    seed: int,
    *,
    process_names: Sequence[str],
    emulator_names: Sequence[str],
    broker: bool,
    database: bool,
    webhooks: bool,
    intensity: float = 1.0,
    limits: ChaosLimits | None = None,
) -> list[PlannedFault]:
    """The whole fault schedule for a seed: kinds and order, targets, sizes and waits. Pure and bounded."""
    if intensity <= 0:
        return []
    limits = limits or ChaosLimits()
    random_source = random.Random(seed)
    targets_by_kind = _targets_by_kind(
        process_names, emulator_names, broker=broker, database=database, webhooks=webhooks
    )
    bag = [
        kind for kind in sorted(targets_by_kind) for _ in range(math.ceil(limits.max_per_kind.get(kind, 0) * intensity))
    ]
    random_source.shuffle(bag)
    mean_interval = max(limits.min_interval_seconds, limits.mean_interval_seconds / intensity)
    plan = []
    for index, kind in enumerate(bag):
        wait = limits.min_interval_seconds + random_source.expovariate(1.0 / mean_interval)
        plan.append(
            PlannedFault(
                index=index,
                wait_seconds=round(min(wait, limits.min_interval_seconds + 4 * mean_interval), 3),
                kind=kind,
                target=random_source.choice(targets_by_kind[kind]),
                variant=random_source.choice(EMULATOR_FAULT_VARIANTS) if kind == EMULATOR_FAULT else "",
                size=random_source.randint(1, limits.max_size_per_fault.get(kind, 1)),
                downtime_seconds=_downtime(random_source, kind, limits),
                choice_seed=random_source.getrandbits(32),
            )
        )
    return plan


def _targets_by_kind(
    process_names: Sequence[str], emulator_names: Sequence[str], *, broker: bool, database: bool, webhooks: bool
) -> dict[str, list[str]]:
    """Kinds this run can suffer, each with the targets to pick from (sorted, so the plan is stable)."""
    targets: dict[str, list[str]] = {}
    for kind, role in KILL_KINDS.items():
        names = sorted(name for name in process_names if name.startswith(role))
        if names:
            targets[kind] = names
    if broker:
        targets[BROKER_RESTART] = ["broker"]
    if database:
        targets[POSTGRES_DROP] = ["database"]
    faultable = sorted(name for name in emulator_names if name in EMULATOR_FAULT_PATHS)
    if faultable:
        targets[EMULATOR_FAULT] = faultable
    if webhooks:
        for kind in (WEBHOOK_DUPLICATE, WEBHOOK_REDELIVER, WEBHOOK_REORDER):
            targets[kind] = ["marketplace"]
    if "arm" in emulator_names:
        targets[SHARED_GROUP] = ["arm"]
        targets[OUT_OF_BAND_DELETION] = ["arm"]
    return targets


def _downtime(random_source: random.Random, kind: str, limits: ChaosLimits) -> float:
    """How long a process or the broker stays down; webhooks are held longer, so that several pile up."""
    if kind == WEBHOOK_REORDER:
        return round(random_source.uniform(limits.max_downtime_seconds, 3 * limits.max_downtime_seconds), 3)
    if kind in TIMED_KINDS:
        return round(random_source.uniform(0.2, limits.max_downtime_seconds), 3)
    return 0.0


def with_application_name(database_url: str, application_name: str) -> str:
    """The PostgreSQL URL with an application_name, so this run's backends (and only they) can be found."""
    return (
        make_url(database_url)
        .update_query_dict({"application_name": application_name})
        .render_as_string(hide_password=False)
    )


class ChaosMonkey:
    """Injects the planned faults at their planned times on a background thread; `stop()` heals and counts.

    `emulator_urls` maps emulator names (marketplace, arm, facade, loganalytics, entra) to their https base
    URLs; faults go to each one's `/_emulator/faults`. Webhook faults need `marketplace` (its control API
    re-sends and reorders deliveries) and `entra` (a fresh token for the duplicates this monkey sends itself
    to `webhook_url`). PostgreSQL drops need `database_url` to carry this run's application_name. Each
    injection is kept in `log` and, given `journal_path`, appended there as a JSON line.
    """

    def __init__(
        self,
        seed: int,
        group: ProcessGroup,
        *,
        broker: PrivateRedis | None,
        database_url: str | None,
        emulator_urls: dict[str, str],
        webhook_url: str,
        intensity: float = 1.0,
        limits: ChaosLimits | None = None,
        ca_bundle: str | None = None,
        journal_path: Path | None = None,
    ) -> None:
        self.seed = seed
        self.group = group
        self.broker = broker
        self.emulator_urls = dict(emulator_urls)
        self.webhook_url = webhook_url
        self.application_name = _application_name(database_url) if database_url else None
        self._database_url = database_url if self.application_name else None
        self._http = httpx.Client(verify=ca_bundle or True, timeout=HTTP_TIMEOUT_SECONDS)
        self.plan = plan_faults(
            seed,
            process_names=[managed.name for managed in group.processes],
            emulator_names=list(emulator_urls),
            broker=broker is not None,
            database=self._database_url is not None,
            webhooks="marketplace" in emulator_urls and "entra" in emulator_urls,
            intensity=intensity,
            limits=limits,
        )
        self.injected: Counter[str] = Counter()
        # Faults that found nothing to act on (no webhook delivered yet, no backend connected): not counted above.
        self.skipped: Counter[str] = Counter()
        self.failures: list[str] = []
        # Resources a "customer" put into clusters' groups: the scenario checks each survived the run.
        self.planted: list[str] = []
        self.log: list[dict[str, Any]] = []
        self.journal_path = journal_path
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start injecting on a background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chaos-monkey", daemon=True)
            self._thread.start()

    def stop(self, timeout_seconds: float = 30.0) -> dict[str, int]:
        """Stop injecting, heal everything, and return how many faults were injected of each kind."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_seconds)
            self._thread = None
        self._heal()
        self._http.close()
        return dict(sorted(self.injected.items()))

    @property
    def planned_seconds(self) -> float:
        """How long the whole plan takes to inject (waits plus downtimes), to size a run that lets it finish."""
        return round(sum(fault.wait_seconds + fault.downtime_seconds for fault in self.plan), 1)

    @property
    def finished(self) -> bool:
        """Whether the whole plan has been injected (or the monkey was stopped)."""
        return self._thread is None or not self._thread.is_alive()

    def _run(self) -> None:
        for fault in self.plan:
            if self._stopping.wait(fault.wait_seconds):
                return
            try:
                detail = self._inject(fault)
            except Exception as error:  # one failed injection must not end the chaos, nor the scenario
                logger.warning("chaos: %s on %s failed: %s", fault.kind, fault.target, error)
                self.failures.append(f"{fault.index} {fault.kind} {fault.target}: {error}")
                self._record({**asdict(fault), "failed": str(error)})
                continue
            if detail is None:
                self.skipped[fault.kind] += 1
                self._record({**asdict(fault), "skipped": "nothing to act on yet"})
                continue
            self.injected[fault.kind] += 1
            self._record({**asdict(fault), "detail": detail})

    def _record(self, entry: dict[str, Any]) -> None:
        """Keep what was injected, and append it to the journal file when there is one (evidence for the run)."""
        entry = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry}
        self.log.append(entry)
        logger.info("chaos: %s", entry)
        if self.journal_path is not None:
            with self.journal_path.open("a") as journal:
                journal.write(json.dumps(entry) + "\n")

    def _inject(self, fault: PlannedFault) -> str | None:
        if fault.kind in KILL_KINDS:
            return self._kill_and_restart(fault)
        if fault.kind == BROKER_RESTART:
            assert self.broker is not None
            self.broker.restart(crash=True, downtime_seconds=fault.downtime_seconds)
            return f"redis down {fault.downtime_seconds}s"
        if fault.kind == POSTGRES_DROP:
            return self._drop_database_connections(fault)
        if fault.kind == EMULATOR_FAULT:
            return self._add_emulator_fault(fault)
        if fault.kind == WEBHOOK_DUPLICATE:
            return self._duplicate_webhooks(fault)
        if fault.kind == WEBHOOK_REDELIVER:
            return self._redeliver_webhooks(fault)
        if fault.kind == WEBHOOK_REORDER:
            return self._reorder_webhooks(fault)
        if fault.kind == SHARED_GROUP:
            return self._plant_foreign_resource(fault)
        if fault.kind == OUT_OF_BAND_DELETION:
            return self._delete_out_of_band(fault)
        raise ValueError(f"unknown fault kind {fault.kind}")

    def _kill_and_restart(self, fault: PlannedFault) -> str:
        managed = next(process for process in self.group.processes if process.name == fault.target)
        if not managed.alive():
            raise RuntimeError(f"{managed.name} was not running")
        pid = managed.process.pid if managed.process else None
        managed.kill()
        # A stop() ends the downtime early; the process is started again either way.
        self._stopping.wait(fault.downtime_seconds)
        managed.start(self.group.environment)
        return f"SIGKILL pid {pid}, restarted after {fault.downtime_seconds}s"

    def _drop_database_connections(self, fault: PlannedFault) -> str | None:
        assert self._database_url is not None
        engine = sa.create_engine(with_application_name(self._database_url, CHAOS_APPLICATION_NAME), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                pids = sorted(
                    connection.execute(
                        sa.text(
                            "SELECT pid FROM pg_stat_activity"
                            " WHERE application_name = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": self.application_name},
                    ).scalars()
                )
                chosen = random.Random(fault.choice_seed).sample(pids, min(fault.size, len(pids)))
                for pid in chosen:
                    connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            engine.dispose()
        if not chosen:
            return None
        return f"terminated {len(chosen)} of {len(pids)} backends"

    def _add_emulator_fault(self, fault: PlannedFault) -> str:
        rule: dict[str, Any] = {"path_pattern": EMULATOR_FAULT_PATHS[fault.target], "count": fault.size}
        if fault.variant == "latency":
            rule |= {"kind": "latency", "latency_ms": 500 + fault.choice_seed % 2500}
        elif fault.variant == "drop":
            rule |= {"kind": "drop"}
        else:
            rule |= {"kind": "status", "status": int(fault.variant)}
            if fault.variant == "429":
                rule["retry_after_seconds"] = 1
        response = self._http.post(f"{self.emulator_urls[fault.target]}/_emulator/faults", json=rule)
        response.raise_for_status()
        return f"{fault.variant} x{fault.size} on {fault.target}"

    def _delivered(self) -> list[dict[str, Any]]:
        deliveries: list[dict[str, Any]] = self._marketplace("GET", "/webhook-deliveries")
        return [item for item in deliveries if item["outcome"] == "delivered" and not item.get("redelivery_of")]

    def _duplicate_webhooks(self, fault: PlannedFault) -> str | None:
        """The same webhook several times at once, each with its own valid token: one effect expected."""
        delivered = self._delivered()
        if not delivered:
            return None
        original = random.Random(fault.choice_seed).choice(delivered)
        copies = fault.size + 1

        def send(_: int) -> int:
            token = self._entra_webhook_token()
            response = self._http.post(
                self.webhook_url, json=original["body"], headers={"Authorization": f"Bearer {token}"}
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=copies) as pool:
            statuses = sorted(pool.map(send, range(copies)))
        return f"operation {original['operation_id']} sent {copies}x at once: {statuses}"

    def _redeliver_webhooks(self, fault: PlannedFault) -> str | None:
        """Old webhooks again, shuffled: stale events arriving after newer ones."""
        delivered = self._delivered()
        if not delivered:
            return None
        chosen = random.Random(fault.choice_seed).sample(delivered, min(fault.size, len(delivered)))
        result = self._marketplace(
            "POST", "/webhook-deliveries/redeliver", json={"delivery_ids": [item["id"] for item in chosen]}
        )
        return f"redelivered {len(result['delivery_ids'])} old webhooks"

    def _reorder_webhooks(self, fault: PlannedFault) -> str:
        """Hold the next webhooks back; they go out newest first when the hold fills or its time is up."""
        size = fault.size + 1
        self._marketplace("PUT", "/webhook-hold", json={"size": size})
        self._stopping.wait(fault.downtime_seconds)
        released = self._marketplace("DELETE", "/webhook-hold")["released"]
        return f"held up to {size} webhooks for {fault.downtime_seconds}s; {released} left to release at the end"

    def _arm(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self.emulator_urls['arm']}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def _resource_ids(self, resource_type: str) -> list[str]:
        items = self._arm("GET", "/resources", params={"resource_type": resource_type})
        return sorted(str(item["id"]) for item in items)

    def _plant_foreign_resource(self, fault: PlannedFault) -> str | None:
        """A customer's own storage account in a cluster's resource group (a group they share with us)."""
        scale_sets = self._resource_ids(SCALE_SET_TYPE)
        if not scale_sets:
            return None
        chosen = random.Random(fault.choice_seed).choice(scale_sets)
        group_id = chosen.split("/providers/", 1)[0]
        resource_id = f"{group_id}/providers/Microsoft.Storage/storageAccounts/customer{fault.choice_seed % 10**8}"
        body = {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "tags": {"owner": "me"}}
        self._arm("POST", "/out-of-band/put", json={"resource_id": resource_id, "body": body})
        self.planted.append(resource_id)
        return f"customer resource {resource_id}"

    def _delete_out_of_band(self, fault: PlannedFault) -> str | None:
        """One cluster's scale set or Private Link Service deleted behind our back."""
        candidates = [item for kind in OUT_OF_BAND_DELETION_TYPES for item in self._resource_ids(kind)]
        if not candidates:
            return None
        chosen = random.Random(fault.choice_seed).choice(candidates)
        self._arm("POST", "/out-of-band/delete", json={"resource_id": chosen})
        return f"deleted {chosen}"

    def _entra_webhook_token(self) -> str:
        response = self._http.post(f"{self.emulator_urls['entra']}/_emulator/tokens/marketplace-webhook")
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def _marketplace(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self.emulator_urls['marketplace']}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def _heal(self) -> None:
        """Clear emulator faults, release held webhooks, bring the broker and every process back."""
        problems: list[str] = []
        for name, base_url in sorted(self.emulator_urls.items()):
            try:
                self._http.delete(f"{base_url}/_emulator/faults").raise_for_status()
            except httpx.HTTPError as error:
                problems.append(f"clearing faults on {name}: {error}")
        if "marketplace" in self.emulator_urls:
            try:
                self._marketplace("DELETE", "/webhook-hold")
            except httpx.HTTPError as error:
                problems.append(f"releasing held webhooks: {error}")
        if self.broker is not None and not self.broker.alive():
            self.broker.start()
        for managed in self.group.processes:
            if not managed.alive():
                managed.start(self.group.environment)
        if problems:
            self.failures.extend(problems)
            logger.warning("chaos: healing was incomplete: %s", "; ".join(problems))


def _application_name(database_url: str) -> str | None:
    """This run's application_name from a PostgreSQL URL; None (no drops) for SQLite or an untagged URL."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        return None
    name = url.query.get("application_name")
    return name if isinstance(name, str) and name else None
