"""The portal's drift section says in words what changed and who acts: us (repair) or an operator (incident)."""

from __future__ import annotations

from core.clock import utc_now
from core.clusters.drift_models import ClusterDrift, DriftRemedy, DriftState
from portal.pages import templates


def render(drifts: list[ClusterDrift], *, operator: bool) -> str:
    template = templates.env.from_string(
        '{% from "drift_macros.html" import drift_section with context %}{{ drift_section(drifts, operator=operator) }}'
    )
    return template.render(drifts=drifts, operator=operator)


def drift(kind: str, remedy: DriftRemedy, state: DriftState = DriftState.OPEN) -> ClusterDrift:
    now = utc_now()
    return ClusterDrift(
        cluster_id="c",
        tenant_id="t",
        kind=kind,
        resource_id=f"/subscriptions/s/resourceGroups/g/providers/X/{kind}",
        step="cluster",
        remedy=remedy.value,
        state=state.value,
        repair_attempts=1 if remedy == DriftRemedy.REPAIR else 0,
        detected_at=now,
        last_seen_at=now,
        resolved_at=now if state == DriftState.RESOLVED else None,
    )


def test_no_drift_says_the_resources_match() -> None:
    assert "match what we deployed" in render([], operator=False)


def test_a_repair_tells_the_customer_nothing_is_needed_and_an_incident_names_the_operators() -> None:
    page = render(
        [
            drift("resource_deleted", DriftRemedy.REPAIR),
            drift("key_deleted", DriftRemedy.INCIDENT),
            drift("scale_set_capacity_changed", DriftRemedy.REPAIR, DriftState.RESOLVED),
        ],
        operator=False,
    )
    assert "A resource of the cluster was deleted" in page
    assert "nothing to do on your side" in page
    assert "The customer-managed key was deleted" in page
    assert "Our operators have been alerted" in page
    assert "Resolved: Azure matches our deployment again." in page


def test_an_operator_is_told_to_decide_an_incident_by_hand() -> None:
    page = render([drift("key_disabled", DriftRemedy.INCIDENT)], operator=True)
    assert "Incident: decide by hand." in page
    assert "The customer-managed key was disabled" in page
