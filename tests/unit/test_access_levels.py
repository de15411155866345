"""How verified Entra claims become an access level (core.identity.principal)."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import Unauthenticated
from core.identity.principal import (
    APPLICATION_ADMINISTRATOR_ROLE_ID,
    GLOBAL_ADMINISTRATOR_ROLE_ID,
    AccessLevel,
    Principal,
)

PUBLISHER = "7a1c0d4e-5b2f-4e8a-9c3d-1f2e3d4c5b6a"
CUSTOMER = "3f8b2a61-9d4e-4c7a-8e15-2b6c9d0a4f71"
AUTOMATION = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
USER_DIRECTORY_ROLE = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"  # Directory Readers: not an admin role


def principal(claims: dict[str, Any], allow: dict[str, list[str]] | None = None) -> Principal:
    return Principal.from_claims(
        {"tid": CUSTOMER, "oid": "someone", **claims},
        operator_role="Operator",
        publisher_tenant_id=PUBLISHER,
        app_only_clients=allow,
    )


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"scp": "user_impersonation", "roles": ["Customer.Admin"]}, AccessLevel.ADMIN),
        ({"scp": "user_impersonation", "roles": ["Customer.Reader"]}, AccessLevel.READER),
        ({"scp": "user_impersonation"}, AccessLevel.READER),
        ({"scp": "user_impersonation", "wids": [GLOBAL_ADMINISTRATOR_ROLE_ID]}, AccessLevel.ADMIN),
        ({"scp": "user_impersonation", "wids": [APPLICATION_ADMINISTRATOR_ROLE_ID]}, AccessLevel.ADMIN),
        ({"scp": "user_impersonation", "wids": [USER_DIRECTORY_ROLE]}, AccessLevel.READER),
        # An explicit assignment wins over the fallback, both ways.
        ({"scp": "x", "roles": ["Customer.Reader"], "wids": [GLOBAL_ADMINISTRATOR_ROLE_ID]}, AccessLevel.READER),
        # The operator role means nothing outside the publisher tenant.
        ({"scp": "user_impersonation", "roles": ["Operator"]}, AccessLevel.READER),
        ({"scp": "user_impersonation", "roles": ["Operator"], "tid": PUBLISHER}, AccessLevel.OPERATOR),
    ],
)
def test_people(claims: dict[str, Any], expected: AccessLevel) -> None:
    assert principal(claims).access == expected


def test_app_only_tokens_need_the_tenants_allow_list() -> None:
    app_token = {"idtyp": "app", "azp": AUTOMATION, "roles": ["Customer.Admin"]}
    with pytest.raises(Unauthenticated, match="allow-list"):
        principal(app_token)
    with pytest.raises(Unauthenticated, match="allow-list"):
        principal(app_token, {PUBLISHER: [AUTOMATION]})  # listed for another tenant only
    admitted = principal(app_token, {CUSTOMER.upper(): [AUTOMATION.upper()]})
    assert admitted.access == AccessLevel.ADMIN
    assert admitted.is_app
    assert admitted.actor == "app:someone"


def test_app_only_tokens_act_only_with_their_own_roles() -> None:
    allow = {CUSTOMER: [AUTOMATION]}
    # No directory-role fallback for apps, and an app is never an operator.
    assert principal({"idtyp": "app", "azp": AUTOMATION, "wids": [GLOBAL_ADMINISTRATOR_ROLE_ID]}, allow).access == (
        AccessLevel.READER
    )
    publisher_app = principal(
        {"idtyp": "app", "azp": AUTOMATION, "roles": ["Operator"], "tid": PUBLISHER}, {PUBLISHER: [AUTOMATION]}
    )
    assert not publisher_app.is_operator


def test_a_token_without_scp_or_idtyp_is_app_only() -> None:
    with pytest.raises(Unauthenticated):
        principal({"appid": AUTOMATION, "roles": ["Customer.Admin"]})
