"""Control API under /_emulator: what Marketplace customers do, plus state, clock and metering hooks for tests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from emulators.common.faults import CONTROL_PREFIX
from emulators.marketplace.metering import ManagedApplication
from emulators.marketplace.quirks import QuirkPlan
from emulators.marketplace.subscriptions import Party
from emulators.marketplace.webhooks import TOO_MANY_REQUESTS

if TYPE_CHECKING:
    from emulators.marketplace.emulator import MarketplaceEmulator


class PartyModel(BaseModel):
    """A beneficiary or purchaser."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    email: str
    object_id: str = ""
    puid: str = ""

    def to_party(self) -> Party:
        """The fulfilment model's party; a purchase that names no user object gets a stable one of its own.

        Marketplace always reports the buyer's Entra object id (a uuid) and PUID, never an empty string.
        """
        object_id = self.object_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/{self.email}"))
        puid = self.puid or uuid.uuid5(uuid.NAMESPACE_OID, object_id).hex[:16].upper()
        return Party(email_id=self.email, object_id=object_id, tenant_id=self.tenant_id, puid=puid)


class PurchaseRequest(BaseModel):
    """A customer buys a plan in Azure Marketplace."""

    model_config = ConfigDict(extra="forbid")
    plan_id: str
    beneficiary: PartyModel
    purchaser: PartyModel | None = None
    offer_id: str | None = None
    quantity: int | None = None
    private_offer: bool = False
    azure_subscription_id: str | None = None
    name: str | None = None
    is_test: bool = False
    term_unit: str = "P1M"
    # How long ago, by the emulator's clock, the customer bought: usage before the purchase is refused.
    purchased_seconds_ago: float = Field(default=0.0, ge=0.0, le=366 * 86400.0)


class PlanChange(BaseModel):
    """The customer picks another plan."""

    model_config = ConfigDict(extra="forbid")
    plan_id: str


class QuantityChange(BaseModel):
    """The customer changes the quantity."""

    model_config = ConfigDict(extra="forbid")
    quantity: int


class UrlSetting(BaseModel):
    """A URL setting (webhook or landing page); null clears it."""

    model_config = ConfigDict(extra="forbid")
    url: str | None


class ClockSetting(BaseModel):
    """The emulator clock's offset from real time."""

    model_config = ConfigDict(extra="forbid")
    offset_seconds: float


class ClockAdvance(BaseModel):
    """Move the emulator clock forward."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0)


class WebhookHold(BaseModel):
    """Hold the next `size` webhooks back, then send them newest first."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1, le=100)


class WebhookRedelivery(BaseModel):
    """Past deliveries to send again, in this order."""

    model_config = ConfigDict(extra="forbid")
    delivery_ids: list[str] = Field(min_length=1, max_length=100)


class WebhookAnswer(BaseModel):
    """The publisher's answer to a webhook that a load generator sent on Marketplace's behalf."""

    model_config = ConfigDict(extra="forbid")
    status_code: int = Field(ge=100, le=599)


class ManagedApplicationRegistration(BaseModel):
    """A managed application allowed to report usage."""

    model_config = ConfigDict(extra="forbid")
    resource_uri: str
    resource_usage_id: str
    plan_id: str
    offer_id: str | None = None
    azure_subscription_id: str = ""


class UsageEventAlteration(BaseModel):
    """Change what Marketplace holds for an accepted usage event."""

    model_config = ConfigDict(extra="forbid")
    processed_quantity: float | None = None
    recon_status: str | None = None


def build_control_router(emulator: MarketplaceEmulator) -> APIRouter:
    """Purchases, customer actions, settings, state, clock and usage-event hooks."""
    router = APIRouter(prefix=CONTROL_PREFIX, tags=["emulator control"])
    state = emulator.fulfillment

    def landing(subscription_id: str, token: str) -> dict[str, Any]:
        url = emulator.landing_page_url
        landing_url = f"{url}{'&' if '?' in url else '?'}token={quote(token, safe='')}" if url else None
        return {"subscription_id": subscription_id, "token": token, "landing_page_url": landing_url}

    @router.post("/purchases", status_code=201)
    def purchase(request: PurchaseRequest) -> dict[str, Any]:
        beneficiary = request.beneficiary.to_party()
        subscription, token = state.purchase(
            plan_id=request.plan_id,
            beneficiary=beneficiary,
            purchaser=request.purchaser.to_party() if request.purchaser else beneficiary,
            offer_id=request.offer_id,
            quantity=request.quantity,
            private_offer=request.private_offer,
            azure_subscription_id=request.azure_subscription_id,
            name=request.name,
            is_test=request.is_test,
            term_unit=request.term_unit,
            purchased_seconds_ago=request.purchased_seconds_ago,
        )
        return {**landing(subscription.id, token), "subscription": subscription.to_json()}

    @router.post("/subscriptions/{subscription_id}/landing-token", status_code=201)
    def landing_token(subscription_id: str) -> dict[str, Any]:
        return landing(subscription_id, state.issue_landing_token(subscription_id))

    @router.post("/subscriptions/{subscription_id}/change-plan", status_code=201)
    def change_plan(subscription_id: str, change: PlanChange) -> dict[str, Any]:
        return state.customer_change_plan(subscription_id, change.plan_id).to_json()

    @router.post("/subscriptions/{subscription_id}/change-quantity", status_code=201)
    def change_quantity(subscription_id: str, change: QuantityChange) -> dict[str, Any]:
        return state.customer_change_quantity(subscription_id, change.quantity).to_json()

    @router.post("/subscriptions/{subscription_id}/suspend", status_code=201)
    def suspend(subscription_id: str) -> dict[str, Any]:
        return state.suspend(subscription_id).to_json()

    @router.post("/subscriptions/{subscription_id}/reinstate", status_code=201)
    def reinstate(subscription_id: str) -> dict[str, Any]:
        return state.reinstate(subscription_id).to_json()

    @router.post("/subscriptions/{subscription_id}/unsubscribe", status_code=201)
    def unsubscribe(subscription_id: str) -> dict[str, Any]:
        return state.unsubscribe(subscription_id).to_json()

    @router.post("/subscriptions/{subscription_id}/renew", status_code=201)
    def renew(subscription_id: str) -> dict[str, Any]:
        return state.renew(subscription_id).to_json()

    @router.get("/webhook")
    def get_webhook() -> UrlSetting:
        return UrlSetting(url=emulator.webhooks.webhook_url)

    @router.put("/webhook")
    def set_webhook(setting: UrlSetting) -> UrlSetting:
        emulator.webhooks.webhook_url = setting.url
        return setting

    @router.get("/landing-page")
    def get_landing_page() -> UrlSetting:
        return UrlSetting(url=emulator.landing_page_url)

    @router.put("/landing-page")
    def set_landing_page(setting: UrlSetting) -> UrlSetting:
        emulator.landing_page_url = setting.url
        return setting

    @router.get("/webhook-deliveries")
    def webhook_deliveries() -> list[dict[str, Any]]:
        return emulator.webhooks.deliveries()

    @router.put("/webhook-hold")
    def hold_webhooks(hold: WebhookHold) -> dict[str, int]:
        emulator.webhooks.hold(hold.size)
        return {"size": hold.size}

    @router.delete("/webhook-hold")
    def release_webhooks() -> dict[str, int]:
        return {"released": emulator.webhooks.release_held()}

    @router.post("/webhook-deliveries/redeliver", status_code=201)
    def redeliver_webhooks(redelivery: WebhookRedelivery) -> dict[str, list[str]]:
        return {"delivery_ids": emulator.webhooks.redeliver(redelivery.delivery_ids)}

    @router.get("/quirks")
    def get_quirks() -> QuirkPlan:
        return emulator.quirks.plan

    @router.put("/quirks")
    def set_quirks(plan: QuirkPlan) -> QuirkPlan:
        return emulator.quirks.set(plan)

    @router.post("/operations/{operation_id}/webhook-answer")
    def webhook_answer(operation_id: str, answer: WebhookAnswer) -> dict[str, Any]:
        # The rule the webhook sender applies to its own deliveries: a 4xx other than 429 rejects the operation.
        if 400 <= answer.status_code < 500 and answer.status_code != TOO_MANY_REQUESTS:
            state.reject_operation(operation_id, answer.status_code)
        return {"operation_id": operation_id, "status_code": answer.status_code}

    @router.get("/state")
    def full_state() -> dict[str, Any]:
        return {
            **state.snapshot(),
            **emulator.ledger.snapshot(),
            "webhook_deliveries": emulator.webhooks.deliveries(),
            "clock": {"now": emulator.clock.now().isoformat(), "offset_seconds": emulator.clock.offset_seconds},
        }

    @router.get("/clock")
    def get_clock() -> dict[str, Any]:
        return {"now": emulator.clock.now().isoformat(), "offset_seconds": emulator.clock.offset_seconds}

    @router.put("/clock")
    def set_clock(setting: ClockSetting) -> dict[str, Any]:
        emulator.clock.set_offset(setting.offset_seconds)
        return get_clock()

    @router.post("/clock/advance")
    def advance_clock(advance: ClockAdvance) -> dict[str, Any]:
        emulator.clock.advance(advance.seconds)
        return get_clock()

    @router.post("/managed-applications", status_code=201)
    def register_managed_application(registration: ManagedApplicationRegistration) -> dict[str, Any]:
        offer_id = registration.offer_id or emulator.catalog.default_offer().id
        if offer_id not in emulator.catalog.offers:
            raise HTTPException(status_code=404, detail=f"unknown offer {offer_id}")
        application = ManagedApplication(
            resource_uri=registration.resource_uri,
            resource_usage_id=registration.resource_usage_id,
            offer_id=offer_id,
            plan_id=registration.plan_id,
            azure_subscription_id=registration.azure_subscription_id,
        )
        emulator.ledger.register_managed_application(application)
        return vars(application).copy()

    @router.post("/usage-events/{usage_event_id}/drop")
    def drop_usage_event(usage_event_id: str) -> dict[str, Any]:
        try:
            return emulator.ledger.drop(usage_event_id).to_json()
        except KeyError as error:
            raise HTTPException(status_code=404, detail=f"unknown usage event {usage_event_id}") from error

    @router.patch("/usage-events/{usage_event_id}")
    def alter_usage_event(usage_event_id: str, alteration: UsageEventAlteration) -> dict[str, Any]:
        try:
            event = emulator.ledger.alter(usage_event_id, alteration.processed_quantity, alteration.recon_status)
        except KeyError as error:
            raise HTTPException(status_code=404, detail=f"unknown usage event {usage_event_id}") from error
        return event.to_json()

    return router
