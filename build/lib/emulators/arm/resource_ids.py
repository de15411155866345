"""Parsing and building ARM resource ids (`/subscriptions/.../providers/Namespace/type/name/...`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceId:
    """A parsed resource id. `scope` is everything before the last `/providers/` (for extension resources
    it is the id of the resource they extend); `type` is the full type (`Microsoft.Network/virtualNetworks/subnets`)
    and `name` the slash-joined names (`vnet/default`)."""

    scope: str
    type: str
    name: str

    @property
    def id(self) -> str:
        """The canonical id string."""
        return build_resource_id(self.scope, self.type, self.name.split("/"))

    @property
    def subscription_id(self) -> str | None:
        """The subscription in the scope, if any."""
        return scope_part(self.scope, "subscriptions")

    @property
    def resource_group(self) -> str | None:
        """The resource group in the scope, if any."""
        return scope_part(self.scope, "resourcegroups")

    @property
    def parent(self) -> ResourceId | None:
        """The parent of a child resource (`vnet` for `vnet/default`)."""
        names = self.name.split("/")
        if len(names) < 2:
            return None
        return ResourceId(self.scope, self.type.rsplit("/", 1)[0], "/".join(names[:-1]))

    @property
    def leaf_name(self) -> str:
        """The last name segment."""
        return self.name.split("/")[-1]


def scope_part(scope: str, key: str) -> str | None:
    """The value after `/{key}/` in a scope path (case-insensitive key), e.g. the subscription id."""
    segments = [segment for segment in scope.split("/") if segment]
    for position, segment in enumerate(segments[:-1]):
        if segment.lower() == key:
            return segments[position + 1]
    return None


def build_resource_id(scope: str, full_type: str, names: list[str]) -> str:
    """`{scope}/providers/{namespace}/{type1}/{name1}/{type2}/{name2}...`."""
    type_segments = full_type.split("/")
    if len(type_segments) - 1 != len(names):
        raise ValueError(f"type '{full_type}' needs {len(type_segments) - 1} name segments, got {len(names)}")
    path = [type_segments[0]]
    for type_segment, name in zip(type_segments[1:], names, strict=True):
        path.extend([type_segment, name])
    return f"{scope.rstrip('/')}/providers/{'/'.join(path)}"


def parse_resource_id(resource_id: str) -> ResourceId:
    """Split an id at its last `/providers/`; ValueError when it is not a provider resource id."""
    segments = [segment for segment in resource_id.split("/") if segment]
    provider_positions = [index for index, segment in enumerate(segments) if segment.lower() == "providers"]
    if not provider_positions:
        raise ValueError(f"'{resource_id}' is not a resource id")
    position = provider_positions[-1]
    rest = segments[position + 1 :]
    if len(rest) < 3 or len(rest) % 2 == 0:
        raise ValueError(f"'{resource_id}' is not a resource id")
    namespace = rest[0]
    types = [rest[index] for index in range(1, len(rest), 2)]
    names = [rest[index] for index in range(2, len(rest), 2)]
    scope = "/" + "/".join(segments[:position]) if position else ""
    return ResourceId(scope, "/".join([namespace, *types]), "/".join(names))


def resource_group_scope(subscription_id: str, resource_group: str) -> str:
    """`/subscriptions/{s}/resourceGroups/{rg}`."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


def id_key(resource_id: str) -> str:
    """The case-insensitive lookup key ARM uses for ids."""
    return resource_id.rstrip("/").lower()
