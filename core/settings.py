"""Typed settings for every process of the control plane, read from `CP_*` environment variables or `.env`.

Defaults point at the Azure public cloud; the sandbox and the tests point the endpoints at the local emulators.
Secrets are `SecretStr` so they never print. Unknown `CP_*` keys in a `.env` file are refused.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

MARKETPLACE_RESOURCE_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"


def bundled_folder(package: str) -> Path:
    """Where a data package shipped with the control plane lies (installed wheels are unpacked, never zipped)."""
    location = files(package)
    if not isinstance(location, Path):
        raise ConfigurationError(f"the package {package!r} is not installed as plain files")
    return location


DEFAULT_CATALOG_PATH = bundled_folder("catalog") / "offers.toml"
DEFAULT_ARM_TEMPLATES_PATH = bundled_folder("arm_templates")


class Settings(BaseSettings):
    """Every setting the API, workers, scheduler and CLI read."""

    model_config = SettingsConfigDict(
        env_prefix="CP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
    )

    # Storage and messaging
    data_dir: Path = Field(default=Path("var"), description="Working directory for the embedded database and broker.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under data_dir.")
    broker_url: str = Field(default="", description="Celery broker URL; empty means the embedded SQLite broker.")
    database_pool_size: int = Field(default=10, ge=1, le=200)

    # Publisher identity (Entra app registrations)
    entra_authority_host: str = "https://login.microsoftonline.com"
    publisher_tenant_id: str = Field(description="Entra tenant id of the publisher.")
    publisher_client_id: str = Field(description="Client id of the publisher's single-tenant fulfilment app.")
    publisher_client_secret: SecretStr | None = None
    publisher_client_certificate_path: Path | None = Field(
        default=None,
        description="PEM (private key + certificate) or PKCS#12 file of the publisher app's certificate credential.",
    )
    publisher_client_certificate_password: SecretStr | None = Field(
        default=None, description="Password of that file's private key, when it is encrypted."
    )
    use_workload_identity: bool = False
    entra_v1_issuer_host: str = Field(
        default="https://sts.windows.net", description="Issuer host of v1 tokens ({host}/{tenant id}/)."
    )
    entra_signing_key_lifespan_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="How long Entra's published signing keys are trusted before the key set is fetched again.",
    )
    entra_signing_key_refetch_cooldown_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Least time between refetches forced by tokens with an unknown kid."
    )
    entra_disable_instance_discovery: bool = Field(
        default=False, description="True for authorities Entra's instance discovery does not know (the emulator)."
    )
    # The multi-tenant control-plane app: portal and landing-page sign-in, and ARM access in customer tenants.
    control_plane_client_id: str | None = None
    control_plane_client_secret: SecretStr | None = None
    control_plane_client_certificate_path: Path | None = None
    operator_app_role: str = Field(default="Operator", description="App role that makes a signed-in user an operator.")
    session_secret: SecretStr | None = Field(default=None, description="Signs session and CSRF cookies.")
    session_absolute_lifetime_seconds: float = Field(
        default=8 * 3600,
        gt=0,
        le=7 * 86400,
        description="A browser session ends this long after sign-in, active or not.",
    )
    session_idle_timeout_seconds: float = Field(
        default=30 * 60, gt=0, le=86400, description="A browser session ends after this long without a request."
    )
    session_role_check_seconds: float = Field(
        default=0,
        ge=0,
        le=86400,
        description="How often a session's roles are read again from Entra (0: at every request).",
    )
    app_only_clients: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per customer tenant id, the client app ids whose app-only tokens the JSON API accepts (JSON).",
    )
    managed_app_notification_secret: SecretStr | None = Field(
        default=None, description="The `sig` query value Azure appends to managed-app notifications."
    )
    managed_app_notification_max_skew_seconds: float = Field(
        default=300.0, ge=0, le=86_400, description="How far in the future a notification's eventTime may be."
    )
    managed_app_notification_max_age_seconds: float = Field(
        default=86_400.0,
        gt=0,
        le=30 * 86_400,
        description="How old a notification's eventTime may be (Azure retries one for about 10 hours).",
    )
    public_base_url: str = Field(default="http://127.0.0.1:8000", description="Where browsers reach the API.")

    # Marketplace
    marketplace_fulfillment_base_url: str = "https://marketplaceapi.microsoft.com/api/saas"
    marketplace_metering_base_url: str = "https://marketplaceapi.microsoft.com/api"
    marketplace_api_version: str = "2018-08-31"
    marketplace_resource_app_id: str = MARKETPLACE_RESOURCE_APP_ID
    marketplace_max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per Marketplace call.")
    marketplace_backoff_initial_seconds: float = Field(default=0.5, gt=0, le=60)
    marketplace_request_budget_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Longest a browser request waits on Marketplace, retries and Retry-After included.",
    )
    marketplace_webhook_enabled: bool = Field(default=True, description="False answers webhooks 503 (maintenance).")
    marketplace_reconcile_interval_seconds: float = Field(default=900.0, gt=0)
    accepted_change_retry_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="A cluster that failed to apply a change Marketplace already accepted (and bills) is retried "
        "after this long, again and again, until it converges or an operator steps in.",
    )
    marketplace_operation_redrive_after_seconds: float = Field(
        default=120.0, gt=0, description="An operation not reported after this long is driven again by reconcile."
    )
    session_cookie_name: str = Field(default="cp_session", pattern=r"^[A-Za-z0-9_-]+$")

    # Azure Resource Manager
    arm_endpoint: str = "https://management.azure.com"
    arm_credential_scope: str = "https://management.azure.com/.default"

    # Metering and billing
    cluster_metrics_url_template: str = Field(
        default="https://{endpoint_fqdn}/_vast/metrics",
        description="A cluster's metrics endpoint; {endpoint_fqdn}, {cluster_name} and {cluster_id} are filled in.",
    )
    billing_collection_lookback_hours: float = Field(
        default=3.0, gt=0, le=168, description="How far back the first collection of a cluster reads."
    )
    billing_hour_close_grace_minutes: float = Field(
        default=15.0, ge=0, le=1440, description="Late samples are accepted this long after an hour ends."
    )
    billing_close_lookback_hours: float = Field(
        default=48.0, gt=0, le=24 * 90, description="Hours older than this are no longer closed into the ledger."
    )
    metering_window_hours: float = Field(
        default=24.0, gt=1, le=24, description="Marketplace accepts usage this long after the hour starts."
    )
    metering_answer_timeout_minutes: float = Field(
        default=10.0, gt=0, description="A submitted entry with no recorded answer after this long is unknown."
    )
    metering_parallel_batches: int = Field(
        default=8, ge=1, le=64, description="Batches of 25 usage events a submitter keeps in flight."
    )
    arm_retry_total: int = Field(default=6, ge=0, le=20, description="Retries of one ARM call (429/5xx/network).")
    arm_retry_backoff_seconds: float = Field(default=0.8, ge=0, le=60, description="Backoff factor between retries.")
    arm_retry_backoff_max_seconds: float = Field(default=30.0, gt=0, le=600)

    # Provisioning controller
    provisioning_poll_interval_seconds: float = Field(
        default=5.0, gt=0, le=600, description="Delay before checking a running ARM deployment again."
    )
    provisioning_retry_budget: int = Field(
        default=4, ge=1, le=50, description="Failed attempts of one generation before the cluster is failed."
    )
    provisioning_retry_backoff_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="First delay after a failed attempt; doubles per attempt."
    )
    provisioning_sweep_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Beat interval of the sweep that re-enqueues overdue clusters."
    )
    private_endpoint_sync_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    drift_observation_interval_seconds: float = Field(
        default=900.0,
        gt=0,
        le=86400,
        description="Every ready or suspended cluster is compared with ARM once per interval (drift observer).",
    )
    drift_observation_slices: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="Beat ticks per drift interval; each observes the clusters hashed to its slice.",
    )
    drift_repair_attempts: int = Field(
        default=3, ge=1, le=20, description="Repairs of one drift before it is raised to an operator instead."
    )
    cluster_retention_days: float = Field(
        default=7.0, ge=0, le=365, description="Days a cluster's data is kept after unsubscribe before deletion."
    )

    # Outbound HTTP
    ca_bundle: Path | None = Field(default=None, description="Extra CA bundle to trust (the emulators' CA locally).")
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # Catalog and ARM templates (shipped in the package; a path overrides them)
    catalog_path: Path = DEFAULT_CATALOG_PATH
    arm_templates_path: Path = Field(
        default=DEFAULT_ARM_TEMPLATES_PATH, description="Folder holding facade-cluster/ with the step templates."
    )

    # Outbox relay
    outbox_poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    outbox_delivery_batch_size: int = Field(
        default=8, ge=1, le=100, description="Rows of one task carried by one broker message; 1 sends each alone."
    )
    outbox_redispatch_after_seconds: float = Field(
        default=300.0, gt=0, description="A dispatched message not completed after this long is dispatched again."
    )
    outbox_max_attempts: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Failed attempts (or dispatches never completed) after which a message is dead-lettered.",
    )

    # Operations: traces, Azure Monitor export, the Blob API probe and SLOs
    telemetry_traces_exporter: Literal["none", "console", "jsonl", "otlp"] = Field(
        default="none", description="Where spans go: nowhere, stdout, a JSON-lines file or an OTLP/HTTP collector."
    )
    telemetry_traces_path: Path | None = Field(
        default=None, description="JSON-lines span file (the jsonl exporter); empty means data_dir/traces.jsonl."
    )
    telemetry_otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP traces URL (otlp exporter).")
    telemetry_service_name: str = Field(default="controlplane", max_length=64)
    monitor_ingestion_endpoint: str | None = Field(
        default=None, description="Data collection endpoint of the Logs Ingestion API; empty disables the export."
    )
    monitor_dcr_immutable_id: str | None = Field(default=None, description="Immutable id of the data collection rule.")
    monitor_audit_stream: str = Field(default="Custom-ControlPlaneAudit_CL", description="DCR stream of audit events.")
    monitor_log_stream: str = Field(default="Custom-ControlPlaneLogs_CL", description="DCR stream of spooled logs.")
    monitor_credential_audience: str = Field(default="https://monitor.azure.com", description="Token audience.")
    monitor_export_batch_size: int = Field(default=200, ge=1, le=5000)
    monitor_export_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    monitor_log_spool_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Log records at or above this level are spooled for Log Analytics."
    )
    blob_probe_interval_seconds: float = Field(default=300.0, gt=0, le=86_400)
    blob_probe_endpoint_template: str = Field(
        default="https://{endpoint_fqdn}",
        description="A cluster's Blob endpoint from its endpoint_fqdn (Azurite locally: http://{endpoint_fqdn}/<account>).",
    )
    blob_probe_account_name: str | None = Field(
        default=None, description="With blob_probe_account_key: probe with shared key + SAS instead of Entra ID."
    )
    blob_probe_account_key: SecretStr | None = None
    blob_probe_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    slo_availability_objective: float = Field(default=0.999, gt=0, lt=1, description="Good probe checks / all.")
    slo_latency_threshold_ms: float = Field(default=500.0, gt=0, description="A probe check slower than this is slow.")
    slo_latency_objective: float = Field(default=0.99, gt=0, lt=1, description="Checks under the threshold / all.")
    slo_provision_objective_seconds: float = Field(default=3600.0, gt=0, description="requested -> ready target.")
    slo_change_objective_seconds: float = Field(default=1800.0, gt=0, description="A change applied within this.")
    slo_window_days: float = Field(default=28.0, gt=0, le=90, description="The error budget's window.")
    slo_evaluation_interval_seconds: float = Field(default=300.0, gt=0, le=86_400)

    # Processes
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For/Proto are honoured; "
            "empty: none (the peer address and scheme are the connection's own)."
        ),
    )
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # --- Request body limits (web/body_limits.py): refused before any handler or JSON parser runs ---
    request_body_max_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    request_json_max_depth: int = Field(
        default=32, ge=4, le=512, description="Deepest JSON nesting accepted; deeper bodies get 400."
    )
    # --- end of request body limits ---

    # --- Rate limits and back-pressure (web/rate_limits.py) ---
    # Token buckets per client: `*_per_second` refills, `*_burst` is the bucket's size.
    rate_limits_enabled: bool = Field(default=True, description="False serves every request unthrottled.")
    rate_limit_storage_url: str = Field(
        default="",
        pattern=r"^(rediss?://.+)?$",
        description="Empty: buckets in each API process; redis://host:port/db shares them.",
    )
    rate_limit_api_per_second: float = Field(default=50.0, gt=0, description="JSON API, per principal or address.")
    rate_limit_api_burst: int = Field(default=500, ge=1, le=1_000_000)
    rate_limit_portal_per_second: float = Field(default=20.0, gt=0, description="Portal and landing pages.")
    rate_limit_portal_burst: int = Field(default=200, ge=1, le=1_000_000)
    rate_limit_webhook_per_second: float = Field(
        default=500.0, gt=0, description="Webhooks and notifications, per token tid/appid (Marketplace is one)."
    )
    rate_limit_webhook_burst: int = Field(default=10_000, ge=1, le=1_000_000)
    webhook_backlog_limit: int = Field(
        default=50_000, ge=0, description="Outbox messages not completed above which webhooks get 429; 0: no bound."
    )
    webhook_backlog_refresh_seconds: float = Field(default=1.0, gt=0, le=60, description="Age of the cached count.")
    webhook_backlog_retry_after_seconds: int = Field(default=10, ge=1, le=3600)
    # --- end of rate limits and back-pressure ---

    @field_validator("publisher_tenant_id", "publisher_client_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                # `*` or a host name would make every peer a proxy: forged headers would name any address.
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return ",".join(entries)

    @model_validator(mode="after")
    def _publisher_credential_chosen(self) -> Settings:
        if not (self.publisher_client_secret or self.publisher_client_certificate_path or self.use_workload_identity):
            raise ValueError(
                "one publisher credential is required: CP_PUBLISHER_CLIENT_SECRET, "
                "CP_PUBLISHER_CLIENT_CERTIFICATE_PATH or CP_USE_WORKLOAD_IDENTITY=true"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'controlplane.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    def as_environment(self) -> dict[str, str]:
        """These settings as CP_* variables, to hand to a child process (secrets included, so keep it in memory)."""
        environment: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, dict | list):
                value = json.dumps(value)
            environment[f"CP_{name.upper()}"] = str(value)
        return environment

    @property
    def tls_verify(self) -> str | bool:
        """What httpx's `verify=` and azure-core's `connection_verify=` take."""
        return str(self.ca_bundle) if self.ca_bundle else True


def load_settings() -> Settings:
    """Read the settings, turning validation errors into one message that names each bad setting."""
    try:
        return Settings()  # required fields come from the environment
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            location = ".".join(str(part) for part in issue["loc"])
            name = f"CP_{location.upper()}" if location else "settings"
            problems.append(f"{name}: {issue['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
