"""Marketplace SaaS endpoints: the landing page (sign-in, purchase, deployment choices, progress) and the webhook.

The landing page resolves the purchase token with the publisher's credential, signs the customer in with
Entra ID, records the purchase and the cluster's desired spec in one transaction, then shows progress from
the audit trail. The webhook verifies Marketplace's Entra token, stores the operation durably (unique on
its id) and answers 200 before any slow work; a worker verifies and applies it.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlmodel import select

from api.browser_session import BrowserSession, user_sign_in
from api.dependencies import DatabaseDep, SettingsDep
from api.errors import ErrorResponse, error_body, error_response, error_responses
from api.openapi_schemas import inline_schema, raw_json_body
from api.permissions import Permission, declares, public_route
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.catalog.models import Offer, Plan
from core.db import Database
from core.errors import BadRequest, Conflict, ControlPlaneError, Forbidden, Unauthenticated, UpstreamUnavailable
from core.identity.principal import Principal
from core.identity.sign_in import SignedInUser
from core.identity.tokens import EntraTokenVerifier, TokenRules
from core.marketplace.fulfillment_client import FulfillmentClient, ResolvedPurchase
from core.marketplace.http import MarketplaceError, MarketplaceUnreachable
from core.settings import Settings
from core.subscriptions.queries import purchase_progress
from core.subscriptions.schemas import DeploymentChoices, PurchaseProgress, WebhookPayload
from core.subscriptions.service import (
    check_signed_in_party,
    complete_placement,
    find_subscription,
    record_purchase,
    token_already_confirmed,
)
from core.subscriptions.webhook_store import record_webhook

router = APIRouter(prefix="/marketplace", tags=["marketplace"])
# The browser-facing pages answer their errors with an HTML page, except FastAPI's own parameter validation.
HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
HTML_OR_JSON_ERROR = {**HTML_PAGE, "application/json": {"schema": inline_schema(ErrorResponse)}}
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
CALLBACK_PATH = "/marketplace/landing/callback"
FORM_FIELDS = (
    "region",
    "azure_subscription_id",
    "resource_group",
    "pls_visibility_subscriptions",
    "pls_auto_approval_subscriptions",
    "key_vault_sku",
    "key_type",
    "key_size",
    "rotation_days",
)
FORM_DEFAULTS = {"key_vault_sku": "standard", "key_type": "RSA", "key_size": "3072", "rotation_days": "90"}
# The choices that say where the cluster goes: only an admin of the beneficiary's tenant makes them.
PLACEMENT_FIELDS = (
    "region",
    "azure_subscription_id",
    "resource_group",
    "pls_visibility_subscriptions",
    "pls_auto_approval_subscriptions",
)
NEEDS_ADMIN = (
    "Choosing where the cluster is deployed needs the Customer.Admin role of your organisation (or, where none "
    "is assigned, a Global or Application Administrator). Ask your Entra administrator, then open the link again."
)
_services_lock = threading.Lock()
# Storing a webhook is mostly Python work under the GIL: a few threads overlap its database round trips, while
# one thread per in-flight request would only fight the event loop for the GIL and stretch every latency.
WEBHOOK_STORE_THREADS = anyio.CapacityLimiter(4)
# When a customer should open the purchase link again after Marketplace failed to resolve it.
LANDING_RETRY_AFTER_SECONDS = 120


def fulfillment_client(request: Request) -> FulfillmentClient:
    """The API process's fulfilment client, built on first use."""
    with _services_lock:
        client: FulfillmentClient | None = getattr(request.app.state, "fulfillment_client", None)
        if client is None:
            client = FulfillmentClient.from_settings(request.app.state.settings)
            request.app.state.fulfillment_client = client
        return client


@declares(Permission.READ)
def landing_user(request: Request, settings: SettingsDep) -> SignedInUser | None:
    """The person signed in to the landing pages, if any (the handlers answer a page asking to sign in)."""
    return BrowserSession.load(request, settings).user


@declares(Permission.ACT)
def placing_user(request: Request, settings: SettingsDep) -> SignedInUser | None:
    """The person placing a cluster: the handler checks they are an admin of the beneficiary's tenant."""
    return BrowserSession.load(request, settings).user


def _principal(user: SignedInUser, settings: Settings) -> Principal:
    claims = {
        "tid": user.tenant_id,
        "oid": user.object_id,
        "roles": list(user.roles),
        "wids": list(user.directory_roles),
        "idtyp": "user",
    }
    return Principal.from_claims(
        claims, operator_role=settings.operator_app_role, publisher_tenant_id=settings.publisher_tenant_id
    )


def _begin_sign_in(request: Request, session: BrowserSession, settings: Settings, after: str) -> Response:
    """Send the browser to Entra; the callback comes back to `after` (a path of the landing pages)."""
    flow = user_sign_in(request).begin(settings.public_base_url.rstrip("/") + CALLBACK_PATH)
    session.set("sign_in_flow", flow)
    session.set("landing_next", after)
    response = RedirectResponse(flow["auth_uri"], status_code=302)
    session.save(response)
    return response


def _page(
    request: Request, session: BrowserSession, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    user = session.user.to_dict() if session.user is not None else None
    response = templates.TemplateResponse(
        request, template, {"user": user, **context}, status_code=status_code, headers={"Cache-Control": "no-store"}
    )
    session.save(response)
    return response


def _error_page(
    request: Request, session: BrowserSession, status_code: int, heading: str, message: str
) -> HTMLResponse:
    return _page(request, session, "marketplace/error.html", {"heading": heading, "message": message}, status_code)


def _resolve(request: Request, token: str) -> ResolvedPurchase:
    """Resolve a landing token; an invalid, expired or foreign token becomes a 400/403 domain error.

    Marketplace failing after the client's retries (5xx, or no answer) becomes UpstreamUnavailable: the
    token is fine, the customer only has to come back.
    """
    try:
        return fulfillment_client(request).resolve(token)
    except MarketplaceError as error:
        if error.status == 403:
            raise Forbidden("this purchase link belongs to another publisher") from None
        if 400 <= error.status < 500:
            raise BadRequest(f"this purchase link is invalid or has expired ({error.message})") from None
        raise UpstreamUnavailable(f"Marketplace could not resolve the purchase ({error.message})") from None
    except MarketplaceUnreachable as error:
        raise UpstreamUnavailable(f"Marketplace did not answer ({error.message})") from None


def _resolution_error_page(request: Request, session: BrowserSession, error: ControlPlaneError) -> HTMLResponse:
    """The page for a purchase that could not be opened; an outage asks the customer to come back later."""
    if isinstance(error, UpstreamUnavailable):
        page = _error_page(
            request,
            session,
            503,
            "Marketplace is not answering right now",
            "Nothing was lost: open your purchase link again in a few minutes.",
        )
        page.headers["Retry-After"] = str(LANDING_RETRY_AFTER_SECONDS)
        return page
    return _error_page(request, session, error.status_code, "We could not open this purchase", error.message)


@router.get(
    "/landing",
    response_class=HTMLResponse,
    dependencies=[public_route("the purchase link: the Marketplace token names the purchase, the sign-in its tenant")],
    summary="Landing page of a Marketplace purchase",
    responses={
        302: {"description": "Not signed in: to Entra ID sign-in"},
        303: {"description": "The purchase is already set up: to its progress page"},
        400: {
            "description": "No purchase token or an invalid one (a page); a NUL in the URL",
            "content": HTML_OR_JSON_ERROR,
        },
        403: {"description": "The token is another publisher's or was already used", "content": HTML_PAGE},
        422: {"description": "A query parameter is invalid", "content": HTML_OR_JSON_ERROR},
        503: {"description": "Marketplace could not resolve the purchase: come back later", "content": HTML_PAGE},
    },
)
def landing(
    request: Request, settings: SettingsDep, database: DatabaseDep, token: Annotated[str | None, Query()] = None
) -> Response:
    """Sign the customer in, resolve the purchase and show the deployment form (or the progress of a return)."""
    session = BrowserSession.load(request, settings)
    if not token:
        return _error_page(request, session, 400, "Missing purchase link", "The link has no purchase token.")
    signed_in = session.user
    if signed_in is None:
        # The token waits sealed in the server-side session (never in the cookie) until Entra sends the browser back.
        session.set("landing_token", token)
        return _begin_sign_in(request, session, settings, "landing")
    try:
        purchase = _resolve(request, token)
        check_signed_in_party(purchase, signed_in.tenant_id)
    except (BadRequest, Forbidden, UpstreamUnavailable) as error:
        return _resolution_error_page(request, session, error)
    with database.session() as db:
        existing = find_subscription(db, purchase.id)
        if existing is not None and existing.placement_pending:
            if not _is_beneficiary(purchase, signed_in):
                return _handoff_page(request, session, purchase)  # the purchaser again: the link to pass on
            return RedirectResponse(_placement_path(purchase.id), status_code=303)
        if token_already_confirmed(db, token):
            return _error_page(
                request, session, 403, "This link was already used", "This purchase link already set up a subscription."
            )
        if existing is not None:
            # A return through "Manage account": the purchase is set up, show where it stands.
            return RedirectResponse(f"/marketplace/subscriptions/{quote(purchase.id, safe='')}", status_code=303)
    if _is_beneficiary(purchase, signed_in) and not _principal(signed_in, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    return _landing_form(request, session, database, purchase, token, dict(FORM_DEFAULTS), [])


def _is_beneficiary(purchase: ResolvedPurchase, user: SignedInUser) -> bool:
    return (purchase.subscription.beneficiary.tenant_id or "").lower() == user.tenant_id.lower()


def _placement_path(subscription_id: str) -> str:
    return f"/marketplace/subscriptions/{quote(subscription_id, safe='')}/placement"


def _landing_form(
    request: Request,
    session: BrowserSession,
    database: Database,
    purchase: ResolvedPurchase,
    token: str,
    form: dict[str, str],
    errors: list[str],
) -> HTMLResponse:
    with database.session() as db:
        offer = db.get(Offer, purchase.offer_id)
        plans = {plan.plan_id: plan for plan in db.exec(select(Plan).where(Plan.offer_id == purchase.offer_id)).all()}
    plan = plans.get(purchase.plan_id)
    signed_in = session.user
    context = {
        # Bought for another tenant: the purchaser records the purchase; the beneficiary's admin places it.
        "handoff": signed_in is not None and not _is_beneficiary(purchase, signed_in),
        "form_action": "/marketplace/landing",
        "purchase": purchase,
        "offer_name": offer.display_name if offer else purchase.offer_id,
        "plan_name": plan.display_name if plan else purchase.plan_id,
        "quantity": purchase.quantity or purchase.subscription.quantity or 1,
        "token": token,
        "csrf_token": session.csrf_token(),
        "form": {field: form.get(field, "") for field in FORM_FIELDS},
        "errors": errors,
    }
    return _page(request, session, "marketplace/landing.html", context, 422 if errors else 200)


@router.get(
    CALLBACK_PATH.removeprefix("/marketplace"),
    include_in_schema=False,
    dependencies=[public_route("Entra's redirect back to the landing page during sign-in")],
)
def landing_callback(request: Request, settings: SettingsDep) -> Response:
    """Entra ID redirects here with the authorization code; then back to the landing page (or placement page)."""
    session = BrowserSession.load(request, settings)
    flow = session.pop("sign_in_flow")
    token = session.pop("landing_token")
    after = session.pop("landing_next")
    if after == "landing" and isinstance(token, str):
        target = f"/marketplace/landing?token={quote(token, safe='')}"
    elif isinstance(after, str) and after.startswith("/marketplace/subscriptions/"):
        target = after
    else:
        target = None
    if not isinstance(flow, dict) or target is None:
        return _error_page(request, session, 400, "Sign-in expired", "Start again from the purchase link.")
    try:
        user = user_sign_in(request).complete(flow, dict(request.query_params))
    except Unauthenticated as error:
        return _error_page(request, session, 401, "Sign-in failed", error.message)
    # A new server-side session (new id, new CSRF token): nothing from before sign-in carries over.
    session.sign_in(user)
    response = RedirectResponse(target, status_code=303)
    session.save(response)
    return response


@router.post(
    "/landing",
    response_class=HTMLResponse,
    dependencies=[
        public_route(
            "confirms the purchase the Marketplace token names; placement only by an admin of the beneficiary's "
            "tenant (checked in the handler: test_placement)"
        )
    ],
    summary="Confirm a Marketplace purchase",
    responses={
        303: {"description": "Recorded: to the progress page"},
        400: {
            "description": "Invalid or expired purchase token (a page); a body that is no form",
            "content": HTML_OR_JSON_ERROR,
        },
        401: {"description": "Not signed in", "content": HTML_PAGE},
        403: {"description": "Form expired, another publisher's token, or a token already used", "content": HTML_PAGE},
        422: {
            "description": "Invalid deployment choices (the form again) or missing form fields",
            "content": HTML_OR_JSON_ERROR,
        },
        503: {"description": "Marketplace could not resolve the purchase: come back later", "content": HTML_PAGE},
    },
)
def confirm_purchase(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    token: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()],
    region: Annotated[str, Form()] = "",
    azure_subscription_id: Annotated[str, Form()] = "",
    resource_group: Annotated[str, Form()] = "",
    pls_visibility_subscriptions: Annotated[str, Form()] = "",
    pls_auto_approval_subscriptions: Annotated[str, Form()] = "",
    key_vault_sku: Annotated[str, Form()] = "standard",
    key_type: Annotated[str, Form()] = "RSA",
    key_size: Annotated[str, Form()] = "3072",
    rotation_days: Annotated[str, Form()] = "90",
) -> Response:
    """Validate the deployment choices and record the subscription with its desired spec in one transaction."""
    session = BrowserSession.load(request, settings)
    signed_in = session.user
    if signed_in is None:
        return _error_page(request, session, 401, "Please sign in", "Open the purchase link again to sign in.")
    try:
        session.check_csrf(csrf_token)
    except Forbidden as error:
        return _error_page(request, session, 403, "Form expired", error.message)
    try:
        purchase = _resolve(request, token)
        check_signed_in_party(purchase, signed_in.tenant_id)
    except (BadRequest, Forbidden, UpstreamUnavailable) as error:
        return _resolution_error_page(request, session, error)
    actor = f"user:{signed_in.object_id}"
    if not _is_beneficiary(purchase, signed_in):
        # The purchaser's tenant: record the purchase, hand placement to the beneficiary's admin.
        submitted = (region, azure_subscription_id, resource_group, pls_visibility_subscriptions)
        if any(value.strip() for value in (*submitted, pls_auto_approval_subscriptions)):
            return _error_page(
                request,
                session,
                403,
                "Only the beneficiary chooses where the cluster goes",
                "This purchase is for another organisation: an admin of that organisation chooses the Azure "
                "subscription, region and resource group. Submit the purchase without deployment choices.",
            )
        try:
            with database.session() as db:
                record_purchase(db, purchase, marketplace_token=token, choices=None, actor=actor)
        except Conflict as error:
            return _error_page(request, session, 403, "This link was already used", error.message)
        return _handoff_page(request, session, purchase)
    if not _principal(signed_in, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    form = {
        "region": region,
        "azure_subscription_id": azure_subscription_id,
        "resource_group": resource_group,
        "pls_visibility_subscriptions": pls_visibility_subscriptions,
        "pls_auto_approval_subscriptions": pls_auto_approval_subscriptions,
        "key_vault_sku": key_vault_sku,
        "key_type": key_type,
        "key_size": key_size,
        "rotation_days": rotation_days,
    }
    try:
        choices = DeploymentChoices.from_form(form)
    except ValidationError as error:
        problems = [f"{_field_label(issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        return _landing_form(request, session, database, purchase, token, form, problems)
    try:
        with database.session() as db:
            record_purchase(db, purchase, marketplace_token=token, choices=choices, actor=actor)
    except Conflict as error:
        return _error_page(request, session, 403, "This link was already used", error.message)
    response = RedirectResponse(f"/marketplace/subscriptions/{quote(purchase.id, safe='')}", status_code=303)
    session.save(response)
    return response


def _field_label(location: tuple[int | str, ...]) -> str:
    return str(location[-1]).replace("_", " ") if location else "form"


def _handoff_page(request: Request, session: BrowserSession, purchase: ResolvedPurchase) -> HTMLResponse:
    """The purchaser's page: recorded; the link an admin of the beneficiary's tenant opens to place the cluster."""
    link = settings_base(request) + _placement_path(purchase.id)
    context = {"purchase": purchase, "placement_url": link}
    return _page(request, session, "marketplace/handoff.html", context)


def settings_base(request: Request) -> str:
    """The public base URL of the landing pages (links we hand to people)."""
    settings: Settings = request.app.state.settings
    return settings.public_base_url.rstrip("/")


PLACEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "Not signed in: to Entra ID sign-in"},
    303: {"description": "Already placed: to the progress page"},
    400: {"description": "A NUL in the URL or body; a body that is no form", "content": HTML_OR_JSON_ERROR},
    403: {"description": "Not an admin of the beneficiary's tenant, or the form expired", "content": HTML_PAGE},
    404: {"description": "Not this tenant's subscription", "content": HTML_PAGE},
    422: {"description": "Invalid deployment choices (the form again)", "content": HTML_OR_JSON_ERROR},
}


@router.get(
    "/subscriptions/{subscription_id}/placement",
    response_class=HTMLResponse,
    summary="Where the cluster of a purchase made by another tenant goes (the beneficiary's admin)",
    responses=PLACEMENT_RESPONSES,
)
def placement_page(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    user: Annotated[SignedInUser | None, Depends(placing_user)],
    subscription_id: str,
) -> Response:
    """The deployment form for the beneficiary's admin, signed in to their own tenant."""
    session = BrowserSession.load(request, settings)
    if user is None:
        return _begin_sign_in(request, session, settings, _placement_path(subscription_id))
    refusal = _placement_refusal(request, session, database, settings, user, subscription_id)
    if refusal is not None:
        return refusal
    return _placement_form(request, session, database, subscription_id, dict(FORM_DEFAULTS), [])


@router.post(
    "/subscriptions/{subscription_id}/placement",
    response_class=HTMLResponse,
    summary="Place the cluster of a purchase made by another tenant (the beneficiary's admin)",
    responses={**PLACEMENT_RESPONSES, 401: {"description": "Not signed in", "content": HTML_PAGE}},
)
def place_cluster(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    user: Annotated[SignedInUser | None, Depends(placing_user)],
    subscription_id: str,
    csrf_token: Annotated[str, Form()],
    region: Annotated[str, Form()] = "",
    azure_subscription_id: Annotated[str, Form()] = "",
    resource_group: Annotated[str, Form()] = "",
    pls_visibility_subscriptions: Annotated[str, Form()] = "",
    pls_auto_approval_subscriptions: Annotated[str, Form()] = "",
    key_vault_sku: Annotated[str, Form()] = "standard",
    key_type: Annotated[str, Form()] = "RSA",
    key_size: Annotated[str, Form()] = "3072",
    rotation_days: Annotated[str, Form()] = "90",
) -> Response:
    """Record where the cluster goes; it deploys (and the subscription activates) from here on."""
    session = BrowserSession.load(request, settings)
    if user is None:
        return _error_page(request, session, 401, "Please sign in", "Open the placement link again to sign in.")
    try:
        session.check_csrf(csrf_token)
    except Forbidden as error:
        return _error_page(request, session, 403, "Form expired", error.message)
    refusal = _placement_refusal(request, session, database, settings, user, subscription_id)
    if refusal is not None:
        return refusal
    form = {
        "region": region,
        "azure_subscription_id": azure_subscription_id,
        "resource_group": resource_group,
        "pls_visibility_subscriptions": pls_visibility_subscriptions,
        "pls_auto_approval_subscriptions": pls_auto_approval_subscriptions,
        "key_vault_sku": key_vault_sku,
        "key_type": key_type,
        "key_size": key_size,
        "rotation_days": rotation_days,
    }
    try:
        choices = DeploymentChoices.from_form(form)
    except ValidationError as error:
        problems = [f"{_field_label(issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        return _placement_form(request, session, database, subscription_id, form, problems)
    try:
        with database.session() as db:
            complete_placement(
                db, subscription_id, entra_tenant_id=user.tenant_id, choices=choices, actor=f"user:{user.object_id}"
            )
    except Conflict:
        return RedirectResponse(f"/marketplace/subscriptions/{quote(subscription_id, safe='')}", status_code=303)
    except ControlPlaneError as error:
        return _error_page(request, session, error.status_code, "Subscription not found", error.message)
    response = RedirectResponse(f"/marketplace/subscriptions/{quote(subscription_id, safe='')}", status_code=303)
    session.save(response)
    return response


def _placement_refusal(
    request: Request,
    session: BrowserSession,
    database: Database,
    settings: Settings,
    user: SignedInUser,
    subscription_id: str,
) -> Response | None:
    """Why this person may not place this subscription's cluster (a page), or None when they may."""
    with database.session() as db:
        subscription = find_subscription(db, subscription_id)
    if subscription is None or subscription.beneficiary_tenant_id.lower() != user.tenant_id.lower():
        # Another tenant's subscription (the purchaser's included) does not exist for this person.
        return _error_page(
            request,
            session,
            404,
            "Subscription not found",
            "Sign in with an account of the organisation the subscription was bought for.",
        )
    if not _principal(user, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    if not subscription.placement_pending:
        return RedirectResponse(f"/marketplace/subscriptions/{quote(subscription_id, safe='')}", status_code=303)
    return None


def _placement_form(
    request: Request,
    session: BrowserSession,
    database: Database,
    subscription_id: str,
    form: dict[str, str],
    errors: list[str],
) -> HTMLResponse:
    with database.session() as db:
        subscription = find_subscription(db, subscription_id)
        assert subscription is not None
        offer = db.get(Offer, subscription.offer_id)
        plan = db.exec(
            select(Plan).where(Plan.offer_id == subscription.offer_id, Plan.plan_id == subscription.plan_id)
        ).first()
    context = {
        "handoff": False,
        "form_action": _placement_path(subscription_id),
        "purchase": {"subscription_name": subscription.name, "plan_id": subscription.plan_id},
        "offer_name": offer.display_name if offer else subscription.offer_id,
        "plan_name": plan.display_name if plan else subscription.plan_id,
        "quantity": subscription.quantity or 1,
        "token": None,
        "csrf_token": session.csrf_token(),
        "form": {field: form.get(field, "") for field in FORM_FIELDS},
        "errors": errors,
    }
    return _page(request, session, "marketplace/landing.html", context, 422 if errors else 200)


@router.get(
    "/subscriptions/{subscription_id}",
    response_class=HTMLResponse,
    summary="Progress of a purchase",
    responses={
        401: {"description": "Not signed in", "content": HTML_PAGE},
        404: {"description": "Not this customer's subscription", "content": HTML_PAGE},
        422: {"description": "A path parameter is invalid", "content": HTML_OR_JSON_ERROR},
    },
)
def progress_page(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    user: Annotated[SignedInUser | None, Depends(landing_user)],
    subscription_id: str,
) -> Response:
    """Live progress from the audit trail (works by reload; a few lines of JS poll the JSON twin)."""
    session = BrowserSession.load(request, settings)
    if user is None:
        return _error_page(request, session, 401, "Please sign in", "Open the purchase link again to sign in.")
    try:
        with database.session() as db:
            progress = purchase_progress(db, subscription_id, user.tenant_id)
    except ControlPlaneError as error:
        return _error_page(request, session, error.status_code, "Subscription not found", error.message)
    progress_url = f"/marketplace/subscriptions/{quote(subscription_id, safe='')}/progress"
    return _page(request, session, "marketplace/progress.html", {"progress": progress, "progress_url": progress_url})


@router.get(
    "/subscriptions/{subscription_id}/progress",
    response_model=PurchaseProgress,
    summary="Progress of a purchase as JSON (signed-in customer)",
    responses={
        401: error_response("Not signed in"),
        404: error_response("Not this customer's subscription"),
        **error_responses(422),
    },
)
def progress_json(
    database: DatabaseDep, user: Annotated[SignedInUser | None, Depends(landing_user)], subscription_id: str
) -> Any:
    """The JSON the progress page polls."""
    if user is None:
        raise Unauthenticated("sign in through the purchase link first")
    with database.session() as db:
        return purchase_progress(db, subscription_id, user.tenant_id)


def webhook_rules(settings: Settings) -> TokenRules:
    """What Marketplace's webhook token must say (AZURE-NOTES: aud, tid, azp/appid)."""
    client_id = settings.publisher_client_id
    return TokenRules(
        audiences={client_id, f"api://{client_id}"},
        tenant_ids={settings.publisher_tenant_id},
        client_app_ids={settings.marketplace_resource_app_id},
    )


@router.post(
    "/webhook",
    dependencies=[public_route("Marketplace's webhook, authenticated by its Entra token (test_token_attacks)")],
    summary="Marketplace SaaS webhook",
    responses={
        200: {"description": "Stored (or a replay of a stored operation)"},
        400: error_response("Malformed JSON or mismatched subscription ids"),
        401: error_response("Missing or invalid Entra bearer token"),
        422: error_response("Body does not match the webhook schema (e.g. unknown action)"),
        503: error_response("Webhook intake disabled (maintenance); Marketplace delivers again later"),
    },
    openapi_extra=raw_json_body(WebhookPayload, "The operation Marketplace notifies; verified before it is parsed"),
)
async def webhook(request: Request, settings: SettingsDep, database: DatabaseDep) -> JSONResponse:
    """Verify the token, validate the body, store it durably once, answer fast."""
    if not settings.marketplace_webhook_enabled:
        return JSONResponse(error_body("Unavailable", "webhook intake is disabled"), status_code=503)
    raw = await request.body()
    verifier: EntraTokenVerifier = request.app.state.token_verifier
    handle = partial(_handle_webhook, database, verifier, settings, request.headers.get("authorization", ""), raw)
    return await anyio.to_thread.run_sync(handle, limiter=WEBHOOK_STORE_THREADS)


def _handle_webhook(
    database: Database, verifier: EntraTokenVerifier, settings: Settings, authorization: str, raw: bytes
) -> JSONResponse:
    scheme, _, token = authorization.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token")
        verifier.verify(token.strip(), webhook_rules(settings))
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise BadRequest(f"the body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        try:
            payload = WebhookPayload.model_validate(body)
        except ValidationError as error:
            problems = [
                {"field": ".".join(str(part) for part in issue["loc"]), "message": issue["msg"]}
                for issue in error.errors()
            ]
            summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
            return _refuse(
                database, 422, "ValidationFailed", f"invalid webhook body: {summary}", body, {"problems": problems}
            )
        if not payload.subscription_ids_agree():
            raise BadRequest("subscriptionId does not match subscription.id of the body")
    except (Unauthenticated, BadRequest) as error:
        return _refuse(database, error.status_code, error.code, error.message, None)
    # One idempotent statement: no transaction to open and commit around it (and a dropped connection is retried).
    receipt = database.run_idempotent_write(lambda connection: record_webhook(connection, payload, raw_body=body))
    return JSONResponse(
        {"operation_id": receipt.operation_id, "status": "accepted" if receipt.created else "duplicate"}
    )


def _refuse(
    database: Database,
    status_code: int,
    code: str,
    message: str,
    body: dict[str, Any] | None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """Answer a refused webhook precisely and leave a trace in the audit trail (nothing else changes)."""
    operation_id = str(body.get("id"))[:128] if body and body.get("id") else "unknown"
    with database.session() as db:
        record_audit_event(
            db,
            actor="marketplace:unverified",
            action="marketplace.webhook_refused",
            subject_type="marketplace_operation",
            subject_id=operation_id,
            outcome=AuditOutcome.REFUSED,
            details={"status": status_code, "code": code, "reason": message, **(details or {})},
        )
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status_code == 401 else None
    return JSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)
