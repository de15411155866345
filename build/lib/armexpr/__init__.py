"""The ARM template expression language: parsing to a small syntax tree.

Standalone on purpose: the ARM emulator evaluates these trees and the template checker
inspects them, so neither depends on the other.
"""

from armexpr.errors import ArmExpressionError
from armexpr.functions import KNOWN_FUNCTIONS
from armexpr.nodes import (
    BooleanLiteral,
    FunctionCall,
    IndexAccess,
    Node,
    NumberLiteral,
    PropertyAccess,
    StringLiteral,
    walk,
)
from armexpr.parser import is_expression, parse, unescape_literal

__all__ = [
    "KNOWN_FUNCTIONS",
    "ArmExpressionError",
    "BooleanLiteral",
    "FunctionCall",
    "IndexAccess",
    "Node",
    "NumberLiteral",
    "PropertyAccess",
    "StringLiteral",
    "is_expression",
    "parse",
    "unescape_literal",
    "walk",
]
