"""The bracket scan that refuses deeply nested JSON without parsing it."""

from __future__ import annotations

import json
import random

import pytest

from web.body_limits import has_non_json_constant, nesting_exceeds

LIMIT = 4
TRICKY_TEXT = ('"', "\\", "[", "]", "{", "}", '\\"', "\\\\", "x", " ")


def depth_of(document: object) -> int:
    """Nesting depth of a parsed JSON document (the reference the scan must agree with)."""
    if isinstance(document, dict):
        return 1 + max((depth_of(value) for value in document.values()), default=0)
    if isinstance(document, list):
        return 1 + max((depth_of(value) for value in document), default=0)
    return 0


def random_document(generator: random.Random, depth: int) -> object:
    """Nested lists and objects whose strings are full of quotes, backslashes and brackets."""
    text = "".join(generator.choice(TRICKY_TEXT) for _ in range(generator.randint(0, 8)))
    if depth == 0 or generator.random() < 0.2:
        return text
    children = [random_document(generator, depth - 1) for _ in range(generator.randint(0, 3))]
    if generator.random() < 0.5:
        return children
    return {f"{text}{index}": child for index, child in enumerate(children)}


@pytest.mark.parametrize(
    "document",
    [
        {"a": [1, 2, {"b": []}]},
        [[[[]]]],
        [[[[[]]]]],
        {"a": {"b": {"c": {"d": {}}}}},
        [[], [], [], [], [], [], [], []],
        {"text": "[[[[[[[[[[{{{{{{{{"},
        {"text": 'quote \\" then [[[[[[[[[[', "list": [[["x"]]]},
        {"text": "ends in a backslash \\", "deep": [[[[["]"]]]]]},
        ["[", "{", ["]]]]", [["}}}}"]]]],
    ],
)
def test_the_scan_agrees_with_the_parser(document: object) -> None:
    body = json.dumps(document).encode()
    assert nesting_exceeds(body, LIMIT) == (depth_of(json.loads(body)) > LIMIT)


def test_the_scan_agrees_with_the_parser_on_random_documents() -> None:
    generator = random.Random(20261128)
    for _ in range(500):
        document = random_document(generator, depth=8)
        body = json.dumps(document).encode()
        assert nesting_exceeds(body, LIMIT) == (depth_of(document) > LIMIT), body


def test_a_body_with_few_brackets_is_not_scanned_at_all() -> None:
    # Four openers cannot nest five deep, whatever else the body holds.
    assert not nesting_exceeds(b'{"a": "' + b"]" * 10_000 + b'", "b": [[[]]]}', LIMIT)


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b"[" * 1_000_000, True),  # never closed: a parser would recurse a million levels before noticing
        (b"]" * 1_000_000, False),
        (b"[[[[" + b'"unterminated [[[[[[[[', False),
        (b"[[[[[[" + b'"\\"' * 100_000 + b"\\", True),  # escaped quotes to the end, then a lone backslash
        (b'"\\"' * 100_000 + b"[[[[[[", False),  # all of it inside one unterminated string
        (b"[{[{[}]}]", True),  # mismatched kinds still nest five deep
    ],
    ids=["only openers", "only closers", "unterminated string", "escaped quotes", "inside a string", "mismatched"],
)
def test_malformed_bodies_count_what_a_parser_would_recurse_into(body: bytes, too_deep: bool) -> None:
    assert nesting_exceeds(body, LIMIT) is too_deep


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b'{"a": NaN}', True),
        (b"[Infinity]", True),
        (b'{"a": -Infinity}', True),
        (b'{"a": "NaN", "b": "Infinity"}', False),
        (b'{"a": "say \\"NaN\\" twice"}', False),
        (b'{"a": 1.5e3, "b": null}', False),
    ],
)
def test_nan_and_infinity_count_only_outside_strings(body: bytes, refused: bool) -> None:
    assert has_non_json_constant(body) is refused
