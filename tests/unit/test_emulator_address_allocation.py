"""The ARM emulator hands out private addresses as Azure does: the first four and the last are reserved."""

from __future__ import annotations

import pytest

from emulators.arm.errors import ResourceFailure
from emulators.arm.network_addresses import allocate_address


def test_dynamic_addresses_start_after_the_reserved_ones_until_the_subnet_is_full() -> None:
    allocated: set[str] = set()
    handed_out = [allocate_address("10.1.0.0/29", allocated) for _ in range(3)]
    assert handed_out == ["10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(ResourceFailure) as failure:
        allocate_address("10.1.0.0/29", allocated)
    assert failure.value.code == "SubnetIsFull"


def test_a_released_address_is_handed_out_again_and_a_static_one_is_checked() -> None:
    allocated = {"10.2.0.4", "10.2.0.5"}
    allocated.discard("10.2.0.4")
    assert allocate_address("10.2.0.0/24", allocated) == "10.2.0.4"
    assert allocate_address("10.2.0.0/24", allocated, requested="10.2.0.200") == "10.2.0.200"
    with pytest.raises(ResourceFailure) as in_use:
        allocate_address("10.2.0.0/24", allocated, requested="10.2.0.200")
    assert in_use.value.code == "PrivateIPAddressInUse"
    with pytest.raises(ResourceFailure) as outside:
        allocate_address("10.2.0.0/24", allocated, requested="10.3.0.9")
    assert outside.value.code == "PrivateIPAddressNotInSubnet"
