"""The purchase pages' words: refused choices in plain language per field, terms and durations as people say them,
and sign-in only ever returning to our own pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.subscriptions.progress import duration_words
from core.subscriptions.schemas import DeploymentChoices
from portal.purchase_view import FIELD_HELP, problems_of_choices, term_words
from portal.sign_in_flow import restart_link, safe_next

VALID = {
    "region": "westeurope",
    "azure_subscription_id": "00000000-0000-0000-0000-000000000001",
    "resource_group": "rg-facade",
    "pls_visibility_subscriptions": "*",
    "pls_auto_approval_subscriptions": "",
    "key_vault_sku": "standard",
    "key_type": "RSA",
    "key_size": "3072",
    "rotation_days": "90",
}
JARGON = ("Value error", "pattern", "^", "Input should", "String should", "regex")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("region", "West Europe"),
        ("azure_subscription_id", "not-a-guid"),
        ("resource_group", "ends-with-a-period."),
        ("pls_visibility_subscriptions", "abc, 00000000-0000-0000-0000-000000000001"),
        ("pls_auto_approval_subscriptions", "*x"),
        # Every subscription's endpoints approved without a person: only in the portal, with a confirmation.
        ("pls_auto_approval_subscriptions", "*"),
        ("pls_auto_approval_subscriptions", "00000000-0000-0000-0000-000000000001 *"),
        ("key_vault_sku", "gold"),
        ("key_type", "EC"),
        ("key_size", "1024"),
        ("rotation_days", "3"),
        ("rotation_days", "ninety"),
    ],
)
def test_a_refused_choice_is_explained_beside_its_own_field_in_plain_words(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DeploymentChoices.from_form({**VALID, field: value})

    problems = problems_of_choices(refused.value)

    assert problems.by_field == {field: FIELD_HELP[field]}
    assert problems.general == []
    for words in JARGON:
        assert words not in FIELD_HELP[field]


def test_a_purchase_may_show_the_service_to_every_subscription_but_names_whom_it_approves() -> None:
    choices = DeploymentChoices.from_form({**VALID, "pls_visibility_subscriptions": "*"})
    assert choices.private_link.visibility_subscriptions == ["*"]
    assert "portal" in FIELD_HELP["pls_auto_approval_subscriptions"]


def test_several_refused_choices_are_listed_in_the_form_s_order() -> None:
    with pytest.raises(ValidationError) as refused:
        DeploymentChoices.from_form({**VALID, "rotation_days": "1", "region": "?"})

    assert [name for name, _, _ in problems_of_choices(refused.value).summary()] == ["region", "rotation_days"]


def test_terms_read_as_dates() -> None:
    start = datetime(2026, 3, 7, tzinfo=UTC)
    end = datetime(2026, 4, 6, tzinfo=UTC)

    assert term_words("P1M", start, end) == "Monthly, 7 March 2026 to 6 April 2026"
    assert term_words("P1Y", start, None) == "Yearly, from 7 March 2026"
    assert term_words("P1M", None, None) == "Monthly, starting when your cluster is ready"
    assert term_words(None, None, None) == "Starts when your cluster is ready"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.4, "under 10 seconds"), (44, "about 40 seconds"), (200, "about 3 minutes"), (7300, "about 2 hours")],
)
def test_typical_durations_read_as_people_say_them(seconds: float, words: str) -> None:
    assert duration_words(seconds) == words


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/portal/subscriptions", True),
        ("/marketplace/landing?token=abc", True),
        ("/marketplace/subscriptions/s-1/placement", True),
        ("/marketplace/landingpage", False),
        ("//evil.example.com/portal/", False),
        ("https://evil.example.com/portal/", False),
        ("/publisher/subscriptions", False),
        (None, False),
    ],
)
def test_sign_in_returns_only_to_our_own_pages(target: str | None, kept: bool) -> None:
    assert safe_next(target) == (target if kept else None)


def test_starting_the_sign_in_again_opens_the_page_it_was_for() -> None:
    assert restart_link("/marketplace/landing?token=abc") == "/marketplace/landing?token=abc"
    assert restart_link("/portal/audit") == "/portal/sign-in?next=%2Fportal%2Faudit"
    assert restart_link(None) == "/portal/sign-in"
