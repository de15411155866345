"""Private Link Services and consumers' private endpoint connections through azure-mgmt-network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    AddressSpace,
    FrontendIPConfiguration,
    LoadBalancer,
    LoadBalancerSku,
    PrivateEndpointConnection,
    PrivateLinkService,
    PrivateLinkServiceConnectionState,
    PrivateLinkServiceIpConfiguration,
    PrivateLinkServicePropertiesAutoApproval,
    PrivateLinkServicePropertiesVisibility,
    Subnet,
    VirtualNetwork,
)

pytestmark = pytest.mark.timeout(30)


def build_private_link_service(
    network: NetworkManagementClient, resource_group: str, auto_approved: list[str], visible: list[str]
) -> PrivateLinkService:
    """vnet + Standard internal LB + PLS, created directly through the SDK (no deployment)."""
    network.virtual_networks.begin_create_or_update(
        resource_group,
        "facade-vnet",
        VirtualNetwork(
            location="westeurope",
            address_space=AddressSpace(address_prefixes=["10.20.0.0/16"]),
            subnets=[
                Subnet(name="frontend", address_prefix="10.20.1.0/24"),
                Subnet(name="nat", address_prefix="10.20.2.0/24", private_link_service_network_policies="Disabled"),
            ],
        ),
    ).result()
    frontend_subnet = network.subnets.get(resource_group, "facade-vnet", "frontend")
    nat_subnet = network.subnets.get(resource_group, "facade-vnet", "nat")
    balancer = network.load_balancers.begin_create_or_update(
        resource_group,
        "facade-lb",
        LoadBalancer(
            location="westeurope",
            sku=LoadBalancerSku(name="Standard"),
            frontend_ip_configurations=[FrontendIPConfiguration(name="fe", subnet=Subnet(id=frontend_subnet.id))],
        ),
    ).result()
    return network.private_link_services.begin_create_or_update(
        resource_group,
        "facade-pls",
        PrivateLinkService(
            location="westeurope",
            load_balancer_frontend_ip_configurations=[
                FrontendIPConfiguration(id=balancer.frontend_ip_configurations[0].id)
            ],
            ip_configurations=[
                PrivateLinkServiceIpConfiguration(name="nat0", subnet=Subnet(id=nat_subnet.id), primary=True)
            ],
            visibility=PrivateLinkServicePropertiesVisibility(subscriptions=visible),
            auto_approval=PrivateLinkServicePropertiesAutoApproval(subscriptions=auto_approved),
            enable_proxy_protocol=True,
            fqdns=["facade.blob.example"],
        ),
    ).result()


def test_private_endpoints_auto_approved_or_pending_then_approved_and_rejected(
    arm_mgmt_client: Callable[..., Any], resource_group: str, arm_control: httpx.Client
) -> None:
    network: NetworkManagementClient = arm_mgmt_client(NetworkManagementClient)
    trusted, other, hidden = (
        "11111111-0000-4000-8000-000000000001",
        "22222222-0000-4000-8000-000000000002",
        "33333333-0000-4000-8000-000000000003",
    )
    service = build_private_link_service(network, resource_group, auto_approved=[trusted], visible=[trusted, other])
    assert service.alias.startswith("facade-pls.")
    assert service.alias.endswith(".westeurope.azure.privatelinkservice")
    assert service.ip_configurations[0].private_ip_address == "10.20.2.4"
    assert service.enable_proxy_protocol is True
    assert (
        network.load_balancers.get(resource_group, "facade-lb").frontend_ip_configurations[0].private_ip_address
        == "10.20.1.4"
    )

    def connect(
        subscription_id: str, name: str, source_kind: str = "customer-vnet", target: str | None = None
    ) -> httpx.Response:
        return arm_control.post(
            "/private-endpoints",
            json={
                "target": target or service.alias,
                "consumer_subscription_id": subscription_id,
                "name": name,
                "request_message": f"please approve {name}",
                "source_kind": source_kind,
            },
        )

    auto = connect(trusted, "trusted-pe")
    pending = connect(other, "synapse-pe", source_kind="synapse-managed-vnet", target=service.id)
    refused = connect(hidden, "hidden-pe")
    assert auto.status_code == 201
    assert pending.status_code == 201
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "PrivateLinkServiceNotVisibleToSubscription"

    connections = {
        item.name.split(".")[0]: item
        for item in network.private_link_services.list_private_endpoint_connections(resource_group, "facade-pls")
    }
    assert connections["trusted-pe"].private_link_service_connection_state.status == "Approved"
    assert connections["synapse-pe"].private_link_service_connection_state.status == "Pending"
    assert connections["synapse-pe"].private_link_service_connection_state.description == "please approve synapse-pe"
    assert f"/subscriptions/{other}/" in connections["synapse-pe"].private_endpoint.id
    assert len(network.private_link_services.get(resource_group, "facade-pls").private_endpoint_connections) == 2

    approved = network.private_link_services.update_private_endpoint_connection(
        resource_group,
        "facade-pls",
        connections["synapse-pe"].name,
        PrivateEndpointConnection(
            private_link_service_connection_state=PrivateLinkServiceConnectionState(
                status="Approved", description="approved by policy"
            )
        ),
    )
    assert approved.private_link_service_connection_state.status == "Approved"
    fetched = network.private_link_services.get_private_endpoint_connection(
        resource_group, "facade-pls", connections["synapse-pe"].name
    )
    assert fetched.private_link_service_connection_state.description == "approved by policy"

    rejected = network.private_link_services.update_private_endpoint_connection(
        resource_group,
        "facade-pls",
        connections["trusted-pe"].name,
        PrivateEndpointConnection(
            private_link_service_connection_state=PrivateLinkServiceConnectionState(status="Rejected", description="no")
        ),
    )
    assert rejected.private_link_service_connection_state.status == "Rejected"
    with pytest.raises(HttpResponseError) as raised:
        network.private_link_services.update_private_endpoint_connection(
            resource_group,
            "facade-pls",
            connections["trusted-pe"].name,
            PrivateEndpointConnection(
                private_link_service_connection_state=PrivateLinkServiceConnectionState(status="Approved")
            ),
        )
    assert raised.value.error.code == "CannotChangeRejectedPrivateEndpointConnection"


def test_private_link_service_needs_policies_disabled_on_its_subnet(
    arm_mgmt_client: Callable[..., Any], resource_group: str
) -> None:
    network: NetworkManagementClient = arm_mgmt_client(NetworkManagementClient)
    build_private_link_service(network, resource_group, auto_approved=[], visible=[])
    frontend_subnet = network.subnets.get(resource_group, "facade-vnet", "frontend")
    balancer = network.load_balancers.get(resource_group, "facade-lb")
    with pytest.raises(HttpResponseError) as raised:
        network.private_link_services.begin_create_or_update(
            resource_group,
            "second-pls",
            PrivateLinkService(
                location="westeurope",
                load_balancer_frontend_ip_configurations=[
                    FrontendIPConfiguration(id=balancer.frontend_ip_configurations[0].id)
                ],
                ip_configurations=[
                    PrivateLinkServiceIpConfiguration(name="nat0", subnet=Subnet(id=frontend_subnet.id))
                ],
            ),
        ).result()
    assert raised.value.error.code == "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet"
