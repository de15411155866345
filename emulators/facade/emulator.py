"""The façade-cluster metrics emulator as a suite component: per-cluster usage for any cluster name.

`GET /clusters/{cluster_name}/_vast/metrics?start=...&end=...` answers the samples on the grid in
(start, end], end capped at the emulator's now. Control API under `/_emulator`:
`PUT|DELETE clusters/{name}/curve` (constant usage instead of the computed curve),
`POST clusters/{name}/bad-samples` (the next read also carries duplicates, out-of-order late samples
or future-dated samples), `GET|PUT clock` (offset from real time), and fault rules under `faults`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from emulators.common.faults import (
    CONTROL_PREFIX,
    FaultInjectionMiddleware,
    FaultInjector,
    FaultRule,
    fault_control_router,
)
from emulators.facade.curves import ClusterCurve, CurveOverride, UsagePoint, constant_point, grid_instants
from emulators.facade.sizing import ClusterSize, PlanSizes, ScaleSetLookup

if TYPE_CHECKING:
    from emulators.suite import EmulatorSuiteConfig

DEFAULT_INTERVAL_SECONDS = 300
# A read spans at most a week of samples, as a real cluster's metrics endpoint pages nothing.
MAX_READ_SPAN = timedelta(days=7)

BadSampleKind = Literal["duplicate", "out_of_order", "future"]


class CurveOverrideModel(BaseModel):
    """Constant usage for one cluster."""

    model_config = ConfigDict(extra="forbid")
    capacity_tib: float = Field(ge=0)
    data_read_gib_per_hour: float = Field(ge=0)
    data_written_gib_per_hour: float = Field(ge=0)
    api_requests_per_hour: int = Field(ge=0)


class BadSamplesRequest(BaseModel):
    """Bad samples to mix into the cluster's next metrics read."""

    model_config = ConfigDict(extra="forbid")
    kind: BadSampleKind
    count: int = Field(default=1, ge=1, le=100)


class ClockSetting(BaseModel):
    """The emulator clock's offset from real time."""

    model_config = ConfigDict(extra="forbid")
    offset_seconds: float


class FacadeMetricsEmulator:
    """Computes usage for any cluster name; overrides and queued bad samples live in memory."""

    name = "facade"

    def __init__(
        self,
        seed: int,
        faults: FaultInjector,
        interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
        *,
        plan_sizes: PlanSizes | None = None,
        scale_sets: ScaleSetLookup | None = None,
    ) -> None:
        self.seed = seed
        self.faults = faults
        self.interval_seconds = interval_seconds
        self.plan_sizes = plan_sizes or PlanSizes.load()
        self.scale_sets = scale_sets
        self._lock = threading.Lock()
        self._overrides: dict[str, CurveOverride] = {}
        self._bad_samples: dict[str, list[BadSamplesRequest]] = {}
        self._clock_offset = timedelta()
        self._base_url: str | None = None

    @classmethod
    def from_suite_config(
        cls, config: EmulatorSuiteConfig, scale_sets: ScaleSetLookup | None = None
    ) -> FacadeMetricsEmulator:
        """Build from suite options `facade_interval_seconds` and `facade_faults` (initial fault rules).

        `scale_sets` finds a cluster's scale set (the ARM emulator's), which sizes its usage curve.
        """
        rules = [FaultRule.model_validate(rule) for rule in config.options.get("facade_faults", [])]
        interval = int(config.options.get("facade_interval_seconds", DEFAULT_INTERVAL_SECONDS))
        sizes = PlanSizes.load(Path(config.catalog_path)) if config.catalog_path else PlanSizes.load()
        return cls(
            config.seed,
            FaultInjector(seed=config.seed, rules=rules),
            interval,
            plan_sizes=sizes,
            scale_sets=scale_sets,
        )

    def now(self) -> datetime:
        """The emulated current time."""
        with self._lock:
            return datetime.now(UTC) + self._clock_offset

    def size_of(self, cluster_name: str) -> ClusterSize:
        """The cluster's plan, quantity and serving start, from its scale set when ARM has one."""
        facts = self.scale_sets(cluster_name) if self.scale_sets is not None else None
        return self.plan_sizes.size_of(facts)

    def _sampler(self, cluster_name: str) -> Callable[[datetime], UsagePoint]:
        with self._lock:
            override = self._overrides.get(cluster_name)
        if override is not None:
            return lambda timestamp: constant_point(override, timestamp, self.interval_seconds)
        curve = ClusterCurve.for_cluster(self.seed, cluster_name, self.interval_seconds, self.size_of(cluster_name))
        return curve.point

    def point(self, cluster_name: str, timestamp: datetime) -> UsagePoint:
        """The cluster's sample at a grid instant, from its override or its computed curve."""
        return self._sampler(cluster_name)(timestamp)

    def read(self, cluster_name: str, start: datetime, end: datetime) -> list[UsagePoint]:
        """Samples in (start, end] (end capped at now), plus any bad samples queued for this cluster.

        A cluster ARM knows reports nothing from before its scale set existed, as a real one would.
        """
        now = self.now()
        end = min(end, now)
        sample = self._sampler(cluster_name)
        serving_since = self.size_of(cluster_name).serving_since
        if serving_since is not None:
            start = max(start, serving_since)
        points = (
            [sample(instant) for instant in grid_instants(start, end, self.interval_seconds)] if start < end else []
        )
        with self._lock:
            queued = self._bad_samples.pop(cluster_name, [])
        step = timedelta(seconds=self.interval_seconds)
        for request in queued:
            if request.kind == "duplicate":
                points.extend(points[-request.count :])
            elif request.kind == "out_of_order":
                # Late arrivals from before the requested period, served first: out of time order.
                late = grid_instants(start - step * request.count, start, self.interval_seconds)
                points = [sample(instant) for instant in reversed(late)] + points
            else:
                last_grid = grid_instants(now - step, now, self.interval_seconds)[-1]
                points.extend(sample(last_grid + step * (index + 1)) for index in range(request.count))
        return points

    def asgi_app(self) -> FastAPI:
        """Metrics, control and fault routes behind the fault middleware."""
        app = FastAPI(title="Façade metrics emulator", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/clusters/{cluster_name}/_vast/metrics")
        def metrics(
            cluster_name: str,
            start: datetime = Query(description="exclusive lower bound (ISO 8601)"),  # noqa: B008
            end: datetime | None = Query(default=None, description="inclusive upper bound; default now"),  # noqa: B008
        ) -> dict[str, Any]:
            start_utc = _as_utc(start)
            end_utc = _as_utc(end) if end is not None else self.now()
            if end_utc <= start_utc:
                raise HTTPException(status_code=400, detail="end must be after start")
            if end_utc - start_utc > MAX_READ_SPAN:
                raise HTTPException(status_code=400, detail="a read spans at most 7 days")
            return {
                "cluster": cluster_name,
                "interval_seconds": self.interval_seconds,
                "samples": [point.to_json() for point in self.read(cluster_name, start_utc, end_utc)],
            }

        app.include_router(self._control_router())
        app.include_router(fault_control_router(self.faults))
        app.add_middleware(FaultInjectionMiddleware, injector=self.faults)
        return app

    def _control_router(self) -> APIRouter:
        router = APIRouter(prefix=CONTROL_PREFIX, tags=["emulator control"])

        @router.put("/clusters/{cluster_name}/curve")
        def set_curve(cluster_name: str, override: CurveOverrideModel) -> CurveOverrideModel:
            with self._lock:
                self._overrides[cluster_name] = CurveOverride(**override.model_dump())
            return override

        @router.delete("/clusters/{cluster_name}/curve", status_code=204)
        def clear_curve(cluster_name: str) -> None:
            with self._lock:
                self._overrides.pop(cluster_name, None)

        @router.post("/clusters/{cluster_name}/bad-samples", status_code=201)
        def add_bad_samples(cluster_name: str, request: BadSamplesRequest) -> dict[str, Any]:
            with self._lock:
                queue = self._bad_samples.setdefault(cluster_name, [])
                queue.append(request)
                return {"cluster": cluster_name, "queued": [item.model_dump() for item in queue]}

        @router.get("/clock")
        def get_clock() -> dict[str, Any]:
            return {"now": self.now().isoformat(), "offset_seconds": self._clock_offset.total_seconds()}

        @router.put("/clock")
        def set_clock(setting: ClockSetting) -> dict[str, Any]:
            with self._lock:
                self._clock_offset = timedelta(seconds=setting.offset_seconds)
            return get_clock()

        return router

    def on_started(self, base_url: str) -> None:
        """Remember the base URL for describe()."""
        self._base_url = base_url

    def describe(self) -> dict[str, Any]:
        """Facts for emulators.json: the metrics URL template the collector's setting takes."""
        if self._base_url is None:
            raise RuntimeError("the façade metrics emulator is not started yet")
        return {
            "base_url": self._base_url,
            "metrics_url_template": f"{self._base_url}/clusters/{{cluster_name}}/_vast/metrics",
            "control_url": f"{self._base_url}{CONTROL_PREFIX}",
            "interval_seconds": self.interval_seconds,
            "seed": self.seed,
        }


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
