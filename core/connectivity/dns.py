"""The names each consumer maps to its private endpoint, and the private DNS zone a customer VNet needs."""

from __future__ import annotations

from pydantic import BaseModel

from core.clusters.models import Cluster
from core.connectivity.catalog import ConsumerKind, connectivity_catalog

# The façade answers on its endpoint FQDN and on account names below it (the cluster's own zone has '@' and '*').
RECORD_NAMES = ["@", "*"]
PRIVATE_ENDPOINT_IP = "<the private endpoint's IP address>"


class DnsRecord(BaseModel):
    zone: str
    name: str
    type: str
    value: str


class ConsumerDns(BaseModel):
    consumer: ConsumerKind
    fqdns: list[str]
    private_dns_zone: str | None
    records: list[DnsRecord]
    how: str


class ClusterDns(BaseModel):
    endpoint_fqdn: str | None
    consumers: list[ConsumerDns]


def consumer_fqdns(cluster: Cluster) -> list[str]:
    """The FQDNs a managed service maps to its managed private endpoint (empty until the cluster has one)."""
    return [cluster.endpoint_fqdn] if cluster.endpoint_fqdn else []


def cluster_dns(cluster: Cluster) -> ClusterDns:
    """Per consumer that can connect: the FQDNs to map and, for a customer VNet, the zone and its records."""
    fqdn = cluster.endpoint_fqdn
    consumers: list[ConsumerDns] = []
    for entry in connectivity_catalog().consumer:
        if not entry.can_connect or fqdn is None:
            continue
        if entry.kind == ConsumerKind.CUSTOMER_VNET:
            consumers.append(
                ConsumerDns(
                    consumer=entry.kind,
                    fqdns=[fqdn, f"*.{fqdn}"],
                    private_dns_zone=fqdn,
                    records=[
                        DnsRecord(zone=fqdn, name=name, type="A", value=PRIVATE_ENDPOINT_IP) for name in RECORD_NAMES
                    ],
                    how="create the private DNS zone, add the A records and link the zone to the endpoint's VNet",
                )
            )
        else:
            consumers.append(
                ConsumerDns(
                    consumer=entry.kind,
                    fqdns=consumer_fqdns(cluster),
                    private_dns_zone=None,
                    records=[],
                    how="list the FQDNs on the managed private endpoint; the service's managed network resolves them",
                )
            )
    return ClusterDns(endpoint_fqdn=fqdn, consumers=consumers)
