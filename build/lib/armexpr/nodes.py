"""The syntax tree of an ARM template expression."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """Base class of every expression node."""


@dataclass(frozen=True)
class FunctionCall(Node):
    """`name(arg, ...)`; `name` keeps the spelling of the template (ARM compares it case-insensitively)."""

    name: str
    arguments: tuple[Node, ...] = ()


@dataclass(frozen=True)
class StringLiteral(Node):
    """A single-quoted string, with `''` already unescaped to `'`."""

    value: str


@dataclass(frozen=True)
class NumberLiteral(Node):
    """An integer (or, leniently, a decimal) literal."""

    value: int | float


@dataclass(frozen=True)
class BooleanLiteral(Node):
    """`true` / `false`, written bare or as the functions `true()` / `false()`."""

    value: bool


@dataclass(frozen=True)
class PropertyAccess(Node):
    """`target.name`."""

    target: Node
    name: str


@dataclass(frozen=True)
class IndexAccess(Node):
    """`target[index]`; the index is an expression (a number for arrays, a string for objects)."""

    target: Node
    index: Node


def walk(node: Node) -> Iterator[Node]:
    """Yield `node` and every node below it, depth first, parents before children, left to right."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        children: list[Node]
        if isinstance(current, FunctionCall):
            children = list(current.arguments)
        elif isinstance(current, PropertyAccess):
            children = [current.target]
        elif isinstance(current, IndexAccess):
            children = [current.target, current.index]
        else:
            children = []
        stack.extend(reversed(children))
