"""The probe's Entra ID pass against Azurite over HTTPS with OAuth: bearer tokens, a user delegation key, and SAS.

Azurite (`--oauth basic`) does not check a token's signature but insists on Azure's v1 issuer
(`https://sts.windows.net/{tenant}/`), which the Entra emulator issues like Azure does. The token comes
through the production path: CredentialFactory's control-plane credential in the customer's tenant.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from core.azure.credentials import CredentialFactory
from core.db import Database
from core.probes.blob_probe import AccountCredential, BlobProbe
from core.probes.models import BlobProbeSample
from core.probes.service import record_probe_report
from core.settings import Settings
from emulators.suite import EmulatorSuite
from harness.azurite import Azurite, AzuriteTls, azurite_available
from tests.integration.operations.conftest import plant_ready_cluster

pytestmark = pytest.mark.timeout(60)

DATA_CHECKS = [
    "put_block_blob",
    "list_prefix_delimiter",
    "conditional_get",
    "ranged_read",
    "put_block_from_url",
    "expected_error",
]


@pytest.fixture(scope="module")
def azurite_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite over HTTPS with a self-signed loopback certificate, accepting OAuth bearer tokens."""
    if not azurite_available():
        pytest.skip("azurite is not installed: run `npm ci` in tools/node")
    directory = tmp_path_factory.mktemp("azurite-https")
    server = Azurite(directory / "azurite.log", tls=AzuriteTls.generate(directory / "tls"))
    server.start()
    yield server
    server.stop()


def _trusted_certificate(azurite: Azurite) -> str:
    assert azurite.tls is not None
    return str(azurite.tls.ca_path)


def test_entra_pass_and_sas_from_a_user_delegation_key_pass_against_azurite(
    azurite_https: Azurite, emulator_suite: EmulatorSuite, database: Database, operations_settings: Settings
) -> None:
    tenant_id = emulator_suite.state()["entra"]["tenants"]["contoso"]["id"]
    credential = CredentialFactory(operations_settings).customer_tenant(tenant_id)
    cluster = plant_ready_cluster(database, azurite_https.endpoint_fqdn, entra_tenant_id=tenant_id)
    probe = BlobProbe(
        azurite_https.account_url,
        AccountCredential(token_credential=credential),
        timeout_seconds=5.0,
        connection_verify=_trusted_certificate(azurite_https),
    )
    try:
        report = probe.run()
    finally:
        probe.close()

    failure = report.first_failure
    assert failure is None, f"{failure.name} ({failure.authentication}): {failure.error_code} {failure.error_message}"
    assert [(check.name, check.authentication) for check in report.checks] == [
        ("create_container", "entra"),
        ("capacity_tier_source", "entra"),
        *[(name, "entra") for name in DATA_CHECKS],
        *[(name, "sas") for name in DATA_CHECKS],
    ]
    with database.session() as session:
        stored = session.get(type(cluster), cluster.id)
        assert stored is not None
        record_probe_report(session, stored, report)
    with database.session() as session:
        samples = session.exec(
            select(BlobProbeSample).where(BlobProbeSample.run_id == report.run_id).order_by(col(BlobProbeSample.id))
        ).all()
    assert [sample.authentication for sample in samples].count("entra") == 2 + len(DATA_CHECKS)
    assert all(sample.succeeded for sample in samples)
