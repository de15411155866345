"""The subscription and region pickers of the placement forms, for the signed-in admin of a browser session.

Wires the domain's `placement_options` to this request: the person's delegated ARM token comes from the refresh
token sealed in their server-side session, the app's token from the control plane's credential in their tenant.
"""

from __future__ import annotations

import threading

from fastapi import Request

from core.azure.credentials import CredentialFactory
from core.azure.subscriptions import SubscriptionReader, bearer_token
from core.clusters.placement_options import PlacementOptions, PlacementSources, placement_options
from core.identity.sign_in import DelegatedAccessRefused, SignedInUser, delegated_arm_scope
from core.settings import Settings
from web.browser_session import REFRESH_TOKEN_KEY, BrowserSession, user_sign_in

_reader_lock = threading.Lock()


def _reader(request: Request, settings: Settings) -> SubscriptionReader:
    with _reader_lock:
        reader: SubscriptionReader | None = getattr(request.app.state, "subscription_reader", None)
        if reader is None:
            reader = SubscriptionReader(settings.arm_endpoint, settings.tls_verify)
            request.app.state.subscription_reader = reader
        return reader


def options_for(
    request: Request,
    settings: Settings,
    session: BrowserSession,
    user: SignedInUser,
    credentials: CredentialFactory,
    requested_subscription: str | None,
    deadline: float,
) -> PlacementOptions:
    """The pickers for this person, read from ARM before `deadline` (time.monotonic); a note when they cannot be."""

    def delegated_token(timeout_seconds: float) -> str:
        refresh_token = session.get(REFRESH_TOKEN_KEY)
        if not isinstance(refresh_token, str):
            raise DelegatedAccessRefused("this session holds no refresh token")
        scope = delegated_arm_scope(settings)
        return user_sign_in(request).delegated_access_token(refresh_token, scope, timeout_seconds)

    def app_token() -> str:
        return bearer_token(credentials.customer_tenant(user.tenant_id), settings.arm_credential_scope)

    sources = PlacementSources(reader=_reader(request, settings), delegated_token=delegated_token, app_token=app_token)
    return placement_options(sources, user.tenant_id, requested_subscription, deadline)
