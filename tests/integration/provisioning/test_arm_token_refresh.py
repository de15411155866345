"""A token whose signing key Entra retired is replaced once, so ARM calls keep working through an emergency rollover."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.azure.arm import ArmAccessDenied, ArmClientFactory
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig, build_default_suite
from harness.emulator_environment import settings_for_emulators
from tests.integration.provisioning.conftest import tenant_and_subscription


@pytest.fixture(scope="module")
def private_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorSuite]:
    """Emulators of this module's own: retiring the shared Entra's signing key would void every process's tokens."""
    suite = build_default_suite(EmulatorSuiteConfig(state_dir=tmp_path_factory.mktemp("arm-token-refresh"), seed=11))
    suite.start()
    yield suite
    suite.stop()


def entra_control(state: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=state["entra"]["control_url"], verify=state["ca_bundle"], timeout=15)


def test_after_entra_retires_the_key_of_a_cached_token_the_next_arm_call_still_succeeds(
    private_suite: EmulatorSuite,
) -> None:
    state = private_suite.state()
    arm = ArmClientFactory(settings_for_emulators(state, arm_retry_total=0)).for_subscription(
        *tenant_and_subscription(state, "contoso")
    )
    regions = arm.list_locations()
    assert regions  # a token is cached now
    with entra_control(state) as entra:
        entra.post("/keys/rotate").raise_for_status()
        assert entra.post("/keys/retire").json()["retired_kids"]

    assert arm.list_locations() == regions


def test_a_refusal_that_a_fresh_token_does_not_cure_is_raised(private_suite: EmulatorSuite) -> None:
    state = private_suite.state()
    _, subscription_id = tenant_and_subscription(state, "contoso")
    # The app's credential for another tenant: ARM refuses its tokens for this subscription whatever their age.
    fabrikam_tenant, _ = tenant_and_subscription(state, "fabrikam")
    arm = ArmClientFactory(settings_for_emulators(state, arm_retry_total=0)).for_subscription(
        fabrikam_tenant, subscription_id
    )
    with pytest.raises(ArmAccessDenied):
        arm.list_locations()
