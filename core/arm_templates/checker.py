"""The offline ARM template checker: entry points for tests, packaging and `controlplane templates check`.

No package ships the ARM JSON schemas, so these rules are our own, after the ARM template test toolkit.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from core.arm_templates.findings import Finding, format_findings
from core.arm_templates.template_rules import TemplateRules
from core.arm_templates.ui_definition_rules import UiDefinitionRules, ViewDefinitionRules

__all__ = [
    "RULES",
    "Finding",
    "check_deployment_templates",
    "check_document",
    "check_file",
    "check_repository_templates",
    "check_template",
    "check_ui_definition",
    "format_findings",
]

# Every rule id the checker reports, with what it enforces.
RULES: dict[str, str] = {
    "json-invalid": "the file is readable UTF-8 JSON",
    "template-structure": "$schema, contentVersion, known top-level keys, resources as an array (languageVersion 1.0)",
    "parameter-type": "parameter types are ARM types",
    "parameter-description": "every parameter has metadata.description",
    "parameter-default-invalid": "literal defaults respect allowedValues and minValue/maxValue",
    "parameter-unused": "every declared parameter is used",
    "parameter-undeclared": "every used parameter is declared",
    "secure-parameter-default": "secureString/secureObject parameters have no default",
    "variable-unused": "every declared variable is used",
    "variable-undeclared": "every used variable is declared",
    "expression-syntax": "expressions parse",
    "expression-unknown-function": "expressions call only functions the evaluator supports",
    "expression-function-context": "utcNow() only in parameter defaults; no variables() in parameter defaults",
    "resource-id-arguments": "resourceId-family calls give one name per segment of their literal type",
    "reference-unresolvable": "reference() without apiVersion targets a resource of the same template",
    "reference-output-unknown": "reference(<nested deployment>).outputs.<name> names a real output",
    "output-secret": "outputs carry no secure parameters and call no list*() function",
    "output-resource-unresolvable": "resource ids in outputs point at resources the template deploys",
    "depends-on-unresolvable": "dependsOn entries name resources of the same template",
    "depends-on-cycle": "dependsOn has no cycle",
    "location-hardcoded": "no literal region in a location property or the location parameter's default",
    "api-version-format": "apiVersion is a literal API version",
    "api-version-outdated": "API versions are at most 730 days old unless allow-listed as newest stable",
    "api-version-preview": "no preview API versions unless allow-listed",
    "nested-deployment-scope": "inline nested deployments use inner expression scope",
    "nested-parameter-undeclared": "parameters passed to a nested template are declared by it",
    "nested-parameter-missing": "a nested template's required parameters are passed",
    "nested-parameter-type": "a parameter passed to a nested template has the type the nested template declares",
    "template-blank": "no empty object, array, string or null where the property could be left out",
    "uri-hardcoded": "no literal Azure endpoint host (environment() gives them per cloud)",
    "uri-construction": "properties named *Uri/*Url are joined with uri(), not concat() or format()",
    "id-not-derived": "properties named *Id hold ids from resourceId(), reference(), parameters() and the like",
    "resource-id-function-argument": "resourceId(), reference(), list*() take no concat() or context call first",
    "reference-api-version": "API versions inside reference() and list*() are as fresh as resources' API versions",
    "location-resource-group": "resourceGroup().location and deployment().location only in parameter defaults",
    "parameter-not-secure": "parameters named like passwords, secrets or account keys are secureString/secureObject",
    "parameter-min-max": "minValue and maxValue are integers and come together",
    "output-name-secret": "no output is named like a password",
    "deployment-debug-setting": "nested deployments have no debugSetting",
    "vm-size-literal": "vmSize comes from a parameter",
    "admin-username-literal": "adminUsername is an expression, never a literal",
    "ui-structure": "createUiDefinition schema, handler, version and basics/steps/outputs shape",
    "ui-element-type-unknown": "element types are on the list of known createUiDefinition elements",
    "ui-element-name-duplicate": "element names are unique within their container",
    "ui-validation-missing": "every input element has a validation message",
    "ui-expression-syntax": "createUiDefinition expressions parse",
    "ui-expression-unknown-function": "createUiDefinition expressions call only createUiDefinition functions",
    "ui-reference-unresolvable": "steps('x').y and basics('y') name real steps and elements",
    "ui-output-unmatched": "every createUiDefinition output is a mainTemplate parameter",
    "ui-parameter-missing": "every mainTemplate parameter has a createUiDefinition output",
    "ui-tooltip-missing": "every control but info boxes, sections and text blocks has a toolTip",
    "ui-blank": "no empty value except basics, steps and defaultValue",
    "ui-location-output": "outputs.location is [location()]",
    "ui-allowed-values": "values a control offers are allowed by the mainTemplate parameter its output fills",
    "ui-password-parameter": "a password box fills a secureString or secureObject parameter",
    "view-structure": "viewDefinition schema and known view kinds",
}

TEMPLATES_FOLDER = "arm_templates"
# The publisher's own deployment of the control plane: checked by the same rules, never packaged.
DEPLOYMENT_FOLDER = "deploy"
UI_DEFINITION_FILE = "createUiDefinition.json"
VIEW_DEFINITION_FILE = "viewDefinition.json"
MAIN_TEMPLATE_FILE = "mainTemplate.json"


def check_template(document: Any, file: str, today: date | None = None) -> list[Finding]:
    """Check one deployment template document; `today` decides which API versions count as outdated."""
    return TemplateRules(document, file, today or date.today()).check()


def check_ui_definition(document: Any, file: str, template_parameters: dict[str, Any] | None) -> list[Finding]:
    """Check a createUiDefinition document; with the main template's parameters, also the output mapping."""
    return UiDefinitionRules(document, file, template_parameters).check()


def check_document(
    document: Any, file_name: str, file: str, template_parameters: dict[str, Any] | None, today: date | None = None
) -> list[Finding]:
    """Check a parsed document by what its file name says it is."""
    if file_name == UI_DEFINITION_FILE:
        return check_ui_definition(document, file, template_parameters)
    if file_name == VIEW_DEFINITION_FILE:
        return ViewDefinitionRules(document, file).check()
    return check_template(document, file, today)


def check_file(path: Path, root: Path, today: date | None = None) -> list[Finding]:
    """Check one JSON file; a createUiDefinition is checked against the mainTemplate.json beside it."""
    file = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    document, error = load_json(path)
    if error is not None:
        return [Finding(file, "$", "json-invalid", error)]
    template_parameters: dict[str, Any] | None = None
    if path.name == UI_DEFINITION_FILE:
        main_template, main_error = load_json(path.with_name(MAIN_TEMPLATE_FILE))
        if main_error is not None or not isinstance(main_template, dict):
            return [Finding(file, "$", "ui-structure", f"no readable {MAIN_TEMPLATE_FILE} beside it")]
        parameters = main_template.get("parameters", {})
        template_parameters = parameters if isinstance(parameters, dict) else {}
    return check_document(document, path.name, file, template_parameters, today)


def check_directory(directory: Path, root: Path, today: date | None = None) -> list[Finding]:
    """Check every JSON file below `directory`, in a stable order."""
    findings: list[Finding] = []
    for path in sorted(directory.rglob("*.json")):
        findings.extend(check_file(path, root, today))
    return findings


def check_repository_templates(root: Path, today: date | None = None) -> list[Finding]:
    """Check every template, createUiDefinition and viewDefinition under `<root>/arm_templates`."""
    directory = root / TEMPLATES_FOLDER
    if not directory.is_dir():
        return [Finding(TEMPLATES_FOLDER, "$", "template-structure", "the arm_templates folder is missing")]
    return check_directory(directory, root, today)


def check_deployment_templates(root: Path, today: date | None = None) -> list[Finding]:
    """Check the publisher deployment templates under `<root>/deploy` (none when the folder is absent)."""
    directory = root / DEPLOYMENT_FOLDER
    return check_directory(directory, root, today) if directory.is_dir() else []


def load_json(path: Path) -> tuple[Any, str | None]:
    """The parsed file, or an error message when it is unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read file: {error}"
    except json.JSONDecodeError as error:
        return None, f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
