"""The Blob API health probe of one cluster endpoint, through the official azure-storage-blob SDK.

The only module that imports azure-storage-blob. One run makes two passes over the endpoint: one
authorised by the account credential (Entra ID token in production, where the SAS is signed with a
user delegation key; shared key where the endpoint is plain-http Azurite) and one authorised by a SAS.
Each pass runs the checks in order and stops at the first failure, so a report names exactly the
check that broke.
The "capacity-tier" source of the range copy persists between runs with known content: a tampered
or lost source shows up as `put_block_from_url` failing with ContentMismatch.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

CAPACITY_CONTAINER = "cp-probe-capacity-tier"
CAPACITY_BLOB = "capacity/source.bin"
BLOCK_SIZE = 64 * 1024
BLOCK_COUNT = 3
COPY_OFFSET = 10_000
COPY_LENGTH = 50_000
RANGE_OFFSET = 70_000
RANGE_LENGTH = 4_096
MISSING_BLOB = "probe/this-blob-does-not-exist"
SAS_LIFETIME = timedelta(minutes=30)
ERROR_CODE_ELEMENT = re.compile(r"<Code>([^<]*)</Code>")


class CheckFailed(Exception):
    """A check saw a wrong answer; `code` names what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckResult:
    """One check of one pass."""

    name: str
    authentication: str
    succeeded: bool
    latency_ms: float
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class ProbeReport:
    """Every check that ran, in order; `first_failure` is the exact check that broke, if any."""

    run_id: str
    endpoint: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def first_failure(self) -> CheckResult | None:
        return next((check for check in self.checks if not check.succeeded), None)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and self.first_failure is None


@dataclass(frozen=True)
class AccountCredential:
    """How the probe authorises: a token credential (Entra ID) or an account name and key (shared key)."""

    token_credential: TokenCredential | None = None
    account_name: str | None = None
    account_key: str | None = None

    def as_sdk_credential(self) -> TokenCredential | dict[str, str]:
        """What BlobServiceClient takes as `credential`."""
        if self.token_credential is not None:
            return self.token_credential
        if self.account_name is None or self.account_key is None:
            raise ValueError("a token credential, or an account name and key, is required")
        return {"account_name": self.account_name, "account_key": self.account_key}

    @property
    def label(self) -> str:
        return "entra" if self.token_credential is not None else "shared_key"


def capacity_tier_content() -> bytes:
    """The known bytes of the capacity-tier source blob (deterministic, so any change is detectable)."""
    seed = b"vast-facade-capacity-tier"
    chunks = [hashlib.sha256(seed + index.to_bytes(4, "big")).digest() for index in range(4096)]
    return b"".join(chunks)


class BlobProbe:
    """Runs the checks against one Blob endpoint."""

    def __init__(
        self,
        endpoint: str,
        credential: AccountCredential,
        *,
        timeout_seconds: float = 10.0,
        connection_verify: str | bool = True,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.credential = credential
        self.timeout_seconds = timeout_seconds
        # A CA bundle path where the endpoint's certificate is not publicly trusted (Azurite over https locally).
        self.connection_verify = connection_verify
        # A probe measures: no retries may hide a failure or stretch a latency.
        self.service = BlobServiceClient(
            self.endpoint,
            credential=credential.as_sdk_credential(),
            retry_total=0,
            connection_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            connection_verify=connection_verify,
        )
        self._user_delegation_key: UserDelegationKey | None = None

    def run(self) -> ProbeReport:
        """Both passes; the SAS pass runs only when the account pass got far enough to create its container."""
        run_id = str(uuid.uuid4())
        report = ProbeReport(run_id=run_id, endpoint=self.endpoint)
        container_name = f"cp-probe-{run_id[:8]}"
        account_container = self.service.get_container_client(container_name)
        label = self.credential.label
        account_checks: list[tuple[str, Callable[[], None]]] = [
            ("create_container", lambda: self._create_container(account_container)),
            ("capacity_tier_source", self._ensure_capacity_source),
            *self._data_checks(account_container, "account"),
        ]
        if self._run_pass(report, label, account_checks):
            sas_container = ContainerClient.from_container_url(
                f"{account_container.url}?{self._container_sas(container_name)}",
                retry_total=0,
                connection_verify=self.connection_verify,
            )
            self._run_pass(report, "sas", self._data_checks(sas_container, "sas"))
        self._remove(account_container)
        return report

    def close(self) -> None:
        """Release the HTTP pipeline."""
        self.service.close()

    # Passes -----------------------------------------------------------------------------------

    def _run_pass(self, report: ProbeReport, label: str, checks: list[tuple[str, Callable[[], None]]]) -> bool:
        for name, check in checks:
            started = time.perf_counter()
            try:
                check()
            except CheckFailed as error:
                report.checks.append(self._failure(name, label, started, error.code, error.message))
                return False
            except HttpResponseError as error:
                code = _error_code(error) or f"Http{error.status_code}"
                report.checks.append(self._failure(name, label, started, code, str(error.message or error)))
                return False
            except AzureError as error:
                report.checks.append(self._failure(name, label, started, type(error).__name__, str(error)))
                return False
            elapsed = (time.perf_counter() - started) * 1000
            report.checks.append(CheckResult(name, label, True, round(elapsed, 3)))
        return True

    @staticmethod
    def _failure(name: str, label: str, started: float, code: str, message: str) -> CheckResult:
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(name, label, False, round(elapsed, 3), code[:128], message[:2048])

    def _data_checks(self, container: ContainerClient, prefix: str) -> list[tuple[str, Callable[[], None]]]:
        folder = f"{prefix}/"
        return [
            ("put_block_blob", lambda: self._put_block_blob(container, f"{folder}blocks.bin")),
            ("list_prefix_delimiter", lambda: self._list_prefix_delimiter(container, folder)),
            ("conditional_get", lambda: self._conditional_get(container, f"{folder}blocks.bin")),
            ("ranged_read", lambda: self._ranged_read(container, f"{folder}blocks.bin")),
            ("put_block_from_url", lambda: self._put_block_from_url(container, f"{folder}copy.bin")),
            ("expected_error", lambda: self._expected_error(container)),
        ]

    # Checks -----------------------------------------------------------------------------------

    def _ensure_capacity_source(self) -> None:
        container = self.service.get_container_client(CAPACITY_CONTAINER)
        if not container.exists():
            container.create_container()
        blob = container.get_blob_client(CAPACITY_BLOB)
        if not blob.exists():
            blob.upload_blob(capacity_tier_content(), overwrite=False)

    @staticmethod
    def _block_content() -> list[bytes]:
        return [bytes([index + 1]) * BLOCK_SIZE for index in range(BLOCK_COUNT)]

    def _put_block_blob(self, container: ContainerClient, name: str) -> None:
        blob = container.get_blob_client(name)
        block_ids = []
        for index, content in enumerate(self._block_content()):
            block_id = f"{index:08d}"
            blob.stage_block(block_id, content)
            block_ids.append(block_id)
        blob.commit_block_list(block_ids)  # type: ignore[arg-type]  # block ids are accepted as strings
        container.get_blob_client(f"{name.rsplit('/', 1)[0]}/nested/marker.txt").upload_blob(b"marker", overwrite=True)
        size = blob.get_blob_properties().size
        if size != BLOCK_SIZE * BLOCK_COUNT:
            raise CheckFailed("SizeMismatch", f"committed blob has {size} bytes, expected {BLOCK_SIZE * BLOCK_COUNT}")

    @staticmethod
    def _list_prefix_delimiter(container: ContainerClient, folder: str) -> None:
        listed = {item.name for item in container.walk_blobs(name_starts_with=folder, delimiter="/")}
        expected = {f"{folder}blocks.bin", f"{folder}nested/"}
        if not expected <= listed:
            raise CheckFailed(
                "ListingMismatch", f"listing of {folder!r} gave {sorted(listed)}, expected {sorted(expected)}"
            )

    def _conditional_get(self, container: ContainerClient, name: str) -> None:
        blob = container.get_blob_client(name)
        downloaded = blob.download_blob()
        content = downloaded.readall()
        if content != b"".join(self._block_content()):
            raise CheckFailed("ContentMismatch", f"{name} does not hold the committed blocks")
        etag = downloaded.properties.etag
        try:
            blob.download_blob(etag=etag, match_condition=MatchConditions.IfModified).readall()
        except HttpResponseError as error:
            # The storage SDK raises 304 as ResourceModifiedError (code ConditionNotMet); the status is what counts.
            if error.status_code == 304:
                return
            raise
        raise CheckFailed("ExpectedNotModified", "If-None-Match with the current ETag did not answer 304")

    def _ranged_read(self, container: ContainerClient, name: str) -> None:
        content = container.get_blob_client(name).download_blob(offset=RANGE_OFFSET, length=RANGE_LENGTH).readall()
        expected = b"".join(self._block_content())[RANGE_OFFSET : RANGE_OFFSET + RANGE_LENGTH]
        if content != expected:
            raise CheckFailed("RangeMismatch", f"bytes {RANGE_OFFSET}+{RANGE_LENGTH} differ from what was written")

    def _put_block_from_url(self, container: ContainerClient, name: str) -> None:
        source = self.service.get_blob_client(CAPACITY_CONTAINER, CAPACITY_BLOB)
        source_url = f"{source.url}?{self._read_sas(CAPACITY_CONTAINER, CAPACITY_BLOB)}"
        destination = container.get_blob_client(name)
        destination.stage_block_from_url("00000000", source_url, source_offset=COPY_OFFSET, source_length=COPY_LENGTH)
        destination.commit_block_list(["00000000"])  # type: ignore[list-item]  # block ids are accepted as strings
        copied = destination.download_blob().readall()
        if copied != capacity_tier_content()[COPY_OFFSET : COPY_OFFSET + COPY_LENGTH]:
            raise CheckFailed(
                "ContentMismatch", "the range copied from the capacity-tier blob is not what it should hold"
            )

    @staticmethod
    def _expected_error(container: ContainerClient) -> None:
        try:
            container.get_blob_client(MISSING_BLOB).download_blob().readall()
        except ResourceNotFoundError as error:
            body = error.response.text() if error.response is not None else ""
            # The storage error body: <?xml ...?><Error><Code>...</Code><Message>...</Message></Error>.
            match = ERROR_CODE_ELEMENT.search(body)
            if "<Error>" not in body or match is None:
                raise CheckFailed(
                    "InvalidErrorBody", f"error body is not a storage XML error: {body[:200]!r}"
                ) from error
            code = match.group(1)
            header_code = _error_code(error)
            if header_code != "BlobNotFound" or code != "BlobNotFound":
                raise CheckFailed(
                    "WrongErrorCode", f"expected BlobNotFound, got header {header_code!r} and body {code!r}"
                ) from error
            return
        raise CheckFailed("ExpectedNotFound", f"reading {MISSING_BLOB} did not answer 404")

    # Authorisation ----------------------------------------------------------------------------

    def _signing(self) -> dict[str, object]:
        """What generate_*_sas signs with: the account key, or a user delegation key fetched with Entra ID."""
        if self.credential.account_key is not None:
            return {"account_key": self.credential.account_key}
        now = datetime.now(UTC)
        if self._user_delegation_key is None:
            self._user_delegation_key = self.service.get_user_delegation_key(
                now - timedelta(minutes=5), now + SAS_LIFETIME
            )
        return {"user_delegation_key": self._user_delegation_key}

    def _container_sas(self, container_name: str) -> str:
        return generate_container_sas(
            self._account_name(),
            container_name,
            permission=ContainerSasPermissions(read=True, write=True, list=True, add=True, create=True),
            expiry=datetime.now(UTC) + SAS_LIFETIME,
            **self._signing(),  # type: ignore[arg-type]
        )

    def _read_sas(self, container_name: str, blob_name: str) -> str:
        return generate_blob_sas(
            self._account_name(),
            container_name,
            blob_name,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + SAS_LIFETIME,
            **self._signing(),  # type: ignore[arg-type]
        )

    def _account_name(self) -> str:
        name = self.service.account_name
        if not name:
            raise CheckFailed("NoAccountName", f"cannot tell the account name from {self.endpoint}")
        return str(name)

    @staticmethod
    def _create_container(container: ContainerClient) -> None:
        container.create_container()

    @staticmethod
    def _remove(container: ContainerClient) -> None:
        # Clean-up is not a check: a container left by a failed run costs nothing and does not affect later runs.
        try:
            container.delete_container()
        except AzureError:
            return


def _error_code(error: HttpResponseError) -> str | None:
    # The storage SDK sets `error_code` from the x-ms-error-code header; azure-core does not declare it.
    code = getattr(error, "error_code", None)
    # Known codes arrive as StorageErrorCode members, whose str() is "StorageErrorCode.NAME": keep the wire value.
    return str(getattr(code, "value", code)) if code else None
