"""Pure parsing and validation of the Marketplace lifecycle: lenient on what Marketplace sends, strict on input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.marketplace.fulfillment_client import FulfillmentOperation, FulfillmentSubscription, ResolvedPurchase
from core.subscriptions.models import OPERATION_STATES, SUBSCRIPTION_STATES, OperationState, SubscriptionStatus
from core.subscriptions.schemas import DeploymentChoices, WebhookPayload, split_list

SUBSCRIPTION = {
    "id": "sub-1",
    "publisherId": "publisher",
    "offerId": "vast-blob-facade",
    "name": "Contoso storage",
    "saasSubscriptionStatus": "NotStarted",
    "beneficiary": {"emailId": "a@contoso.example", "objectId": "o", "tenantId": "t", "puid": "p", "newField": 1},
    "purchaser": {"tenantId": "t"},
    "planId": "standard",
    "quantity": None,
    "term": {"termUnit": "P5Y", "startDate": "2026-11-26T00:00:00Z", "endDate": "2031-11-25T00:00:00Z"},
    "autoRenew": True,
    "allowedCustomerOperations": ["Read"],
    "brandNewTopLevelField": {"anything": [1, 2]},
}


def test_fulfilment_models_tolerate_unknown_fields_and_new_enum_values() -> None:
    subscription = FulfillmentSubscription.model_validate(SUBSCRIPTION)
    assert subscription.status == "NotStarted"
    assert subscription.term.term_unit == "P5Y"
    assert subscription.beneficiary.tenant_id == "t"
    assert subscription.model_dump(by_alias=True)["brandNewTopLevelField"] == {"anything": [1, 2]}
    purchase = ResolvedPurchase.model_validate(
        {"id": "sub-1", "offerId": "vast-blob-facade", "planId": "standard", "subscription": SUBSCRIPTION}
    )
    assert purchase.subscription.id == "sub-1"
    operation = FulfillmentOperation.model_validate(
        {"id": "op", "subscriptionId": "sub-1", "action": "SomeFutureAction", "status": "Throttled", "extra": 1}
    )
    assert (operation.action, operation.status) == ("SomeFutureAction", "Throttled")


def _webhook(**overrides: object) -> dict[str, object]:
    return {
        "id": "op-1",
        "subscriptionId": "sub-1",
        "action": "Suspend",
        "status": "Succeeded",
        "subscription": {"id": "sub-1", "unknown": True},
        "futureField": "kept",
        **overrides,
    }


def test_webhook_payload_is_lenient_on_fields_strict_on_actions_and_checks_ids() -> None:
    payload = WebhookPayload.model_validate(_webhook())
    assert payload.subscription_ids_agree()
    assert payload.model_extra == {"futureField": "kept"}
    assert not WebhookPayload.model_validate(_webhook(subscription={"id": "other"})).subscription_ids_agree()
    with pytest.raises(ValidationError, match="action"):
        WebhookPayload.model_validate(_webhook(action="Transmogrify"))
    with pytest.raises(ValidationError, match="subscriptionId"):
        WebhookPayload.model_validate({key: value for key, value in _webhook().items() if key != "subscriptionId"})


def test_deployment_choices_from_the_form() -> None:
    choices = DeploymentChoices.from_form(
        {
            "region": " westeurope ",
            "azure_subscription_id": "6b9a3c2d-1e4f-4a5b-8c7d-9e0f1a2b3c4d",
            "resource_group": "rg-1",
            "pls_visibility_subscriptions": "6B9A3C2D-1E4F-4A5B-8C7D-9E0F1A2B3C4D, *",
            "key_size": "2048",
            "rotation_days": "30",
        }
    )
    assert choices.placement.region == "westeurope"
    assert choices.private_link.visibility_subscriptions == ["*", "6b9a3c2d-1e4f-4a5b-8c7d-9e0f1a2b3c4d"]
    assert (choices.key_policy.key_size, choices.key_policy.rotation_days) == (2048, 30)
    with pytest.raises(ValidationError) as error:
        DeploymentChoices.from_form({"region": "West Europe", "azure_subscription_id": "x", "resource_group": ""})
    fields = {issue["loc"][-1] for issue in error.value.errors()}
    assert {"region", "azure_subscription_id", "resource_group"} <= fields


def test_split_list_accepts_commas_spaces_and_lines() -> None:
    assert split_list("a, b\nc  d,,") == ["a", "b", "c", "d"]
    assert split_list("  ") == []


def test_state_machines_mirror_marketplace() -> None:
    assert SUBSCRIPTION_STATES.can(SubscriptionStatus.SUSPENDED, SubscriptionStatus.SUBSCRIBED)
    assert not SUBSCRIPTION_STATES.can(SubscriptionStatus.PENDING_FULFILLMENT_START, SubscriptionStatus.SUSPENDED)
    assert SUBSCRIPTION_STATES.is_terminal(SubscriptionStatus.UNSUBSCRIBED)
    assert OPERATION_STATES.can(OperationState.FAILED, OperationState.RECEIVED)
    assert not OPERATION_STATES.can(OperationState.REPORTED, OperationState.RECEIVED)
