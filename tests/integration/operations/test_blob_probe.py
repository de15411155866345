"""The Blob API probe against Azurite: passes, and names the exact failing check when the endpoint breaks."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient
from pydantic import SecretStr
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.azure.credentials import CredentialFactory
from core.db import Database
from core.probes.blob_probe import CAPACITY_BLOB, CAPACITY_CONTAINER, capacity_tier_content
from core.probes.models import BlobProbeSample
from core.probes.service import probe_cluster, ready_cluster_ids
from core.settings import Settings
from harness.azurite import Azurite, azurite_available
from tests.integration.operations.conftest import plant_ready_cluster

pytestmark = pytest.mark.timeout(60)

EXPECTED_CHECKS = [
    ("create_container", "shared_key"),
    ("capacity_tier_source", "shared_key"),
    *[
        (name, authentication)
        for authentication in ("shared_key", "sas")
        for name in (
            "put_block_blob",
            "list_prefix_delimiter",
            "conditional_get",
            "ranged_read",
            "put_block_from_url",
            "expected_error",
        )
    ],
]


def probe_settings(base_settings: Settings, azurite: Azurite) -> Settings:
    return base_settings.model_copy(
        update={
            "blob_probe_endpoint_template": azurite.endpoint_template,
            "blob_probe_account_name": azurite.account_name,
            "blob_probe_account_key": SecretStr(azurite.account_key),
            "blob_probe_timeout_seconds": 3.0,
        }
    )


def run_probe(database: Database, settings: Settings, cluster_id: str) -> list[BlobProbeSample]:
    with database.session() as session:
        report = probe_cluster(session, settings, CredentialFactory(settings), cluster_id)
    with database.session() as session:
        samples = session.exec(
            select(BlobProbeSample).where(BlobProbeSample.run_id == report.run_id).order_by(col(BlobProbeSample.id))
        ).all()
    assert [(sample.check_name, sample.authentication) for sample in samples][: len(report.checks)] == [
        (check.name, check.authentication) for check in report.checks
    ]
    return list(samples)


def failure_audits(database: Database, cluster_id: str) -> list[AuditEvent]:
    with database.session() as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "cluster.blob_probe.failed", AuditEvent.subject_id == cluster_id
                )
            ).all()
        )


def test_probe_passes_every_check_with_shared_key_and_sas(
    database: Database, base_settings: Settings, azurite: Azurite
) -> None:
    cluster = plant_ready_cluster(database, azurite.endpoint_fqdn)
    with database.session() as session:
        assert cluster.id in ready_cluster_ids(session)

    samples = run_probe(database, probe_settings(base_settings, azurite), cluster.id)

    assert [(sample.check_name, sample.authentication) for sample in samples] == EXPECTED_CHECKS
    assert all(sample.succeeded for sample in samples), [(s.check_name, s.error_code) for s in samples]
    assert all(sample.latency_ms > 0 for sample in samples)
    assert failure_audits(database, cluster.id) == []


def test_tampered_capacity_blob_fails_exactly_the_range_copy(
    database: Database, base_settings: Settings, azurite: Azurite
) -> None:
    cluster = plant_ready_cluster(database, azurite.endpoint_fqdn)
    settings = probe_settings(base_settings, azurite)
    run_probe(database, settings, cluster.id)  # creates the capacity-tier source with its known content
    service = BlobServiceClient(
        azurite.account_url, credential={"account_name": azurite.account_name, "account_key": azurite.account_key}
    )
    tampered = bytearray(capacity_tier_content())
    tampered[20_000] ^= 0xFF  # inside the copied range
    service.get_blob_client(CAPACITY_CONTAINER, CAPACITY_BLOB).upload_blob(bytes(tampered), overwrite=True)
    try:
        samples = run_probe(database, settings, cluster.id)
    finally:
        service.get_blob_client(CAPACITY_CONTAINER, CAPACITY_BLOB).upload_blob(capacity_tier_content(), overwrite=True)

    failed = [sample for sample in samples if not sample.succeeded]
    assert [(sample.check_name, sample.authentication, sample.error_code) for sample in failed] == [
        ("put_block_from_url", "shared_key", "ContentMismatch")
    ]
    # The pass stops at the failing check: the SAS pass never ran.
    assert samples[-1].check_name == "put_block_from_url"
    [audit] = failure_audits(database, cluster.id)
    assert audit.details["check"] == "put_block_from_url"
    assert audit.details["error_code"] == "ContentMismatch"


def test_stopped_endpoint_fails_at_the_first_check(
    database: Database, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not azurite_available():
        pytest.skip("azurite is not installed: run `npm ci` in tools/node")
    server = Azurite(tmp_path_factory.mktemp("azurite-stopped") / "azurite.log")
    server.start()
    cluster = plant_ready_cluster(database, server.endpoint_fqdn)
    settings = probe_settings(base_settings, server)
    assert all(sample.succeeded for sample in run_probe(database, settings, cluster.id))
    server.stop()

    samples = run_probe(database, settings, cluster.id)

    assert [(sample.check_name, sample.succeeded, sample.error_code) for sample in samples] == [
        ("create_container", False, "ServiceRequestError")
    ]
    [audit] = failure_audits(database, cluster.id)
    assert audit.details["check"] == "create_container"
