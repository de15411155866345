"""The purchase pages a Marketplace link opens: the landing page (sign-in, the purchase, deployment choices), the
beneficiary's placement page and the progress page.

The landing page resolves the purchase token with the publisher's credential, signs the customer in with the portal's
Entra sign-in, records the purchase and the cluster's desired spec in one transaction, then shows progress from the
audit trail and our deployment history. Their URLs are fixed: the landing page's is configured in Partner Center.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.azure.arm import ArmClientFactory
from core.clusters.ownership import PlacementRefused, ResourceGroupNotOwned, check_placement, default_resource_group
from core.clusters.placement_options import PlacementOptions
from core.clusters.schemas import ClusterPlacement
from core.clusters.service import cluster_name_for
from core.db import Database
from core.errors import (
    BadRequest,
    ControlPlaneError,
    Forbidden,
    NotFound,
    Unauthenticated,
    UpstreamUnavailable,
    ValidationFailed,
)
from core.identity.sign_in import SignedInUser, delegated_arm_scope
from core.marketplace.fulfillment_client import FulfillmentClient, ResolvedPurchase
from core.marketplace.http import MarketplaceError, MarketplaceUnreachable
from core.settings import Settings
from core.subscriptions.errors import (
    PurchaseTokenAlreadyUsed,
    PurchaseWithoutBeneficiary,
    SubscriptionAlreadyPlaced,
    SubscriptionAlreadySetUp,
    SubscriptionCancelled,
)
from core.subscriptions.landing import LandingStep, landing_step, landing_token
from core.subscriptions.landing import confirm_purchase as confirm_landing
from core.subscriptions.progress import purchase_progress
from core.subscriptions.schemas import DeploymentChoices, PurchaseProgress
from core.subscriptions.service import (
    check_signed_in_party,
    complete_placement,
    find_subscription,
    record_purchase,
)
from portal.pages import error_page, principal_of, render
from portal.placement_choices import options_for
from portal.purchase_view import FormProblems, problems_of_choices, problems_of_placement, purchase_summary
from portal.sign_in_flow import begin_sign_in
from web.browser_paths import LANDING_PATH, PURCHASE_PATH_PREFIX
from web.browser_session import BrowserSession
from web.dependencies import DatabaseDep, SettingsDep
from web.errors import (
    ErrorResponse,
    error_response,
    error_responses,
    http_status,
)
from web.openapi_schemas import inline_schema
from web.permissions import Permission, declares, public_route

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/marketplace", tags=["marketplace"])
# The browser-facing pages answer their errors with an HTML page, except FastAPI's own parameter validation.
HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
HTML_OR_JSON_ERROR = {**HTML_PAGE, "application/json": {"schema": inline_schema(ErrorResponse)}}
COME_BACK = {
    "description": "Marketplace is throttled, failing or slower than the request budget: come back later",
    "content": HTML_PAGE,
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}
# What to do after a purchase could not be opened.
FRESH_LINK = 'Open the offer again in the Azure portal ("Configure account" or "Manage account") to get a fresh link.'


class DeploymentForm(BaseModel):
    """The deployment form's fields as the browser sent them; `DeploymentChoices` validates them afterwards."""

    region: str = ""
    azure_subscription_id: str = ""
    resource_group: str = ""
    pls_visibility_subscriptions: str = ""
    pls_auto_approval_subscriptions: str = ""
    key_vault_sku: str = "standard"
    key_type: str = "RSA"
    key_size: str = "3072"
    rotation_days: str = "90"

    def choices(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in FORM_FIELDS}


class ConfirmationForm(DeploymentForm):
    """The landing page's form: the purchase token and the session's CSRF token besides the choices."""

    token: str
    csrf_token: str


class PlacementSubmission(DeploymentForm):
    """The beneficiary admin's placement form."""

    csrf_token: str


FORM_FIELDS = tuple(DeploymentForm.model_fields)
FORM_DEFAULTS = DeploymentForm().choices()
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
# When a customer should open the purchase link again after Marketplace failed to resolve it (without a
# Retry-After of its own), and the longest we pass on from Marketplace.
LANDING_RETRY_AFTER_SECONDS = 120
MAX_COME_BACK_SECONDS = 3600
# Marketplace statuses that mean "busy, come back": throttled or timed out, not a bad token.
UPSTREAM_BUSY_STATUSES = frozenset({408, 429})
# Landing-page requests that may wait on Marketplace at once, on threads of their own (see _within_budget), and
# when to come back when all of them are taken.
LANDING_CONCURRENCY = 8
LANDING_SLOTS = anyio.Semaphore(LANDING_CONCURRENCY)
LANDING_THREADS = anyio.CapacityLimiter(LANDING_CONCURRENCY)
LANDING_BUSY_RETRY_AFTER_SECONDS = 30
# Retries of one ARM read while checking a placement at confirmation.
PLACEMENT_CHECK_RETRIES = 2


def fulfillment_client(request: Request) -> FulfillmentClient:
    """The API process's fulfilment client, built on first use."""
    with _services_lock:
        client: FulfillmentClient | None = getattr(request.app.state, "fulfillment_client", None)
        if client is None:
            client = FulfillmentClient.from_settings(request.app.state.settings)
            request.app.state.fulfillment_client = client
        return client


def arm_clients(request: Request) -> ArmClientFactory:
    """The API process's ARM clients (placement checks at confirmation), built on first use."""
    with _services_lock:
        clients: ArmClientFactory | None = getattr(request.app.state, "arm_clients", None)
        if clients is None:
            settings: Settings = request.app.state.settings
            # A customer waits on this page: a few quick retries, then "come back later" instead of a minute's backoff.
            quick = settings.model_copy(
                update={
                    "arm_retry_total": min(settings.arm_retry_total, PLACEMENT_CHECK_RETRIES),
                    "arm_retry_backoff_max_seconds": min(settings.arm_retry_backoff_max_seconds, 2.0),
                }
            )
            clients = ArmClientFactory(quick)
            request.app.state.arm_clients = clients
        return clients


@declares(Permission.READ)
def landing_user(request: Request, settings: SettingsDep) -> SignedInUser | None:
    """The person signed in to the landing pages, if any (the handlers answer a page asking to sign in)."""
    return BrowserSession.load(request, settings).user


@declares(Permission.ACT)
def placing_user(request: Request, settings: SettingsDep) -> SignedInUser | None:
    """The person placing a cluster: the handler checks they are an admin of the beneficiary's tenant."""
    return BrowserSession.load(request, settings).user


def _begin_sign_in(request: Request, session: BrowserSession, settings: Settings, after: str) -> Response:
    """The portal's sign-in, back to `after`; with ARM's delegated permission, so the form offers the person's
    subscriptions and regions to pick from."""
    return begin_sign_in(request, session, settings, after, [delegated_arm_scope(settings)])


def _error_page(
    request: Request,
    session: BrowserSession,
    status_code: int,
    heading: str,
    message: str,
    next_step: str = FRESH_LINK,
) -> HTMLResponse:
    return error_page(request, status_code, message, heading=heading, next_step=next_step)


def _azure_unavailable_page(
    request: Request, session: BrowserSession, error: UpstreamUnavailable, link: str
) -> HTMLResponse:
    """ARM did not answer while the choices were checked: nothing was recorded, the customer opens `link` later."""
    page = _error_page(
        request,
        session,
        http_status(error),
        "Azure is not answering right now",
        f"Nothing was recorded: open {link} again in a few minutes. ({error.message})",
        next_step="Your choices were not saved; you will make them again.",
    )
    page.headers["Retry-After"] = str(LANDING_RETRY_AFTER_SECONDS)
    return page


def _resolve(request: Request, token: str, deadline: float) -> ResolvedPurchase:
    """Resolve a landing token; an invalid, expired or foreign token becomes a 400/403 domain error.

    Marketplace throttling or failing within the request's budget (retries and Retry-After waits included)
    becomes UpstreamUnavailable carrying Marketplace's Retry-After: the token is fine, the customer only has to
    come back.
    """
    budget = max(deadline - time.monotonic(), 0.1)
    try:
        return fulfillment_client(request).resolve(token, budget_seconds=budget)
    except MarketplaceError as error:
        if error.status in UPSTREAM_BUSY_STATUSES or error.status >= 500:
            raise UpstreamUnavailable(
                f"Marketplace could not resolve the purchase ({error.message})",
                details={"retry_after_seconds": error.retry_after_seconds},
            ) from None
        if error.status == 403:
            raise Forbidden("this purchase link belongs to another publisher") from None
        raise BadRequest(f"this purchase link is invalid or has expired ({error.message})") from None
    except MarketplaceUnreachable as error:
        raise UpstreamUnavailable(f"Marketplace did not answer ({error.message})") from None


def _come_back_page(request: Request, session: BrowserSession, retry_after: object = None) -> HTMLResponse:
    """503 asking the customer to open the link again, after Marketplace's Retry-After when it gave one."""
    page = _error_page(
        request,
        session,
        503,
        "Marketplace is not answering right now",
        "Nothing was lost: open your purchase link again in a few minutes.",
        next_step="Reload this page in a few minutes, or open the offer again from the Azure portal.",
    )
    seconds = retry_after if isinstance(retry_after, int) and retry_after > 0 else LANDING_RETRY_AFTER_SECONDS
    page.headers["Retry-After"] = str(min(seconds, MAX_COME_BACK_SECONDS))
    return page


def _resolution_error_page(request: Request, session: BrowserSession, error: ControlPlaneError) -> HTMLResponse:
    """The page for a purchase that could not be opened; an outage asks the customer to come back later."""
    if isinstance(error, UpstreamUnavailable):
        return _come_back_page(request, session, error.details.get("retry_after_seconds"))
    return _error_page(request, session, http_status(error), "We could not open this purchase", error.message)


async def _within_budget(request: Request, settings: Settings, work: Callable[[float], Response]) -> Response:
    """Run a landing page's blocking work on the landing page's own threads, within the Marketplace budget.

    The landing page waits on Marketplace; on the shared thread pool a throttled Marketplace would hold every
    thread and starve the portal and the JSON API. Here at most LANDING_CONCURRENCY requests wait at a time, a
    request that cannot start within the budget gets the come-back page, and `work` gets the deadline to pass on.
    """
    deadline = time.monotonic() + settings.marketplace_request_budget_seconds
    acquired = False
    with anyio.move_on_after(settings.marketplace_request_budget_seconds):
        await LANDING_SLOTS.acquire()
        acquired = True
    if not acquired:
        return _come_back_page(request, BrowserSession.load(request, settings), LANDING_BUSY_RETRY_AFTER_SECONDS)
    try:
        # Not cancellable once started: a confirmation that committed must answer with its page.
        return await anyio.to_thread.run_sync(work, deadline, limiter=LANDING_THREADS)
    finally:
        LANDING_SLOTS.release()


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
        403: {"description": "The token is another publisher's", "content": HTML_PAGE},
        422: {"description": "A query parameter is invalid", "content": HTML_OR_JSON_ERROR},
        503: COME_BACK,
    },
)
async def landing(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    token: Annotated[str | None, Query()] = None,
    subscription: Annotated[
        str | None, Query(max_length=64, description="the Azure subscription whose regions the form offers")
    ] = None,
) -> Response:
    """Sign the customer in, resolve the purchase and show the deployment form (or the progress of a return)."""
    work = partial(_landing, request, settings, database, token, subscription)
    return await _within_budget(request, settings, work)


def _landing(
    request: Request,
    settings: Settings,
    database: Database,
    raw_token: str | None,
    requested_subscription: str | None,
    deadline: float,
) -> Response:
    session = BrowserSession.load(request, settings)
    if not raw_token:
        return _error_page(request, session, 400, "Missing purchase link", "The link has no purchase token.")
    try:
        token = landing_token(raw_token)
    except BadRequest as error:
        return _error_page(request, session, http_status(error), "We could not open this purchase", error.message)
    signed_in = session.user
    if signed_in is None:
        # The way back (with the token) waits sealed in the server-side session, never in the cookie.
        return _begin_sign_in(request, session, settings, f"{LANDING_PATH}?token={quote(token, safe='')}")
    try:
        purchase = _resolve(request, token, deadline)
        check_signed_in_party(purchase, signed_in.tenant_id)
    except (BadRequest, Forbidden, UpstreamUnavailable) as error:
        return _resolution_error_page(request, session, error)
    with database.session() as db:
        step = landing_step(db, purchase.id)
        existing = find_subscription(db, purchase.id)
    if existing is not None and existing.placement_pending:
        if not _is_beneficiary(purchase, signed_in):
            return _handoff_page(request, session, purchase)  # the purchaser again: the link to pass on
        return RedirectResponse(_placement_path(purchase.id), status_code=303)
    if step == LandingStep.SHOW_PROGRESS:
        # A return ("Manage account", a reload, back after confirming): the purchase is set up, show where it stands.
        return _to_progress(session, purchase.id)
    if _is_beneficiary(purchase, signed_in) and not principal_of(signed_in, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    form = dict(FORM_DEFAULTS)
    return _landing_form(
        request, session, database, purchase, token, form, FormProblems(), deadline, requested=requested_subscription
    )


def _progress_path(subscription_id: str) -> str:
    return f"{PURCHASE_PATH_PREFIX}{quote(subscription_id, safe='')}"


def _to_progress(session: BrowserSession, subscription_id: str) -> Response:
    response = RedirectResponse(_progress_path(subscription_id), status_code=303)
    session.save(response)
    return response


def _is_beneficiary(purchase: ResolvedPurchase, user: SignedInUser) -> bool:
    return (purchase.subscription.beneficiary.tenant_id or "").lower() == user.tenant_id.lower()


def _placement_path(subscription_id: str) -> str:
    return f"{_progress_path(subscription_id)}/placement"


def _landing_form(
    request: Request,
    session: BrowserSession,
    database: Database,
    purchase: ResolvedPurchase,
    token: str,
    form: dict[str, str],
    problems: FormProblems,
    deadline: float,
    status_code: int = 422,
    requested: str | None = None,
) -> HTMLResponse:
    term = purchase.subscription.term
    with database.session() as db:
        summary = purchase_summary(
            db,
            subscription_name=purchase.subscription_name or purchase.subscription.name,
            offer_id=purchase.offer_id,
            plan_id=purchase.plan_id,
            quantity=purchase.quantity or purchase.subscription.quantity or 1,
            term_unit=term.term_unit,
            term_start=term.start_date,
            term_end=term.end_date,
        )
    signed_in = session.user
    # Bought for another tenant: the purchaser records the purchase; the beneficiary's admin places it.
    handoff = signed_in is not None and not _is_beneficiary(purchase, signed_in)
    pickers = PlacementOptions()
    if signed_in is not None and not handoff:
        pickers = _pickers(request, session, signed_in, requested or form.get("azure_subscription_id"), deadline)
    context = {
        "handoff": handoff,
        "pickers": pickers,
        "picker_action": LANDING_PATH,
        "form_action": LANDING_PATH,
        "summary": summary,
        "token": token,
        "form": _with_picked_defaults({field: form.get(field, "") for field in FORM_FIELDS}, pickers),
        "problems": problems,
    }
    return render(request, session, "purchase/landing.html", context, status_code if problems else 200)


def _pickers(
    request: Request, session: BrowserSession, user: SignedInUser, requested: str | None, deadline: float
) -> PlacementOptions:
    """The subscription and region choices for the signed-in admin (a note instead when they cannot be had)."""
    settings: Settings = request.app.state.settings
    credentials = arm_clients(request).credentials
    return options_for(request, settings, session, user, credentials, (requested or "").strip() or None, deadline)


def _with_picked_defaults(form: dict[str, str], pickers: PlacementOptions) -> dict[str, str]:
    """Empty subscription and region fields start at the picked subscription and its first region."""
    if not form["azure_subscription_id"].strip() and pickers.selected_subscription:
        form["azure_subscription_id"] = pickers.selected_subscription
    if not form["region"].strip() and pickers.default_region:
        form["region"] = pickers.default_region
    return form


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
        403: {"description": "Form expired, or another publisher's token", "content": HTML_PAGE},
        409: {
            "description": (
                "The resource group exists and is not an empty one tagged for this cluster (the form again), "
                "or the token already confirmed another purchase"
            ),
            "content": HTML_PAGE,
        },
        422: {
            "description": "Invalid deployment choices: a region, subscription or name ARM refuses (the form again)",
            "content": HTML_OR_JSON_ERROR,
        },
        502: {"description": "Marketplace resolved the purchase without a beneficiary tenant", "content": HTML_PAGE},
        503: COME_BACK,
    },
)
async def confirm_purchase(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    submitted: Annotated[ConfirmationForm, Form()],
) -> Response:
    """Validate the deployment choices and record the subscription with its desired spec in one transaction."""
    form = submitted.choices()
    work = partial(_confirm, request, settings, database, submitted.token, submitted.csrf_token, form)
    return await _within_budget(request, settings, work)


def _confirm(
    request: Request,
    settings: Settings,
    database: Database,
    raw_token: str,
    csrf_token: str,
    form: dict[str, str],
    deadline: float,
) -> Response:
    session = BrowserSession.load(request, settings)
    signed_in = session.user
    if signed_in is None:
        return _error_page(request, session, 401, "Please sign in", "Open the purchase link again to sign in.")
    try:
        session.check_csrf(csrf_token)
    except Forbidden as error:
        return _error_page(request, session, http_status(error), "Form expired", error.message)
    try:
        token = landing_token(raw_token)
    except BadRequest as error:
        return _error_page(request, session, http_status(error), "We could not open this purchase", error.message)
    try:
        purchase = _resolve(request, token, deadline)
        check_signed_in_party(purchase, signed_in.tenant_id)
    except (BadRequest, Forbidden, UpstreamUnavailable) as error:
        return _resolution_error_page(request, session, error)
    with database.session() as db:
        step = landing_step(db, purchase.id)
        existing = find_subscription(db, purchase.id)
    if existing is not None and existing.placement_pending and not _is_beneficiary(purchase, signed_in):
        return _handoff_page(request, session, purchase)  # recorded already: the link to pass on again
    if step == LandingStep.SHOW_PROGRESS:
        # A second confirmation (double-click, back and submit again): the first one set it up.
        return _to_progress(session, purchase.id)
    actor = f"user:{signed_in.object_id}"
    if not _is_beneficiary(purchase, signed_in):
        # The purchaser's tenant: record the purchase, hand placement to the beneficiary's admin.
        if any(value.strip() for name, value in form.items() if name in PLACEMENT_FIELDS):
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
        except SubscriptionAlreadySetUp:  # set up meanwhile (the beneficiary placed it): where it stands
            return _to_progress(session, purchase.id)
        except PurchaseTokenAlreadyUsed as error:
            return _link_used_page(request, session, error)
        except PurchaseWithoutBeneficiary as error:
            return _incomplete_purchase_page(request, session, purchase, error)
        return _handoff_page(request, session, purchase)
    if not principal_of(signed_in, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    cluster_name = cluster_name_for(purchase.id)
    # No group named: the cluster gets one of its own, named from the cluster.
    chosen = {**form, "resource_group": form["resource_group"].strip() or default_resource_group(cluster_name)}
    try:
        choices = DeploymentChoices.from_form(chosen)
    except ValidationError as error:
        return _landing_form(request, session, database, purchase, token, form, problems_of_choices(error), deadline)

    def refused(error: ControlPlaneError) -> Response:
        # A concurrent confirmation (double-click) may have taken the group: then its progress is the answer.
        if _set_up_meanwhile(database, purchase.id):
            return _to_progress(session, purchase.id)
        problems = problems_of_placement(error)
        return _landing_form(request, session, database, purchase, token, form, problems, deadline, http_status(error))

    try:
        with database.session() as db:
            beneficiary = purchase.subscription.beneficiary.tenant_id or signed_in.tenant_id
            arm = arm_clients(request).for_subscription(beneficiary, choices.placement.azure_subscription_id)
            check_placement(db, arm, choices.placement, cluster_name)
    except (PlacementRefused, ResourceGroupNotOwned) as error:
        return refused(error)
    except UpstreamUnavailable as error:
        return _azure_unavailable_page(request, session, error, "your purchase link")
    try:
        confirm_landing(database, purchase, marketplace_token=token, choices=choices, actor=actor)
    except ResourceGroupNotOwned as error:
        return refused(error)
    except SubscriptionAlreadySetUp:
        return _to_progress(session, purchase.id)
    except PurchaseTokenAlreadyUsed as error:
        if _set_up_meanwhile(database, purchase.id):  # this very purchase, confirmed by a concurrent click
            return _to_progress(session, purchase.id)
        return _link_used_page(request, session, error)
    except PurchaseWithoutBeneficiary as error:
        return _incomplete_purchase_page(request, session, purchase, error)
    return _to_progress(session, purchase.id)


def _link_used_page(request: Request, session: BrowserSession, error: PurchaseTokenAlreadyUsed) -> HTMLResponse:
    """The one cause that says the link was used: its token confirmed another purchase."""
    return _error_page(request, session, http_status(error), "This link was already used", error.message)


def _incomplete_purchase_page(
    request: Request, session: BrowserSession, purchase: ResolvedPurchase, error: PurchaseWithoutBeneficiary
) -> HTMLResponse:
    return _error_page(
        request,
        session,
        http_status(error),
        "Azure Marketplace sent an incomplete purchase",
        f"{error.message}. We cannot tell whose cluster to set up: please contact our support and name "
        f"subscription {purchase.id}.",
    )


def _set_up_meanwhile(database: Database, subscription_id: str) -> bool:
    """Whether another confirmation of this purchase set it up since this one looked (its group is then ours)."""
    with database.session() as db:
        return landing_step(db, subscription_id) == LandingStep.SHOW_PROGRESS


class PlacementCheck(BaseModel):
    """The placement part of the deployment choices, for the purchase the token names."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=4096, description="the Marketplace purchase token of the landing page")
    region: str = Field(max_length=64)
    azure_subscription_id: str = Field(max_length=64)
    resource_group: str = Field(default="", max_length=90, description="empty: a group of the cluster's own")


class PlacementView(BaseModel):
    """A placement the confirmation would accept now."""

    azure_subscription_id: str
    region: str
    resource_group: str
    cluster_name: str


@router.post(
    "/landing/placement",
    dependencies=[
        public_route(
            "checks the placement of the purchase the Marketplace token names; records nothing; only an admin of "
            "the beneficiary's tenant (checked in the handler)"
        )
    ],
    response_model=PlacementView,
    summary="Check deployment choices against ARM before confirming (signed-in customer)",
    responses={
        400: error_response("Invalid or expired purchase token"),
        401: error_response("Not signed in"),
        403: error_response("Another publisher's token, or the signed-in tenant is not the purchase's"),
        409: error_response("The resource group exists and is not an empty one tagged for this cluster"),
        422: error_response("A region, subscription or group name ARM refuses, or an invalid body"),
        503: error_response("Marketplace or ARM could not answer: try again later"),
    },
)
def check_placement_json(
    request: Request, settings: SettingsDep, database: DatabaseDep, body: PlacementCheck
) -> PlacementView:
    """The same placement checks as the confirmation, answered as JSON; records nothing, changes nothing."""
    signed_in = BrowserSession.load(request, settings).user
    if signed_in is None:
        raise Unauthenticated("sign in through the purchase link first")
    purchase = _resolve(
        request, landing_token(body.token), time.monotonic() + settings.marketplace_request_budget_seconds
    )
    check_signed_in_party(purchase, signed_in.tenant_id)
    if not _is_beneficiary(purchase, signed_in) or not principal_of(signed_in, settings).can_act:
        raise Forbidden("only an admin of the beneficiary's tenant chooses where the cluster goes")
    cluster_name = cluster_name_for(purchase.id)
    try:
        placement = ClusterPlacement(
            azure_subscription_id=body.azure_subscription_id.strip(),
            region=body.region.strip(),
            resource_group=body.resource_group.strip() or default_resource_group(cluster_name),
        )
    except ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in issue["loc"]), "message": issue["msg"]} for issue in error.errors()
        ]
        summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
        raise ValidationFailed(f"invalid placement: {summary}", details={"problems": problems}) from None
    beneficiary = purchase.subscription.beneficiary.tenant_id or signed_in.tenant_id
    with database.session() as db:
        arm = arm_clients(request).for_subscription(beneficiary, placement.azure_subscription_id)
        check_placement(db, arm, placement, cluster_name)
    return PlacementView(**placement.model_dump(), cluster_name=cluster_name)


def _handoff_page(request: Request, session: BrowserSession, purchase: ResolvedPurchase) -> HTMLResponse:
    """The purchaser's page: recorded; the link an admin of the beneficiary's tenant opens to place the cluster."""
    link = settings_base(request) + _placement_path(purchase.id)
    context = {"purchase": purchase, "placement_url": link}
    return render(request, session, "purchase/handoff.html", context)


def settings_base(request: Request) -> str:
    """The public base URL of the landing pages (links we hand to people)."""
    settings: Settings = request.app.state.settings
    return settings.public_base_url.rstrip("/")


PLACEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "Not signed in: to Entra ID sign-in"},
    303: {"description": "Already placed, or cancelled meanwhile: to the progress page"},
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
    subscription: Annotated[
        str | None, Query(max_length=64, description="the Azure subscription whose regions the form offers")
    ] = None,
) -> Response:
    """The deployment form for the beneficiary's admin, signed in to their own tenant."""
    session = BrowserSession.load(request, settings)
    if user is None:
        return _begin_sign_in(request, session, settings, _placement_path(subscription_id))
    refusal = _placement_refusal(request, session, database, settings, user, subscription_id)
    if refusal is not None:
        return refusal
    return _placement_form(
        request, session, database, subscription_id, dict(FORM_DEFAULTS), FormProblems(), requested=subscription
    )


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
    submitted: Annotated[PlacementSubmission, Form()],
) -> Response:
    """Record where the cluster goes; it deploys (and the subscription activates) from here on."""
    session = BrowserSession.load(request, settings)
    if user is None:
        return _error_page(request, session, 401, "Please sign in", "Open the placement link again to sign in.")
    try:
        session.check_csrf(submitted.csrf_token)
    except Forbidden as error:
        return _error_page(request, session, http_status(error), "Form expired", error.message)
    refusal = _placement_refusal(request, session, database, settings, user, subscription_id)
    if refusal is not None:
        return refusal
    form = submitted.choices()
    cluster_name = cluster_name_for(subscription_id)
    # No group named: the cluster gets one of its own, named from the cluster.
    chosen = {**form, "resource_group": form["resource_group"].strip() or default_resource_group(cluster_name)}
    try:
        choices = DeploymentChoices.from_form(chosen)
    except ValidationError as error:
        return _placement_form(request, session, database, subscription_id, form, problems_of_choices(error))
    try:
        with database.session() as db:
            arm = arm_clients(request).for_subscription(user.tenant_id, choices.placement.azure_subscription_id)
            check_placement(db, arm, choices.placement, cluster_name)
    except (PlacementRefused, ResourceGroupNotOwned) as error:
        return _placement_form(request, session, database, subscription_id, form, problems_of_placement(error))
    except UpstreamUnavailable as error:
        return _azure_unavailable_page(request, session, error, "the placement link")
    try:
        with database.session() as db:
            complete_placement(
                db, subscription_id, entra_tenant_id=user.tenant_id, choices=choices, actor=f"user:{user.object_id}"
            )
    except ResourceGroupNotOwned as error:
        return _placement_form(request, session, database, subscription_id, form, problems_of_placement(error))
    except (SubscriptionAlreadyPlaced, SubscriptionCancelled):
        # Placed already (a double submit) or cancelled meanwhile: its progress page says where it stands.
        return RedirectResponse(_progress_path(subscription_id), status_code=303)
    except NotFound as error:
        return _error_page(request, session, http_status(error), "Subscription not found", error.message)
    except ControlPlaneError as error:
        return _error_page(request, session, http_status(error), "We could not place this cluster", error.message)
    response = RedirectResponse(_progress_path(subscription_id), status_code=303)
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
    if not principal_of(user, settings).can_act:
        return _error_page(request, session, 403, "An administrator must set this up", NEEDS_ADMIN)
    if not subscription.placement_pending:
        return RedirectResponse(_progress_path(subscription_id), status_code=303)
    return None


def _placement_form(
    request: Request,
    session: BrowserSession,
    database: Database,
    subscription_id: str,
    form: dict[str, str],
    problems: FormProblems,
    requested: str | None = None,
) -> HTMLResponse:
    with database.session() as db:
        subscription = find_subscription(db, subscription_id)
        assert subscription is not None
        summary = purchase_summary(
            db,
            subscription_name=subscription.name,
            offer_id=subscription.offer_id,
            plan_id=subscription.plan_id,
            quantity=subscription.quantity or 1,
            term_unit=subscription.term_unit,
            term_start=subscription.term_start,
            term_end=subscription.term_end,
        )
    pickers = PlacementOptions()
    if session.user is not None:
        # The placement page does not wait on Marketplace: the whole budget is for the pickers.
        deadline = time.monotonic() + request.app.state.settings.marketplace_request_budget_seconds
        pickers = _pickers(request, session, session.user, requested or form.get("azure_subscription_id"), deadline)
    context = {
        "handoff": False,
        "pickers": pickers,
        "picker_action": _placement_path(subscription_id),
        "form_action": _placement_path(subscription_id),
        "summary": summary,
        "token": None,
        "form": _with_picked_defaults({field: form.get(field, "") for field in FORM_FIELDS}, pickers),
        "problems": problems,
    }
    return render(request, session, "purchase/landing.html", context, 422 if problems else 200)


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
            progress = purchase_progress(
                db, subscription_id, user.tenant_id, application_id=settings.control_plane_client_id
            )
    except ControlPlaneError as error:
        return _error_page(request, session, http_status(error), "Subscription not found", error.message)
    progress_url = f"{_progress_path(subscription_id)}/progress"
    return render(request, session, "purchase/progress.html", {"progress": progress, "progress_url": progress_url})


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
    settings: SettingsDep,
    database: DatabaseDep,
    user: Annotated[SignedInUser | None, Depends(landing_user)],
    subscription_id: str,
) -> Any:
    """The JSON the progress page polls."""
    if user is None:
        raise Unauthenticated("sign in through the purchase link first")
    with database.session() as db:
        return purchase_progress(db, subscription_id, user.tenant_id, application_id=settings.control_plane_client_id)
