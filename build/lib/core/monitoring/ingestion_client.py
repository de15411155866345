"""The one client of the Azure Monitor Logs Ingestion API (azure-monitor-ingestion); the only module importing it."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.monitor.ingestion import LogsIngestionClient

from core.errors import ConfigurationError, UpstreamUnavailable
from core.settings import Settings

# One export pass must not hold the beat task for minutes: a few quick retries, then the rows wait for the next pass.
RETRY_TOTAL = 3
RETRY_BACKOFF_SECONDS = 0.5


class LogAnalyticsIngestion:
    """Uploads rows to one data collection rule's streams through a data collection endpoint."""

    def __init__(self, settings: Settings, credential: TokenCredential) -> None:
        if not settings.monitor_ingestion_endpoint or not settings.monitor_dcr_immutable_id:
            raise ConfigurationError("CP_MONITOR_INGESTION_ENDPOINT and CP_MONITOR_DCR_IMMUTABLE_ID are required")
        self.rule_id = settings.monitor_dcr_immutable_id
        self._client = LogsIngestionClient(
            endpoint=settings.monitor_ingestion_endpoint,
            credential=credential,
            credential_scopes=[f"{settings.monitor_credential_audience.rstrip('/')}/.default"],
            connection_verify=settings.tls_verify,
            connection_timeout=settings.http_timeout_seconds,
            read_timeout=settings.http_timeout_seconds,
            retry_total=RETRY_TOTAL,
            retry_backoff_factor=RETRY_BACKOFF_SECONDS,
            retry_backoff_max=5,
        )

    def upload(self, stream: str, rows: list[dict[str, Any]]) -> None:
        """Send every row or raise UpstreamUnavailable (the SDK gzips and splits into chunks of at most 1 MB).

        A partial failure also raises: the caller marks nothing of this batch, and sends it again later.
        """
        failures: list[str] = []

        def remember_failure(error: Any) -> None:
            failures.append(f"{type(error.error).__name__}: {error.error}")

        logs: list[MutableMapping[str, Any]] = list(rows)
        try:
            self._client.upload(rule_id=self.rule_id, stream_name=stream, logs=logs, on_error=remember_failure)
        except AzureError as error:
            raise UpstreamUnavailable(f"Logs Ingestion API failed: {error}") from error
        if failures:
            raise UpstreamUnavailable(f"Logs Ingestion API refused {len(failures)} chunk(s): {failures[0]}"[:1000])

    def close(self) -> None:
        """Release the HTTP pipeline."""
        self._client.close()
