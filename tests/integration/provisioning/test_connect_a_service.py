"""Connect a service, end to end over HTTP: a customer admin declares a consumer through the JSON API, the ARM
emulator creates the consumer's connection the way that service does, and the private endpoint sync approves it
by the consumer's identifying data only. Spoofed, expired and foreign connections stay pending."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.azure.arm import ArmClient, ArmClientFactory
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.connectivity.models import ExpectedConnection
from core.db import Database
from core.networking.service import sync_private_endpoint_connections
from core.settings import Settings
from harness.cluster_report import operator_headers
from harness.scenario.consumers import endpoint_request
from tests.conftest import start_api
from tests.integration.provisioning.conftest import Driver, bearer, create_cluster, tenant_and_subscription

pytestmark = pytest.mark.timeout(120)

ATTACKER_SUBSCRIPTION = "77777777-6666-5555-4444-333333333333"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, provisioning_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path_factory.mktemp("connect-api-logs"), provisioning_settings)
    yield base_url
    group.stop_all()


@pytest.fixture
def admin(state: dict[str, Any]) -> dict[str, str]:
    return bearer(state, "contoso", "contoso-admin", ["Customer.Admin"])


@pytest.fixture
def ready_cluster(database: Database, drive: Driver, state: dict[str, Any], request: pytest.FixtureRequest) -> Cluster:
    owner = f"conn-{uuid.uuid4().hex[:8]}"
    cluster_id = create_cluster(database, state, owner=owner)
    return drive(cluster_id, lambda item: item.status == ClusterStatus.READY)


def customer_arm(state: dict[str, Any], settings: Settings) -> ArmClient:
    """The control plane's ARM client for the customer's subscription, as the worker holds it."""
    entra_tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    return ArmClientFactory(settings).for_subscription(entra_tenant_id, subscription_id)


@pytest.fixture
def sync(database: Database, state: dict[str, Any], provisioning_settings: Settings) -> Any:
    """One pass of the private endpoint sync for a cluster, as the worker runs it."""
    arm = customer_arm(state, provisioning_settings)

    def run(cluster_id: str) -> None:
        with database.session() as session:
            cluster = session.get(Cluster, cluster_id)
            assert cluster is not None
            sync_private_endpoint_connections(session, cluster, arm)

    return run


def customer_ids(state: dict[str, Any]) -> dict[str, str]:
    """One consumer identifier per kind, in the customer's (contoso's) subscription."""
    _, subscription = tenant_and_subscription(state, "contoso")
    group = f"/subscriptions/{subscription}/resourceGroups/analytics"
    return {
        "customer-vnet": f"{group}/providers/Microsoft.Network/privateEndpoints/pe-facade",
        "data-factory-managed-vnet": f"{group}/providers/Microsoft.DataFactory/factories/contoso-adf",
        "synapse-managed-vnet": f"{group}/providers/Microsoft.Synapse/workspaces/contoso-syn",
        "databricks-serverless": str(uuid.uuid4()),
        "fabric-managed-vnet": str(uuid.uuid4()),
    }


def create_as_the_service(arm_control: httpx.Client, consumer: str, resource_id: str, answer: dict[str, Any]) -> None:
    """What the consumer's service does with the instructions we gave: read only from the filled-in REST call."""
    created = arm_control.post("/private-endpoints", json=endpoint_request(consumer, resource_id, answer))
    assert created.status_code == 201, created.text


def connections(api: httpx.Client, cluster_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = api.get(f"/api/clusters/{cluster_id}/private-endpoint-connections", headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


@pytest.mark.parametrize(
    "consumer",
    [
        "customer-vnet",
        "data-factory-managed-vnet",
        "synapse-managed-vnet",
        "databricks-serverless",
        "fabric-managed-vnet",
    ],
)
def test_a_declared_consumer_gets_what_to_create_and_its_connection_is_approved_by_its_identity(
    consumer: str,
    ready_cluster: Cluster,
    state: dict[str, Any],
    arm_control: httpx.Client,
    api_url: str,
    admin: dict[str, str],
    sync: Any,
    database: Database,
    provisioning_settings: Settings,
) -> None:
    resource_id = customer_ids(state)[consumer]
    _, customer_subscription = tenant_and_subscription(state, "contoso")
    with httpx.Client(base_url=api_url, timeout=10) as api:
        declared = api.post(
            f"/api/clusters/{ready_cluster.id}/expected-connections",
            json={"consumer": consumer, "resource_id": resource_id},
            headers=admin,
        )
        assert declared.status_code == 201, declared.text
        answer = declared.json()
        rendered = str(answer["instructions"])
        assert ready_cluster.pls_resource_id is not None
        assert ready_cluster.pls_resource_id in rendered
        assert ready_cluster.pls_resource_id in answer["instructions"]["cli"]
        if consumer != "customer-vnet":
            assert ready_cluster.endpoint_fqdn is not None
            assert ready_cluster.endpoint_fqdn in rendered
        # The same form sent twice is the same expectation.
        again = api.post(
            f"/api/clusters/{ready_cluster.id}/expected-connections",
            json={"consumer": consumer, "resource_id": resource_id},
            headers=admin,
        )
        assert again.json()["expectation"]["id"] == answer["expectation"]["id"]

        create_as_the_service(arm_control, consumer, resource_id, answer)
        sync(ready_cluster.id)

        [connection] = connections(api, ready_cluster.id, admin)
        assert connection["status"] == "approved", connection
        assert connection["decided_by"] == f"policy:expected-connection:{answer['expectation']['id']}"
        if consumer == "customer-vnet":
            assert connection["source_subscription_id"] == customer_subscription
        else:  # a managed service's endpoint is in the service's subscription: no allow-list could have matched it
            assert connection["source_subscription_id"] != customer_subscription

        [expectation] = api.get(f"/api/clusters/{ready_cluster.id}/expected-connections", headers=admin).json()
        assert expectation["status"] == "matched"
        assert expectation["matched_connection_id"] == connection["id"]
        assert expectation["evidence"]["checks"]
        assert all(check["equal"] for check in expectation["evidence"]["checks"])

    # ARM holds the approval, and the audit trail holds the decision with its evidence.
    [arm_connection] = customer_arm(state, provisioning_settings).list_endpoint_connections(
        ready_cluster.resource_group, f"pls-{ready_cluster.name}"
    )
    assert arm_connection.status == "Approved"
    with database.session() as session:
        actions = session.exec(
            select(AuditEvent.action).where(AuditEvent.subject_id == ready_cluster.id).order_by(col(AuditEvent.id))
        ).all()
    assert "expected_connection.created" in actions
    assert "expected_connection.matched" in actions
    assert "private_endpoint_connection.approved" in actions


def test_spoofed_expired_and_foreign_connections_wait_for_a_person(
    ready_cluster: Cluster,
    state: dict[str, Any],
    arm_control: httpx.Client,
    api_url: str,
    admin: dict[str, str],
    sync: Any,
    database: Database,
) -> None:
    ids = customer_ids(state)
    pls = ready_cluster.pls_resource_id
    path = f"/api/clusters/{ready_cluster.id}/expected-connections"
    with httpx.Client(base_url=api_url, timeout=10) as api:
        vnet = api.post(path, json={"consumer": "customer-vnet", "resource_id": ids["customer-vnet"]}, headers=admin)
        message = vnet.json()["expectation"]["expected_request_message"]
        ncc = api.post(
            path, json={"consumer": "databricks-serverless", "resource_id": ids["databricks-serverless"]}, headers=admin
        )
        synapse = api.post(
            path, json={"consumer": "synapse-managed-vnet", "resource_id": ids["synapse-managed-vnet"]}, headers=admin
        ).json()
        late = api.post(
            path, json={"consumer": "fabric-managed-vnet", "resource_id": ids["fabric-managed-vnet"]}, headers=admin
        ).json()
        assert ncc.status_code == 201
        # The Fabric expectation's time runs out before its connection arrives.
        with database.session() as session:
            row = session.get(ExpectedConnection, late["expectation"]["id"])
            assert row is not None
            row.expires_at = utc_now() - timedelta(seconds=1)
            session.add(row)

        spoofs = [
            # Another subscription copies the request message and the endpoint's name.
            {"name": "pe-facade", "consumer_subscription_id": ATTACKER_SUBSCRIPTION, "request_message": message},
            # Another tenant's NCC.
            {"source_kind": "databricks-serverless", "consumer_resource_id": str(uuid.uuid4()), "name": "rule"},
            # Another tenant's Synapse workspace with the same managed private endpoint name.
            {
                "source_kind": "synapse-managed-vnet",
                "consumer_resource_id": ids["synapse-managed-vnet"]
                .replace("contoso-syn", "fabrikam-syn")
                .replace(ids["synapse-managed-vnet"].split("/")[2], ATTACKER_SUBSCRIPTION),
                "name": synapse["expectation"]["managed_endpoint_name"],
            },
            # The expired Fabric expectation's own connection.
            {
                "source_kind": "fabric-managed-vnet",
                "consumer_resource_id": ids["fabric-managed-vnet"],
                "name": late["instructions"]["rest"]["body"]["name"],
                "request_message": late["instructions"]["rest"]["body"]["requestMessage"],
            },
        ]
        for spoof in spoofs:
            created = arm_control.post(
                "/private-endpoints", json={"target": pls, "source_kind": "customer-vnet", **spoof}
            )
            assert created.status_code == 201, created.text
        sync(ready_cluster.id)

        listed = connections(api, ready_cluster.id, admin)
        assert len(listed) == len(spoofs)
        assert {item["status"] for item in listed} == {"pending"}
        statuses = {row["consumer_kind"]: row["status"] for row in api.get(path, headers=admin).json()}
        assert statuses == {
            "customer-vnet": "waiting",
            "databricks-serverless": "waiting",
            "synapse-managed-vnet": "waiting",
            "fabric-managed-vnet": "expired",
        }

        # The real endpoint still matches; a second copy after it finds the expectation used up.
        parts = ids["customer-vnet"].split("/")
        real = {"consumer_subscription_id": parts[2], "consumer_resource_group": parts[4], "name": parts[-1]}
        for _ in range(2):
            created = arm_control.post("/private-endpoints", json={"target": pls, "request_message": message, **real})
            assert created.status_code == 201, created.text
        sync(ready_cluster.id)
        by_status: dict[str, int] = {}
        for item in connections(api, ready_cluster.id, admin):
            by_status[item["status"]] = by_status.get(item["status"], 0) + 1
        assert by_status == {"pending": len(spoofs) + 1, "approved": 1}

    with database.session() as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.subject_id == ready_cluster.id)).all()
    assert actions.count("expected_connection.expired") == 1
    assert actions.count("expected_connection.matched") == 1


def test_only_the_tenants_admin_declares_and_hostile_input_records_nothing(
    ready_cluster: Cluster, state: dict[str, Any], api_url: str, admin: dict[str, str]
) -> None:
    ids = customer_ids(state)
    path = f"/api/clusters/{ready_cluster.id}/expected-connections"
    body = {"consumer": "synapse-managed-vnet", "resource_id": ids["synapse-managed-vnet"]}
    reader = bearer(state, "contoso", "contoso-reader", ["Customer.Reader"])
    stranger = bearer(state, "fabrikam", "fabrikam-admin", ["Customer.Admin"])
    with httpx.Client(base_url=api_url, timeout=10) as api:
        assert api.post(path, json=body).status_code == 401
        assert api.post(path, json=body, headers=reader).status_code == 403
        assert api.post(path, json=body, headers=stranger).status_code == 404
        assert api.post(path, json=body, headers=operator_headers(state)).status_code == 403

        synapse = ids["synapse-managed-vnet"]
        hostile = [
            ("synapse-managed-vnet", synapse + "\n"),
            ("synapse-managed-vnet", synapse + "/managedVirtualNetworks/default"),
            ("synapse-managed-vnet", synapse.replace("/providers/", "//providers/")),
            ("synapse-managed-vnet", synapse.replace("contoso-syn", "Contoso_Syn")),
            (
                "synapse-managed-vnet",
                synapse.replace("Microsoft.Synapse/workspaces", "Microsoft.Storage/storageAccounts"),
            ),
            ("synapse-managed-vnet", synapse.replace(synapse.split("/")[2], "not-a-subscription")),
            ("synapse-managed-vnet", "' OR 1=1 --"),
            ("synapse-managed-vnet", "/subscriptions/\u0000/x"),
            ("customer-vnet", ids["customer-vnet"].replace("pe-facade", "pe-" + "x" * 80)),
            ("databricks-serverless", "not-a-uuid"),
            ("databricks-serverless", str(uuid.uuid4()).replace("-", "")),
            ("fabric-managed-vnet", " " + str(uuid.uuid4())),
            ("data-factory-managed-vnet", "x" * 2000),
        ]
        for consumer, resource_id in hostile:
            refused = api.post(path, json={"consumer": consumer, "resource_id": resource_id}, headers=admin)
            assert refused.status_code in (400, 422), (resource_id, refused.status_code, refused.text)
            assert "error" in refused.json()

        for consumer in ("ai-search-shared-private-link", "azure-ml-managed-network"):
            refused = api.post(path, json={"consumer": consumer, "resource_id": synapse}, headers=admin)
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "ConsumerNotSupported"
            assert "customer-vnet" in refused.json()["error"]["details"]["alternative"]

        assert api.get(path, headers=admin).json() == []

        declared_answer = api.post(path, json=body, headers=admin).json()
        declared = declared_answer["expectation"]["id"]
        one_time = declared_answer["expectation"]["managed_endpoint_name"]
        assert one_time
        assert one_time in declared_answer["instructions"]["cli"]
        # A waiting expectation's one-time values would let whoever reads them pass for the service: only the
        # tenant's admins, who declare, read them; readers and operators see the expectation without them.
        for viewer in (reader, operator_headers(state)):
            seen = api.get(f"{path}/{declared}", headers=viewer).json()
            assert seen["instructions"] is None
            assert seen["expectation"]["managed_endpoint_name"] is None
            assert seen["expectation"]["expected_endpoint_name"] is None
            assert one_time not in api.get(path, headers=viewer).text
        assert api.get(f"{path}/{declared}", headers=admin).json()["expectation"]["managed_endpoint_name"] == one_time
        assert api.delete(f"{path}/{declared}", headers=reader).status_code == 403
        assert api.delete(f"{path}/{declared}", headers=stranger).status_code == 404
        cancelled = api.delete(f"{path}/{declared}", headers=admin)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert api.delete(f"{path}/{declared}", headers=admin).status_code == 409


def test_dns_outputs_and_the_consumer_matrix(
    ready_cluster: Cluster, state: dict[str, Any], api_url: str, admin: dict[str, str]
) -> None:
    fqdn = ready_cluster.endpoint_fqdn
    assert fqdn is not None
    with httpx.Client(base_url=api_url, timeout=10) as api:
        answer = api.get(f"/api/clusters/{ready_cluster.id}/connectivity", headers=admin)
        assert answer.status_code == 200, answer.text
        body = answer.json()
    dns = {item["consumer"]: item for item in body["dns"]["consumers"]}
    assert body["dns"]["endpoint_fqdn"] == fqdn
    assert set(dns) == {
        "customer-vnet",
        "data-factory-managed-vnet",
        "synapse-managed-vnet",
        "databricks-serverless",
        "fabric-managed-vnet",
    }
    vnet = dns["customer-vnet"]
    assert vnet["private_dns_zone"] == fqdn
    assert {(record["zone"], record["name"], record["type"]) for record in vnet["records"]} == {
        (fqdn, "@", "A"),
        (fqdn, "*", "A"),
    }
    assert vnet["fqdns"] == [fqdn, f"*.{fqdn}"]
    for managed in (
        "data-factory-managed-vnet",
        "synapse-managed-vnet",
        "databricks-serverless",
        "fabric-managed-vnet",
    ):
        assert dns[managed]["fqdns"] == [fqdn]
        assert dns[managed]["private_dns_zone"] is None
    matrix = {row["consumer"]: row["state"] for row in body["consumers"]}
    assert matrix["ai-search-shared-private-link"] == "not supported"
    assert matrix["customer-vnet"] == "not connected"


def test_a_cluster_being_removed_takes_no_new_service(
    ready_cluster: Cluster, database: Database, state: dict[str, Any], api_url: str, admin: dict[str, str]
) -> None:
    with database.session() as session:
        cluster = session.get(Cluster, ready_cluster.id)
        assert cluster is not None
        cluster.desired_deleted = True  # unsubscribed: the controller is about to remove it
        session.add(cluster)
    body = {"consumer": "synapse-managed-vnet", "resource_id": customer_ids(state)["synapse-managed-vnet"]}
    with httpx.Client(base_url=api_url, timeout=10) as api:
        refused = api.post(f"/api/clusters/{ready_cluster.id}/expected-connections", json=body, headers=admin)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "ClusterGoingAway"
    with database.session() as session:
        recorded = session.exec(select(ExpectedConnection).where(ExpectedConnection.cluster_id == ready_cluster.id))
        assert recorded.all() == []
