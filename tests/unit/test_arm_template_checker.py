"""The offline template checker: the repository passes, and each broken fixture fails with its precise finding."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core.arm_templates.checker import (
    RULES,
    Finding,
    check_file,
    check_repository_templates,
    check_template,
    format_findings,
)

pytestmark = pytest.mark.timeout(30)

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = REPOSITORY / "tests" / "fixtures" / "arm-templates"
# API-version freshness depends on the day; pin the day the allow-list was last reviewed so the suite is stable.
# `controlplane templates check` uses the real date and so reports versions that age out after this day.
REVIEWED_ON = date(2026, 11, 26)

# fixture (relative to FIXTURES) -> the single (rule, JSON path) it must produce.
EXPECTED_FINDINGS: dict[str, tuple[str, str]] = {
    "template/json-invalid.json": ("json-invalid", "$"),
    "template/template-structure.json": ("template-structure", "$.contentVersion"),
    "template/parameter-type.json": ("parameter-type", "$.parameters.vaultName.type"),
    "template/parameter-description.json": ("parameter-description", "$.parameters.vaultName"),
    "template/parameter-default-invalid.json": ("parameter-default-invalid", "$.parameters.sku.defaultValue"),
    "template/parameter-unused.json": ("parameter-unused", "$.parameters.unusedSetting"),
    "template/parameter-undeclared.json": ("parameter-undeclared", "$.resources[0].tags.owner"),
    "template/secure-parameter-default.json": ("secure-parameter-default", "$.parameters.ownerToken.defaultValue"),
    "template/variable-unused.json": ("variable-unused", "$.variables.unusedVariable"),
    "template/variable-undeclared.json": ("variable-undeclared", "$.resources[0].tags.owner"),
    "template/expression-syntax.json": ("expression-syntax", "$.resources[0].tags.owner"),
    "template/expression-unknown-function.json": ("expression-unknown-function", "$.resources[0].tags.owner"),
    "template/expression-function-context.json": ("expression-function-context", "$.resources[0].tags.created"),
    "template/resource-id-arguments.json": ("resource-id-arguments", "$.outputs.vaultId.value"),
    "template/reference-unresolvable.json": ("reference-unresolvable", "$.resources[0].tags.storage"),
    "template/reference-output-unknown.json": ("reference-output-unknown", "$.outputs.innerVault.value"),
    "template/output-secret.json": ("output-secret", "$.outputs.token.value"),
    "template/output-resource-unresolvable.json": ("output-resource-unresolvable", "$.outputs.vaultId.value"),
    "template/depends-on-unresolvable.json": ("depends-on-unresolvable", "$.resources[1].dependsOn[0]"),
    "template/depends-on-cycle.json": ("depends-on-cycle", "$.resources[0].dependsOn"),
    "template/location-hardcoded.json": ("location-hardcoded", "$.resources[0].location"),
    "template/api-version-format.json": ("api-version-format", "$.resources[0].apiVersion"),
    "template/api-version-outdated.json": ("api-version-outdated", "$.resources[0].apiVersion"),
    "template/api-version-preview.json": ("api-version-preview", "$.resources[0].apiVersion"),
    "template/nested-deployment-scope.json": (
        "nested-deployment-scope",
        "$.resources[1].properties.expressionEvaluationOptions",
    ),
    "template/nested-parameter-undeclared.json": (
        "nested-parameter-undeclared",
        "$.resources[1].properties.parameters.keyName",
    ),
    "template/nested-parameter-missing.json": ("nested-parameter-missing", "$.resources[1].properties.parameters"),
    "template/nested-parameter-type.json": ("nested-parameter-type", "$.resources[2].properties.parameters.vaultName"),
    "template/template-blank.json": ("template-blank", "$.resources[0].properties.networkAcls"),
    "template/uri-hardcoded.json": ("uri-hardcoded", "$.outputs.managementEndpoint.value"),
    "template/uri-construction.json": ("uri-construction", "$.resources[0].properties.vaultUri"),
    "template/id-not-derived.json": (
        "id-not-derived",
        "$.resources[0].properties.networkAcls.virtualNetworkRules[0].id",
    ),
    "template/resource-id-function-argument.json": ("resource-id-function-argument", "$.outputs.vaultId.value"),
    "template/reference-api-version.json": ("reference-api-version", "$.outputs.vaultUri.value"),
    "template/location-resource-group.json": ("location-resource-group", "$.resources[0].location"),
    "template/parameter-not-secure.json": ("parameter-not-secure", "$.parameters.adminPassword.type"),
    "template/parameter-min-max.json": ("parameter-min-max", "$.parameters.keySize"),
    "template/output-name-secret.json": ("output-name-secret", "$.outputs.adminPassword"),
    "template/deployment-debug-setting.json": ("deployment-debug-setting", "$.resources[2].properties.debugSetting"),
    "template/vm-size-literal.json": ("vm-size-literal", "$.resources[0].properties.hardwareProfile.vmSize"),
    "template/admin-username-literal.json": (
        "admin-username-literal",
        "$.resources[0].properties.osProfile.adminUsername",
    ),
    "ui-definition/ui-structure/createUiDefinition.json": ("ui-structure", "$.handler"),
    "ui-definition/ui-element-type-unknown/createUiDefinition.json": (
        "ui-element-type-unknown",
        "$.parameters.basics[0].type",
    ),
    "ui-definition/ui-element-name-duplicate/createUiDefinition.json": (
        "ui-element-name-duplicate",
        "$.parameters.steps[0].elements[1].name",
    ),
    "ui-definition/ui-validation-missing/createUiDefinition.json": ("ui-validation-missing", "$.parameters.basics[0]"),
    "ui-definition/ui-expression-syntax/createUiDefinition.json": (
        "ui-expression-syntax",
        "$.parameters.outputs.clusterName",
    ),
    "ui-definition/ui-expression-unknown-function/createUiDefinition.json": (
        "ui-expression-unknown-function",
        "$.parameters.outputs.clusterName",
    ),
    "ui-definition/ui-reference-unresolvable/createUiDefinition.json": (
        "ui-reference-unresolvable",
        "$.parameters.outputs.nodeCount",
    ),
    "ui-definition/ui-output-unmatched/createUiDefinition.json": (
        "ui-output-unmatched",
        "$.parameters.outputs.clusterSize",
    ),
    "ui-definition/ui-parameter-missing/createUiDefinition.json": ("ui-parameter-missing", "$.parameters.outputs"),
    "ui-definition/ui-tooltip-missing/createUiDefinition.json": ("ui-tooltip-missing", "$.parameters.basics[0]"),
    "ui-definition/ui-blank/createUiDefinition.json": ("ui-blank", "$.parameters.basics[0].placeholder"),
    "ui-definition/ui-location-output/createUiDefinition.json": ("ui-location-output", "$.parameters.outputs.location"),
    "ui-definition/ui-allowed-values/createUiDefinition.json": (
        "ui-allowed-values",
        "$.parameters.steps[0].elements[2].constraints.allowedValues[1]",
    ),
    "ui-definition/ui-password-parameter/createUiDefinition.json": ("ui-password-parameter", "$.parameters.basics[1]"),
    "view-definition/view-structure/viewDefinition.json": ("view-structure", "$.views[1].kind"),
}
VALID_FIXTURES = ("template/valid-minimal.json", "ui-definition/valid-minimal/createUiDefinition.json")


def load(relative: str) -> Any:
    """A repository JSON file, parsed."""
    return json.loads((REPOSITORY / relative).read_text(encoding="utf-8"))


def rules_and_paths(findings: list[Finding]) -> list[tuple[str, str]]:
    """Findings reduced to what the fixtures pin down."""
    return [(finding.rule, finding.path) for finding in findings]


def test_repository_templates_have_no_findings() -> None:
    findings = check_repository_templates(REPOSITORY, REVIEWED_ON)
    assert findings == [], format_findings(findings)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FINDINGS))
def test_broken_fixture_fails_with_its_rule_and_path(fixture: str) -> None:
    findings = check_file(FIXTURES / fixture, FIXTURES, REVIEWED_ON)
    assert rules_and_paths(findings) == [EXPECTED_FINDINGS[fixture]], format_findings(findings)
    assert findings[0].file == fixture
    assert findings[0].message


@pytest.mark.parametrize("fixture", VALID_FIXTURES)
def test_fixture_baselines_are_clean(fixture: str) -> None:
    # The broken fixtures are each one edit away from these, so a finding here would blur every other case.
    assert check_file(FIXTURES / fixture, FIXTURES, REVIEWED_ON) == []


def test_every_rule_has_a_broken_fixture() -> None:
    covered = {rule for rule, _ in EXPECTED_FINDINGS.values()}
    assert covered == set(RULES)


def test_outdated_versions_are_reported_relative_to_the_given_day() -> None:
    template = load("arm_templates/facade-cluster/dns.json")
    # 2024-06-01 is allow-listed for private DNS; the compute-free dns step therefore stays clean years later...
    assert check_template(template, "dns.json", date(2030, 1, 1)) == []
    cluster = load("arm_templates/facade-cluster/cluster.json")
    # ...while non-allow-listed versions age out.
    findings = check_template(cluster, "cluster.json", REVIEWED_ON.replace(year=2028))
    assert {finding.rule for finding in findings} == {"api-version-outdated"}
    assert "$.resources[3].apiVersion" in {finding.path for finding in findings}


def test_removed_parameter_is_reported_where_it_is_used() -> None:
    template = load("arm_templates/facade-cluster/private-link.json")
    del template["parameters"]["enableProxyProtocol"]
    findings = check_template(template, "private-link.json", REVIEWED_ON)
    assert rules_and_paths(findings) == [
        ("parameter-undeclared", "$.resources[0].properties.enableProxyProtocol"),
    ]


def test_composed_template_with_a_misnamed_binding_is_caught() -> None:
    template = load("arm_templates/managed-app/mainTemplate.json")
    broken = copy.deepcopy(template)
    passed = broken["resources"][1]["properties"]["parameters"]
    passed["keyUri"]["value"] = passed["keyUri"]["value"].replace(".outputs.keyUri.", ".outputs.keyUrl.")
    findings = check_template(broken, "mainTemplate.json", REVIEWED_ON)
    assert rules_and_paths(findings) == [
        ("reference-output-unknown", "$.resources[1].properties.parameters.keyUri.value"),
    ]


def test_findings_inside_nested_templates_carry_the_full_path() -> None:
    template = load("arm_templates/managed-app/mainTemplate.json")
    template["resources"][2]["properties"]["template"]["resources"][0]["apiVersion"] = "2019-09-01"
    findings = check_template(template, "mainTemplate.json", REVIEWED_ON)
    assert rules_and_paths(findings) == [
        ("api-version-outdated", "$.resources[2].properties.template.resources[0].apiVersion"),
    ]


def test_dependency_through_variables_resolves_and_typos_do_not() -> None:
    template = load("arm_templates/facade-cluster/identity-keyvault.json")
    assert check_template(template, "identity-keyvault.json", REVIEWED_ON) == []
    template["resources"][3]["dependsOn"].append("[resourceId('Microsoft.KeyVault/vaults/keys', 'other', 'key')]")
    findings = check_template(template, "identity-keyvault.json", REVIEWED_ON)
    assert rules_and_paths(findings) == [("depends-on-unresolvable", "$.resources[3].dependsOn[2]")]


def test_format_findings_lists_file_path_rule_and_message() -> None:
    findings = [
        Finding("b.json", "$.outputs.x.value", "output-secret", "outputs must not call listKeys()"),
        Finding("a.json", "$.contentVersion", "template-structure", "contentVersion must look like 1.0.0.0"),
    ]
    assert format_findings(findings).splitlines() == [
        "a.json: $.contentVersion: [template-structure] contentVersion must look like 1.0.0.0",
        "b.json: $.outputs.x.value: [output-secret] outputs must not call listKeys()",
        "2 finding(s)",
    ]
    assert format_findings([]) == "no findings"


def test_missing_templates_folder_is_a_finding(tmp_path: Path) -> None:
    assert rules_and_paths(check_repository_templates(tmp_path, REVIEWED_ON)) == [("template-structure", "$")]
