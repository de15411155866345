"""Every audit action reads as a sentence, only real failures are marked as failures, and one failure message says
who must act and exactly how."""

from __future__ import annotations

import re

import pytest

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.sentences import SENTENCES, Tone, actor_in_words, describe
from core.clusters.failure_advice import WhoMustAct, failure_advice
from core.clusters.models import Cluster

AZURE_SUBSCRIPTION = "6a1f0c3e-2b4d-4e8f-9a7c-1d2e3f4a5b6c"
APPLICATION_ID = "0c4d8e2f-7a1b-4c3d-9e8f-5a6b7c8d9e0f"


def test_every_action_has_a_sentence_without_its_code() -> None:
    assert set(SENTENCES) == set(AuditAction)
    for action in AuditAction:
        for outcome in AuditOutcome:
            sentence = describe(action.value, outcome.value, {"step": "cluster", "objective": "availability"}, {})
            assert sentence.text, action
            assert "_" not in sentence.text, (action, sentence.text)
            assert action.value not in sentence.text
            assert not sentence.text.endswith("."), (action, sentence.text)


@pytest.mark.parametrize(
    ("action", "details", "text"),
    [
        (
            AuditAction.CLUSTER_STEP_FAILED,
            {"step": "private-link"},
            "A try at the Private Link service failed; trying again",
        ),
        (
            AuditAction.CLUSTER_BLOB_PROBE_FAILED,
            {"check": "put_block_blob"},
            "A Blob API health check of the endpoint did not pass (check: put block blob)",
        ),
        (
            AuditAction.SLO_BURN_RATE_ALERT,
            {"objective": "availability", "severity": "page"},
            "The availability error budget is being spent fast; our operators were paged",
        ),
    ],
)
def test_events_handled_on_their_own_are_notices_not_failures(
    action: AuditAction, details: dict[str, str], text: str
) -> None:
    sentence = describe(action.value, AuditOutcome.FAILURE, details, {})

    assert (sentence.text, sentence.tone) == (text, Tone.NOTICE)


def test_only_what_waits_for_a_person_is_a_failure() -> None:
    failures = {action for action in AuditAction if describe(action.value, "failure", {}, {}).tone == Tone.FAILURE}

    assert AuditAction.CLUSTER_FAILED in failures
    assert AuditAction.CLUSTER_DRIFT_INCIDENT in failures
    assert AuditAction.CLUSTER_STEP_FAILED not in failures
    assert AuditAction.CLUSTER_BLOB_PROBE_FAILED not in failures
    assert AuditAction.SLO_BURN_RATE_ALERT not in failures
    assert describe(AuditAction.SUBSCRIPTION_ACTIVATED.value, "success", {}, {}).tone == Tone.ROUTINE


def test_an_action_from_a_newer_release_reads_as_an_update() -> None:
    assert describe("cluster.something_new", "success", {}, {}).text == "Update"


def test_actors_are_named_without_internal_ids() -> None:
    assert actor_in_words("system:provisioning-controller") == "automatic"
    assert actor_in_words("marketplace") == "Azure Marketplace"
    assert actor_in_words("user:2b3c4d5e-0000-4000-8000-000000000000") == "a person"


def _failed(code: str, message: str, details: list[dict[str, object]] | None = None) -> Cluster:
    return Cluster(
        name="facade-x",
        tenant_id="t",
        offer_id="o",
        plan_id="p",
        region="westeurope",
        azure_subscription_id=AZURE_SUBSCRIPTION,
        resource_group="rg-facade-x",
        status="failed",
        current_step="cluster",
        last_error_code=code,
        last_error_message=message,
        last_error_details=details or [],
    )


def test_missing_consent_names_the_application_the_role_and_its_scope_in_one_message() -> None:
    arm_text = (
        f"The control-plane application ({APPLICATION_ID}) cannot manage Azure subscription {AZURE_SUBSCRIPTION}: "
        "AuthorizationFailed: no access. A customer administrator must consent to the application in their tenant "
        "and grant it the Contributor role on the subscription (or the target resource group), then an operator "
        "retries."
    )

    advice = failure_advice(_failed("ArmAccessDenied", arm_text), APPLICATION_ID)

    assert advice.who_must_act == WhoMustAct.CUSTOMER
    assert f"application id {APPLICATION_ID}" in advice.what_to_do
    assert "consent" in advice.what_to_do
    assert f"Contributor role on Azure subscription {AZURE_SUBSCRIPTION}" in advice.what_to_do
    assert f"scope /subscriptions/{AZURE_SUBSCRIPTION}" in advice.what_to_do
    everything = " ".join((advice.headline, advice.explanation, advice.what_to_do))
    # One message: nothing of ARM's text, no "nothing needs to be done on your side", no doubled punctuation.
    assert "operator retries" not in everything
    assert "nothing" not in everything.lower()
    assert not re.search(r"[.;,:]\s*[.;,:]", everything)


def test_a_failure_on_our_side_asks_nothing_of_the_customer() -> None:
    advice = failure_advice(_failed("InternalServerError", "ARM answered 500."), APPLICATION_ID)

    assert advice.who_must_act == WhoMustAct.PUBLISHER
    assert "Contributor" not in advice.what_to_do
