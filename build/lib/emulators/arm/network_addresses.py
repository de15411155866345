"""Private IP allocation inside subnets, the way Azure hands out addresses (first four and the last are reserved)."""

from __future__ import annotations

import ipaddress
import itertools

from emulators.arm.errors import ResourceFailure

# Azure keeps the network address, three more for its own services, and the broadcast address.
RESERVED_AT_START = 4


def allocate_address(address_prefix: str, allocated: set[str], requested: str | None = None) -> str:
    """The requested static address if valid and free, else the first free dynamic one; records it in `allocated`."""
    try:
        network = ipaddress.ip_network(address_prefix, strict=False)
    except ValueError:
        raise ResourceFailure("InvalidAddressPrefix", f"The address prefix '{address_prefix}' is not valid.") from None
    if requested:
        try:
            address = ipaddress.ip_address(requested)
        except ValueError:
            raise ResourceFailure("InvalidPrivateIPAddress", f"'{requested}' is not a valid IP address.") from None
        if address not in network:
            raise ResourceFailure(
                "PrivateIPAddressNotInSubnet",
                f"Private static IP address {requested} does not belong to the range of subnet prefix "
                f"{address_prefix}.",
            )
        if str(address) in allocated:
            raise ResourceFailure("PrivateIPAddressInUse", f"IP configuration uses address {requested} already in use.")
        allocated.add(str(address))
        return str(address)
    if network.num_addresses <= 65536:
        # Walked lazily: listing every host of the subnet on each allocation was most of the emulator's NIC work.
        for candidate in itertools.islice(network.hosts(), RESERVED_AT_START - 1, None):
            if str(candidate) not in allocated:
                allocated.add(str(candidate))
                return str(candidate)
    raise ResourceFailure("SubnetIsFull", f"Subnet with address prefix {address_prefix} has no free addresses.")
