"""Refuse oversized and deeply nested request bodies, NUL, NaN and Infinity, before any handler or parser sees them.

A declared Content-Length above the limit is refused without reading a byte; a chunked body is counted as
it streams and refused as soon as it crosses the limit. A body within the limit is handed on unchanged.
Nesting is checked by counting brackets outside JSON strings, never by parsing: Python's parser would hit
its recursion limit (a 500) on a body like `[[[[...` long before the size limit. NUL characters (raw, as
JSON's \\u0000 or a URL's %00) are refused as bad input because PostgreSQL cannot store them in text: they
would otherwise fail as a 500 at the database. (A JSON string holding the six characters `\\u0000` is
refused too; no field of this API has a use for them.)
"""

from __future__ import annotations

import json
import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import BadRequest, ControlPlaneError, PayloadTooLarge
from web.errors import error_body, http_status

logger = logging.getLogger(__name__)
# Form bodies are not JSON (brackets there are data); every other body is scanned, because the webhook
# parses its body as JSON whatever Content-Type the caller declared.
FORM_MEDIA_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")
# A JSON string, escapes included; an unterminated one runs to the end. Possessive, so never backtracking.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_ESCAPED_QUOTE = b'\\"'
# Keep only brackets, and read braces as square brackets: nesting is the same whichever kind nests.
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_BRACES_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_OPEN = ord("[")
_FORM_NUL = b"%00"
_JSON_NUL = b"\\u0000"


def _outside_strings(body: bytes) -> bytes:
    """The body without its JSON strings."""
    if _ESCAPED_QUOTE not in body:
        # Every quote delimits a string: a split in C is far cheaper than the regular expression.
        return b"".join(body.split(b'"')[0::2])
    return _JSON_STRING.sub(b"", body)


def has_non_json_constant(body: bytes) -> bool:
    """True when NaN or Infinity stands outside a JSON string: Python's parser reads them, JSON has no such
    values, and PostgreSQL's json columns refuse them (a 500 at the database otherwise)."""
    # The usual body has neither word anywhere: this check stops here, at C speed.
    if b"NaN" not in body and b"Infinity" not in body:
        return False
    outside = _outside_strings(body)
    return b"NaN" in outside or b"Infinity" in outside


def nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """True when JSON arrays/objects in `body` nest deeper than `max_depth` (strings are skipped).

    Malformed bodies count by how deep a parser would recurse before noticing (each opener not yet closed).
    """
    # Fewer opening brackets than the limit cannot nest beyond it: the usual body stops here, at C speed.
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    brackets = _outside_strings(body).translate(_BRACES_AS_SQUARE, _NOT_A_BRACKET)
    # Peel the innermost empty pairs, one level per pass, in C: a balanced body within the limit empties.
    # A run of more openers than the limit, or a body that stops shrinking, is walked exactly below.
    too_many_openers = b"[" * (max_depth + 1)
    remaining = brackets
    for _ in range(max_depth):
        if too_many_openers in remaining:
            break
        peeled = remaining.replace(b"[]", b"")
        if not peeled:
            return False
        if len(peeled) == len(remaining):
            break
        remaining = peeled
    depth = 0
    for byte in brackets:
        if byte == _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


class BodyLimitMiddleware:
    """413 for a body above `max_bytes`; 400 for JSON nested deeper than `max_depth` and for NUL characters.

    Every refusal is in the API's error shape.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or _FORM_NUL in scope["query_string"]:
            await self._refuse(scope, send, BadRequest("NUL characters are not accepted in the URL"))
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all: nothing to check
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, self._too_large(declared=int(declared)))
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before the body was complete; there is no one to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(scope, send, self._too_large(declared=None))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        escaped_nul = _FORM_NUL if media_type == FORM_MEDIA_TYPES[0] else _JSON_NUL
        if b"\x00" in body or escaped_nul in body:
            await self._refuse(scope, send, BadRequest("NUL characters are not accepted in the request body"))
            return
        if media_type not in FORM_MEDIA_TYPES and has_non_json_constant(body):
            refusal = BadRequest("NaN and Infinity are not JSON values; the body is not valid JSON")
            await self._refuse(scope, send, refusal)
            return
        if media_type not in FORM_MEDIA_TYPES and nesting_exceeds(body, self.max_depth):
            refusal = BadRequest(
                f"the JSON body nests deeper than {self.max_depth} levels",
                details={"max_depth": self.max_depth},
            )
            await self._refuse(scope, send, refusal)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, *, declared: int | None) -> PayloadTooLarge:
        details: dict[str, int] = {"max_bytes": self.max_bytes}
        if declared is not None:
            details["content_length"] = declared
        return PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes", details=details)

    async def _refuse(self, scope: Scope, send: Send, error: ControlPlaneError) -> None:
        logger.warning(
            "request body refused", extra={"path": scope["path"], "code": error.code, "status": http_status(error)}
        )
        payload = json.dumps(error_body(error.code, error.message, error.details)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": http_status(error),
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    # The unread rest of a refused body leaves the connection unusable for another request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the buffered body once, then waits on the client as before (disconnects)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
