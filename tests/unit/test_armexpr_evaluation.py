"""Unit tests of the ARM emulator's template evaluation (functions and constructs), without a server."""

from __future__ import annotations

from typing import Any

import pytest

import armexpr
from emulators.arm.errors import TemplateError
from emulators.arm.template_engine import DeploymentContext, TemplateEvaluator, check_expressions
from emulators.arm.template_functions import FUNCTIONS

CONTEXT = DeploymentContext(
    subscription_id="00000000-0000-4000-8000-000000000001",
    subscription_display_name="Test",
    tenant_id="00000000-0000-4000-8000-0000000000aa",
    resource_group_name="rg-test",
    resource_group_location="westeurope",
    resource_group_tags={"env": "test"},
    deployment_name="unit",
)


def no_references(resource_id: str, full: bool) -> Any:
    raise TemplateError(f"no resource {resource_id}")


def evaluator(template: dict[str, Any] | None = None, **parameters: Any) -> TemplateEvaluator:
    """An evaluator over a template (default: one string parameter `name` and one int `count`)."""
    template = template or {
        "parameters": {
            "name": {"type": "string", "defaultValue": "Facade"},
            "count": {"type": "int", "defaultValue": 3},
        },
        "variables": {
            "lower": "[toLower(parameters('name'))]",
            "derived": "[concat(variables('lower'), '-', parameters('count'))]",
        },
        "resources": [],
    }
    return TemplateEvaluator(
        template, {key: {"value": value} for key, value in parameters.items()}, CONTEXT, no_references
    )


def test_every_known_function_is_implemented() -> None:
    assert set(FUNCTIONS) | {"if"} == armexpr.KNOWN_FUNCTIONS


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("[concat('a', 1, true)]", "a1True"),
        ("[concat(createArray(1, 2), createArray(3))]", [1, 2, 3]),
        ("[format('{0}-{1:D3}-{{x}}', 'vm', 7)]", "vm-007-{x}"),
        (
            "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet', 'a')]",
            "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-test/providers/Microsoft.Network/virtualNetworks/vnet/subnets/a",
        ),
        (
            "[resourceId('other-rg', 'Microsoft.KeyVault/vaults', 'kv')]",
            "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/other-rg/providers/Microsoft.KeyVault/vaults/kv",
        ),
        (
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'abc')]",
            "/subscriptions/00000000-0000-4000-8000-000000000001/providers/Microsoft.Authorization/roleDefinitions/abc",
        ),
        (
            "[extensionResourceId('/subscriptions/s/resourceGroups/r/providers/A.B/c/d', 'A.Z/y', 'x')]",
            "/subscriptions/s/resourceGroups/r/providers/A.B/c/d/providers/A.Z/y/x",
        ),
        ("[resourceGroup().location]", "westeurope"),
        ("[subscription().subscriptionId]", "00000000-0000-4000-8000-000000000001"),
        ("[tenant().tenantId]", "00000000-0000-4000-8000-0000000000aa"),
        ("[deployment().name]", "unit"),
        ("[variables('derived')]", "facade-3"),
        ("[if(equals(parameters('count'), 3), 'three', variables('missing'))]", "three"),
        ("[and(not(false), or(false, true))]", True),
        ("[empty('')]", True),
        ("[length(createObject('a', 1, 'b', 2))]", 2),
        ("[contains(createObject('Key', 1), 'key')]", True),
        ("[contains('abc', 'b')]", True),
        (
            "[union(createObject('a', createObject('x', 1)), createObject('a', createObject('y', 2)))]",
            {"a": {"x": 1, "y": 2}},
        ),
        ("[union(createArray(1, 2), createArray(2, 3))]", [1, 2, 3]),
        ("[string(createObject('a', 1))]", '{"a":1}'),
        ("[int('42')]", 42),
        ("[bool('TRUE')]", True),
        ("[json('{\"a\": [1]}').a[0]]", 1),
        ("[substring('facade', 1, 3)]", "aca"),
        ("[replace('a-b-c', '-', '.')]", "a.b.c"),
        ("[split('a,b;c', createArray(',', ';'))]", ["a", "b", "c"]),
        ("[first(createArray('x', 'y'))]", "x"),
        ("[last('xyz')]", "z"),
        ("[take(createArray(1, 2, 3), 2)]", [1, 2]),
        ("[skip('abcdef', 4)]", "ef"),
        ("[coalesce(null(), null(), 'c')]", "c"),
        ("[uri('https://example.org/a/', 'b')]", "https://example.org/a/b"),
        ("[startsWith('Facade', 'fa')]", True),
        ("[endsWith('Facade', 'DE')]", True),
        ("[indexOf('abcdef', 'CD')]", 2),
        ("[range(5, 3)]", [5, 6, 7]),
        ("[min(createArray(4, 2, 9))]", 2),
        ("[max(4, 2, 9)]", 9),
        ("[add(1, sub(10, mul(2, 3)))]", 5),
        ("[div(-7, 2)]", -3),
        ("[mod(-7, 2)]", -1),
        ("[greater('b', 'a')]", True),
        ("[lessOrEquals(3, 3)]", True),
        ("[array('x')]", ["x"]),
        ("[base64('hi')]", "aGk="),
        ("[toUpper(trim('  x  '))]", "X"),
        ("[[not an expression]", "[not an expression]"),
    ],
)
def test_functions(expression: str, expected: Any) -> None:
    assert evaluator().evaluate(expression) == expected


def test_unique_string_and_guid_are_deterministic_and_argument_sensitive() -> None:
    first = evaluator().evaluate("[uniqueString('a', 'b')]")
    assert first == evaluator().evaluate("[uniqueString('a', 'b')]")
    assert first != evaluator().evaluate("[uniqueString('a', 'c')]")
    assert len(first) == 13
    assert first.isalnum()
    assert len(evaluator().evaluate("[guid('x')]")) == 36


def test_utc_now_only_in_parameter_defaults() -> None:
    template = {"parameters": {"stamp": {"type": "string", "defaultValue": "[utcNow('yyyyMMdd')]"}}, "resources": []}
    assert len(evaluator(template).parameter("stamp")) == 8
    with pytest.raises(TemplateError, match="utcNow"):
        evaluator(template).evaluate("[utcNow()]")


def test_copy_loops_conditions_and_child_resources_are_planned_in_dependency_order() -> None:
    template = {
        "parameters": {"count": {"type": "int"}},
        "variables": {"copy": [{"name": "ports", "count": 2, "input": "[add(8000, copyIndex('ports'))]"}]},
        "resources": [
            {
                "type": "Microsoft.Network/loadBalancers",
                "name": "lb",
                "dependsOn": ["nodes"],
                "properties": {
                    "copy": [
                        {
                            "name": "rules",
                            "count": "[length(variables('ports'))]",
                            "input": {"port": "[variables('ports')[copyIndex('rules')]]"},
                        }
                    ]
                },
            },
            {
                "type": "Microsoft.Compute/virtualMachines",
                "name": "[concat('node', copyIndex(1))]",
                "copy": {"name": "nodes", "count": "[parameters('count')]"},
            },
            {
                "type": "Microsoft.Network/virtualNetworks",
                "name": "vnet",
                "condition": "[greater(parameters('count'), 5)]",
                "resources": [{"type": "subnets", "name": "default"}],
            },
        ],
    }
    subject = evaluator(template, count=2)
    plan = subject.plan()
    assert [item.name for item in plan] == ["node1", "node2", "vnet", "lb", "vnet/default"]
    assert [item.condition for item in plan] == [True, True, False, True, False]
    assert plan[-1].type == "Microsoft.Network/virtualNetworks/subnets"
    balancer = subject.evaluate_resource(plan[3])
    assert balancer["properties"]["rules"] == [{"port": 8000}, {"port": 8001}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nope('a')]", "The template function 'nope' is not valid"),
        ("[concat('a' 'b')]", "is not valid"),
    ],
)
def test_check_expressions_reports_invalid_template(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as raised:
        check_expressions({"resources": [], "outputs": {"x": {"type": "string", "value": text}}})
    assert raised.value.code == "InvalidTemplate"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("[parameters('missing')]", "The template parameter 'missing' is not found"),
        ("[variables('missing')]", "The template variable 'missing' is not found"),
        ("[substring('abc', 2, 5)]", "must refer to a location within the string"),
        ("[createObject('a')]", "even number"),
        ("[div(1, 0)]", "divide by zero"),
        ("[copyIndex()]", "copyIndex"),
        ("[resourceGroup().missing]", "doesn't exist"),
    ],
)
def test_evaluation_errors_are_template_errors(expression: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        evaluator().evaluate(expression)


def test_secure_parameters_and_outputs() -> None:
    template = {
        "parameters": {"secret": {"type": "secureString"}, "items": {"type": "array", "allowedValues": ["a", "b"]}},
        "resources": [],
        "outputs": {
            "echo": {"type": "secureString", "value": "[parameters('secret')]"},
            "count": {"type": "int", "value": "[length(parameters('items'))]"},
            "each": {"type": "array", "copy": {"count": 2, "input": "[concat('n', copyIndex())]"}},
        },
    }
    outputs = evaluator(template, secret="s3cret", items=["a", "b"]).outputs()
    assert outputs == {
        "echo": {"type": "SecureString"},
        "count": {"type": "Int", "value": 2},
        "each": {"type": "Array", "value": ["n0", "n1"]},
    }
    with pytest.raises(TemplateError, match="allowed value"):
        evaluator(template, secret="s", items=["c"])


def test_uri_component_escapes_like_dotnet_escape_data_string() -> None:
    template = evaluator()
    assert template.evaluate_expression("[uriComponent('p@ss/w rd:+&=~')]") == "p%40ss%2Fw%20rd%3A%2B%26%3D~"
    assert template.evaluate_expression("[uriComponentToString('p%40ss%2Fw%20rd')]") == "p@ss/w rd"


def test_list_keys_runs_the_action_on_the_resource_id_and_needs_an_id() -> None:
    calls: list[tuple[str, str]] = []

    def list_action(resource_id: str, action: str) -> dict[str, str]:
        calls.append((resource_id, action))
        return {"primaryKey": "k1"}

    template = TemplateEvaluator({"resources": []}, {}, CONTEXT, no_references, list_actions=list_action)
    value = template.evaluate_expression(
        "[listKeys(resourceId('Microsoft.Cache/redis', 'cache'), '2024-11-01').primaryKey]"
    )
    assert value == "k1"
    assert calls == [
        (
            f"/subscriptions/{CONTEXT.subscription_id}/resourceGroups/rg-test/providers/Microsoft.Cache/redis/cache",
            "listKeys",
        )
    ]
    with pytest.raises(TemplateError, match="needs a resource id"):
        template.evaluate_expression("[listKeys('cache', '2024-11-01')]")
