"""The connectivity catalog's facts and the parsing of consumer identifiers that expectations are built from."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from core.connectivity.catalog import ConsumerKind, SupportLevel, connectivity_catalog
from core.connectivity.consumers import connection_rule, parse_consumer
from core.errors import ValidationFailed

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/analytics"


def test_every_consumer_is_described_once_with_public_sources() -> None:
    catalog = connectivity_catalog()
    assert {entry.kind for entry in catalog.consumer} == set(ConsumerKind)
    for entry in catalog.consumer:
        assert all(str(source).startswith("https://learn.microsoft.com/") for source in entry.sources), entry.kind
        if entry.support != SupportLevel.SUPPORTED:
            assert entry.alternative, entry.kind


def test_the_catalog_says_what_cannot_target_a_partner_private_link_service() -> None:
    catalog = connectivity_catalog()
    assert catalog.entry(ConsumerKind.AI_SEARCH).support == SupportLevel.UNSUPPORTED
    assert catalog.entry(ConsumerKind.AZURE_ML).support == SupportLevel.UNSUPPORTED
    assert catalog.entry(ConsumerKind.DATABRICKS_SERVERLESS).support == SupportLevel.PREVIEW
    assert catalog.entry(ConsumerKind.FABRIC).support == SupportLevel.PREVIEW


@pytest.mark.parametrize(
    ("kind", "value", "name"),
    [
        (ConsumerKind.CUSTOMER_VNET, f"{GROUP}/providers/Microsoft.Network/privateEndpoints/pe-1", "pe-1"),
        (ConsumerKind.DATA_FACTORY, f"{GROUP}/providers/microsoft.datafactory/factories/Adf-01", "Adf-01"),
        (ConsumerKind.SYNAPSE, f"{GROUP}/providers/Microsoft.Synapse/workspaces/syn1", "syn1"),
    ],
)
def test_arm_ids_parse_to_their_canonical_form(kind: ConsumerKind, value: str, name: str) -> None:
    identity = parse_consumer(kind, value)
    assert identity.name == name
    assert identity.subscription_id == SUBSCRIPTION
    assert identity.resource_group == "analytics"
    assert identity.resource_id.lower() == value.lower()


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (ConsumerKind.SYNAPSE, f"{GROUP}/providers/Microsoft.Synapse/workspaces/syn1\n"),
        (ConsumerKind.SYNAPSE, f"{GROUP}/providers/Microsoft.Synapse/workspaces/Syn_1"),
        (ConsumerKind.SYNAPSE, f"{GROUP}/providers/Microsoft.Synapse/workspaces/syn1/bigDataPools/p"),
        (ConsumerKind.SYNAPSE, f"{GROUP}/providers/Microsoft.Storage/storageAccounts/syn1"),
        (ConsumerKind.SYNAPSE, f"{GROUP}//providers/Microsoft.Synapse/workspaces/syn1"),
        (ConsumerKind.DATA_FACTORY, "/subscriptions/abc/resourceGroups/g/providers/Microsoft.DataFactory/factories/f1"),
        (ConsumerKind.DATA_FACTORY, f"{GROUP}/providers/Microsoft.DataFactory/factories/-f1"),
        (ConsumerKind.CUSTOMER_VNET, f"{GROUP}/providers/Microsoft.Network/privateEndpoints/pé"),
        (ConsumerKind.DATABRICKS_SERVERLESS, "not-a-uuid"),
        (ConsumerKind.DATABRICKS_SERVERLESS, "4d07d0e0299a43239d6342a42b4ba6dd"),
        (ConsumerKind.FABRIC, "{30c81cdc-22aa-4443-9b9b-4f7c058bd188}"),
        (ConsumerKind.AI_SEARCH, f"{GROUP}/providers/Microsoft.Search/searchServices/s1"),
    ],
)
def test_anything_but_exactly_an_id_is_refused(kind: ConsumerKind, value: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_consumer(kind, value)


def test_each_rule_binds_a_consumer_by_more_than_its_subscription() -> None:
    vnet = connection_rule(
        parse_consumer(ConsumerKind.CUSTOMER_VNET, f"{GROUP}/providers/Microsoft.Network/privateEndpoints/pe-1")
    )
    assert vnet.endpoint_id is not None
    assert vnet.endpoint_id.endswith("/pe-1")
    assert vnet.request_message is not None
    assert vnet.request_message.startswith("vast-connect ")
    factory = connection_rule(
        parse_consumer(ConsumerKind.DATA_FACTORY, f"{GROUP}/providers/Microsoft.DataFactory/factories/adf1")
    )
    assert factory.endpoint_name == f"adf1.{factory.managed_endpoint_name}"
    ncc = str(uuid.uuid4())
    assert ncc in (connection_rule(parse_consumer(ConsumerKind.DATABRICKS_SERVERLESS, ncc)).request_message or "")
    # One-time values: two declarations of the same consumer are told different names and messages.
    again = connection_rule(
        parse_consumer(ConsumerKind.DATA_FACTORY, f"{GROUP}/providers/Microsoft.DataFactory/factories/adf1")
    )
    assert again.managed_endpoint_name != factory.managed_endpoint_name


def test_the_readme_table_is_the_catalog() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Connecting Azure services", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split(" | ")[0].lstrip("| "): line
        for line in section.splitlines()
        if line.startswith("| ") and "(`" in line
    }
    for entry in connectivity_catalog().consumer:
        row = rows[f"{entry.title} (`{entry.kind}`)"]
        assert f" | {entry.support} | " in row
        assert all(str(source) in row for source in entry.sources), entry.kind
