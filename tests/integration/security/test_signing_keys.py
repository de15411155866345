"""Signing keys expire: a key the Entra emulator stops publishing is refused once the key set's lifespan ends.

The verifier is the one the API builds (PyJWKClient underneath), talking over HTTPS to an Entra emulator of this
module's own: retiring a key of the session's shared emulator would invalidate tokens that the session's long-lived
processes hold. The emulator rotates (a new key signs, the old one is still published) and then retires the old key
(no longer published). A token signed with the retired key is still accepted while the cached key set lives, and
refused after its lifespan; tokens signed with the new key keep working throughout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.errors import Unauthenticated
from core.identity.tokens import EntraTokenVerifier, TokenRules
from emulators.entra import EntraEmulator
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

SHORT_LIFESPAN_SECONDS = 0.5


@pytest.fixture(scope="module")
def private_entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    config = EmulatorSuiteConfig(state_dir=tmp_path_factory.mktemp("signing-keys-entra"), seed=20261207)
    suite = EmulatorSuite(config)
    suite.add(EntraEmulator.from_suite_config(config))
    suite.start()
    emulators = Emulators(suite)
    yield emulators
    emulators.close()
    suite.stop()


def verifier_for(emulators: Emulators, lifespan_seconds: float) -> EntraTokenVerifier:
    return EntraTokenVerifier(
        emulators.entra["authority_url"],
        v1_issuer_host=emulators.entra["sts_url"],
        verify=emulators.ca_bundle,
        key_lifespan_seconds=lifespan_seconds,
        # No cooldown: the new key's kid is fetched at once (the default cooldown would refuse it for 30 s).
        refetch_cooldown_seconds=0,
    )


def user_token(emulators: Emulators) -> str:
    return emulators.control_plane_token(roles=[])


def rules(emulators: Emulators) -> TokenRules:
    return TokenRules(audiences=[emulators.entra["control_plane_app_id"]])


def refused(verifier: EntraTokenVerifier, token: str, token_rules: TokenRules) -> str | None:
    """The refusal's message, or None while the token is still accepted."""
    try:
        verifier.verify(token, token_rules)
    except Unauthenticated as error:
        return error.message
    return None


def test_a_retired_signing_key_is_refused_once_the_key_sets_lifespan_ends(private_entra: Emulators) -> None:
    emulators = private_entra
    token_rules = rules(emulators)
    old_token = user_token(emulators)
    short = verifier_for(emulators, SHORT_LIFESPAN_SECONDS)
    long = verifier_for(emulators, 3600)
    assert short.verify(old_token, token_rules)["aud"] == emulators.entra["control_plane_app_id"]
    assert long.verify(old_token, token_rules)
    fetched_at = time.monotonic()

    emulators.http.post(f"{emulators.entra['control_url']}/keys/rotate").raise_for_status()
    retirement = emulators.http.post(f"{emulators.entra['control_url']}/keys/retire")
    retirement.raise_for_status()
    assert retirement.json()["retired_kids"], "the old signing key is no longer published"
    new_token = user_token(emulators)

    # Within the lifespan the cached key set still holds the old key (this is what the lifespan bounds).
    assert long.verify(old_token, token_rules)
    # After it the key set is fetched again, the old key is gone, and the remembered signature does not save it.
    message = wait_for(
        lambda: refused(short, old_token, token_rules),
        timeout_seconds=20,
        what="the retired key to be refused",
    )
    assert time.monotonic() - fetched_at >= SHORT_LIFESPAN_SECONDS
    assert message == "token signed by an unknown key"
    # A token signed with the key now published is accepted by both (an unknown kid forces one refetch).
    assert short.verify(new_token, token_rules)
    assert long.verify(new_token, token_rules)
    # That refetch replaced the long-lived verifier's key set as well: the retired key is gone there too.
    assert refused(long, old_token, token_rules) == "token signed by an unknown key"
