"""Unit tests of the ARM expression parser."""

from __future__ import annotations

import pytest

import armexpr
from armexpr import (
    ArmExpressionError,
    BooleanLiteral,
    FunctionCall,
    IndexAccess,
    NumberLiteral,
    PropertyAccess,
    StringLiteral,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[parameters('a')]", True),
        ("[[parameters('a')]", False),
        ("plain", False),
        ("[]", True),
        ("[x", False),
        ("", False),
    ],
)
def test_is_expression(text: str, expected: bool) -> None:
    assert armexpr.is_expression(text) is expected


def test_unescape_literal_drops_one_bracket() -> None:
    assert armexpr.unescape_literal("[[variables('x')]") == "[variables('x')]"
    assert armexpr.unescape_literal("text") == "text"


def test_nested_calls_and_literals() -> None:
    node = armexpr.parse("[concat('a''b', parameters( 'name' ), 42, -3, true, false())]")
    assert node == FunctionCall(
        "concat",
        (
            StringLiteral("a'b"),
            FunctionCall("parameters", (StringLiteral("name"),)),
            NumberLiteral(42),
            NumberLiteral(-3),
            BooleanLiteral(True),
            BooleanLiteral(False),
        ),
    )


def test_property_and_index_access_chain() -> None:
    node = armexpr.parse("[reference(variables('id'), '2023-01-31', 'Full').properties.items[0]['name']]")
    assert isinstance(node, IndexAccess)
    assert node.index == StringLiteral("name")
    inner = node.target
    assert isinstance(inner, IndexAccess)
    assert inner.index == NumberLiteral(0)
    assert isinstance(inner.target, PropertyAccess)
    assert inner.target.name == "items"
    reference = inner.target.target
    assert isinstance(reference, PropertyAccess)
    assert reference.name == "properties"
    assert isinstance(reference.target, FunctionCall)
    assert reference.target.name == "reference"
    assert len(reference.target.arguments) == 3


def test_function_names_keep_their_spelling() -> None:
    node = armexpr.parse("[ResourceGroup().location]")
    assert node == PropertyAccess(FunctionCall("ResourceGroup", ()), "location")


def test_walk_visits_every_node_depth_first() -> None:
    node = armexpr.parse("[if(equals(parameters('a'), 1), concat('x', 'y'), null())]")
    names = [item.name for item in armexpr.walk(node) if isinstance(item, FunctionCall)]
    assert names == ["if", "equals", "parameters", "concat", "null"]
    assert sum(1 for _ in armexpr.walk(node)) == 9


def test_nodes_are_frozen_and_hashable() -> None:
    node = armexpr.parse("[createArray(1, 2)]")
    assert hash(node) == hash(armexpr.parse("[createArray(1,2)]"))
    with pytest.raises(AttributeError):
        node.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("[concat('a')", 0),
        ("[concat('a' 'b')]", 12),
        ("['unterminated]", 1),
        ("[parameters('a').]", 17),
        ("[name]", 5),
        ("[concat()) ]", 9),
        ("[]", 1),
        ("[1.2.3]", 1),
    ],
)
def test_syntax_errors_carry_a_position(text: str, position: int) -> None:
    with pytest.raises(ArmExpressionError) as raised:
        armexpr.parse(text)
    assert raised.value.position == position


def test_parse_rejects_text_without_brackets() -> None:
    with pytest.raises(ArmExpressionError):
        armexpr.parse("concat('a')")


def test_known_functions_are_lower_case_and_cover_the_shared_list() -> None:
    assert all(name == name.lower() for name in armexpr.KNOWN_FUNCTIONS)
    for name in ("resourceid", "reference", "copyindex", "uniquestring", "utcnow", "greaterorequals"):
        assert name in armexpr.KNOWN_FUNCTIONS
