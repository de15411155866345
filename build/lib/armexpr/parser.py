"""A recursive-descent parser for ARM template expressions (languageVersion 1.0).

Grammar, with whitespace allowed between tokens:
    template-expression := "[" expression "]"
    expression          := primary accessor*
    primary             := string | number | identifier [ "(" [ expression ("," expression)* ] ")" ]
    accessor            := "." identifier | "[" expression "]"
Bare `true`/`false` and the calls `true()`/`false()` both become BooleanLiteral.
"""

from __future__ import annotations

from armexpr.errors import ArmExpressionError
from armexpr.nodes import (
    BooleanLiteral,
    FunctionCall,
    IndexAccess,
    Node,
    NumberLiteral,
    PropertyAccess,
    StringLiteral,
)

_BOOLEAN_NAMES = {"true": True, "false": False}


def is_expression(value: str) -> bool:
    """True when a template string is an expression: `[...]`, except the `[[...` escape of a literal."""
    return len(value) >= 2 and value.startswith("[") and value.endswith("]") and not value.startswith("[[")


def unescape_literal(value: str) -> str:
    """The literal a template string stands for when it is not an expression (`[[x]` means `[x]`)."""
    if value.startswith("[[") and value.endswith("]"):
        return value[1:]
    return value


def parse(expression: str) -> Node:
    """Parse an expression given with its outer brackets, e.g. "[concat('a', parameters('b'))]"."""
    if not is_expression(expression):
        raise ArmExpressionError("an expression must be enclosed in '[' and ']'", 0)
    parser = _Parser(expression, 1, len(expression) - 1)
    node = parser.parse_expression()
    parser.skip_whitespace()
    if parser.position != parser.end:
        raise ArmExpressionError(f"unexpected character {expression[parser.position]!r}", parser.position)
    return node


class _Parser:
    """Reads `text[position:end]`; one instance per parse."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.position = start
        self.end = end

    def skip_whitespace(self) -> None:
        while self.position < self.end and self.text[self.position].isspace():
            self.position += 1

    def peek(self) -> str:
        self.skip_whitespace()
        return self.text[self.position] if self.position < self.end else ""

    def expect(self, character: str) -> None:
        if self.peek() != character:
            found = repr(self.text[self.position]) if self.position < self.end else "the end of the expression"
            raise ArmExpressionError(f"expected {character!r} but found {found}", self.position)
        self.position += 1

    def parse_expression(self) -> Node:
        node = self.parse_primary()
        while True:
            next_character = self.peek()
            if next_character == ".":
                self.position += 1
                self.skip_whitespace()
                node = PropertyAccess(node, self.read_identifier())
            elif next_character == "[":
                self.position += 1
                index = self.parse_expression()
                self.expect("]")
                node = IndexAccess(node, index)
            else:
                return node

    def parse_primary(self) -> Node:
        next_character = self.peek()
        if not next_character:
            raise ArmExpressionError("expected an expression but found the end of the expression", self.position)
        if next_character == "'":
            return StringLiteral(self.read_string())
        if next_character.isdigit() or next_character in "-+":
            return NumberLiteral(self.read_number())
        if next_character.isalpha() or next_character == "_":
            return self.parse_identifier_term()
        raise ArmExpressionError(f"unexpected character {next_character!r}", self.position)

    def parse_identifier_term(self) -> Node:
        start = self.position
        name = self.read_identifier()
        if self.peek() != "(":
            if name.lower() in _BOOLEAN_NAMES:
                return BooleanLiteral(_BOOLEAN_NAMES[name.lower()])
            raise ArmExpressionError(f"expected '(' after the function name {name!r}", self.position)
        self.position += 1
        arguments: list[Node] = []
        if self.peek() == ")":
            self.position += 1
        else:
            while True:
                arguments.append(self.parse_expression())
                if self.peek() == ",":
                    self.position += 1
                    continue
                self.expect(")")
                break
        if name.lower() in _BOOLEAN_NAMES:
            if arguments:
                raise ArmExpressionError(f"the function {name!r} takes no arguments", start)
            return BooleanLiteral(_BOOLEAN_NAMES[name.lower()])
        return FunctionCall(name, tuple(arguments))

    def read_identifier(self) -> str:
        start = self.position
        while self.position < self.end and (self.text[self.position].isalnum() or self.text[self.position] in "_$"):
            self.position += 1
        if start == self.position:
            raise ArmExpressionError("expected a name", start)
        return self.text[start : self.position]

    def read_string(self) -> str:
        start = self.position
        self.position += 1
        characters: list[str] = []
        while self.position < self.end:
            character = self.text[self.position]
            if character == "'":
                # A doubled quote is an escaped quote inside the string.
                if self.position + 1 < self.end and self.text[self.position + 1] == "'":
                    characters.append("'")
                    self.position += 2
                    continue
                self.position += 1
                return "".join(characters)
            characters.append(character)
            self.position += 1
        raise ArmExpressionError("unterminated string literal", start)

    def read_number(self) -> int | float:
        start = self.position
        if self.text[self.position] in "-+":
            self.position += 1
        while self.position < self.end and (self.text[self.position].isdigit() or self.text[self.position] == "."):
            self.position += 1
        literal = self.text[start : self.position]
        try:
            return float(literal) if "." in literal else int(literal)
        except ValueError:
            raise ArmExpressionError(f"invalid number {literal!r}", start) from None
