"""What is never written down: secret values are replaced before a URL, a log line, a span or an audit record leaves.

One list of names decides what is secret: the OAuth and Marketplace query values (`token`, `code`, `state`,
`sig`, ...) and anything whose name says secret, password, token, key or signature. Their values become
`[REDACTED]` in URLs (query values and the password of the user info), in free text (`name=value` pairs,
bearer tokens and JWTs) and in structured details (by key). The rest of the text is kept so an operator
can still read which page, call or setting it was.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
# Names that are secret as a whole word wherever they appear (a query value, a field, a detail key).
SECRET_FIELD_NAMES = frozenset(
    {"sig", "nonce", "assertion", "client_assertion", "code_verifier", "key", "session", "session_state"}
)
# In a URL's query (and name=value text) the OAuth values too; as structured keys `code` and `state` are the
# domain's error codes and resource states, so they are not redacted there.
SECRET_NAMES = SECRET_FIELD_NAMES | {"token", "code", "state"}
# Fragments that make any name secret (purchaseToken, access_token, client_secret, db_password, x-api-key, ...).
SECRET_FRAGMENTS = ("token", "secret", "password", "passwd", "pwd", "signature", "apikey", "api_key", "api-key")
_SECRET_FRAGMENT_PATTERN = "|".join(re.escape(fragment) for fragment in SECRET_FRAGMENTS)
_SECRET_NAME_PATTERN = "|".join(re.escape(name) for name in sorted(SECRET_NAMES, key=len, reverse=True))
# name=value in free text (URLs inside log lines, exception messages, span attributes); the value ends at a separator.
_NAMED_VALUE = re.compile(
    rf"(?P<name>\b(?:{_SECRET_NAME_PATTERN})|[\w.-]*(?:{_SECRET_FRAGMENT_PATTERN})[\w.-]*)(?P<sep>=|%3D)"
    rf"(?P<value>[^&\s\"'<>,;)\]}}]+)",
    re.IGNORECASE,
)
# Real bearer tokens are long; "bearer token" in a sentence is not one.
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# user:password@ in any URL inside text.
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?=@)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for a query parameter whose value must never be written down."""
    lowered = name.lower()
    return lowered in SECRET_NAMES or any(fragment in lowered for fragment in SECRET_FRAGMENTS)


def is_secret_field(name: str) -> bool:
    """True for a field or detail key of structured data whose value must never be written down."""
    lowered = name.lower()
    return lowered in SECRET_FIELD_NAMES or any(fragment in lowered for fragment in SECRET_FRAGMENTS)


def redact_url(url: str) -> str:
    """The URL with secret query values and the user-info password replaced (relative URLs too)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        user_info, _, host = netloc.rpartition("@")
        if ":" in user_info:
            user_info = f"{user_info.split(':', 1)[0]}:{REDACTED}"
        netloc = f"{user_info}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, REDACTED if is_secret_name(name) else value) for name, value in pairs], safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text with secret name=value pairs, URL passwords, bearer tokens and JWTs replaced."""
    if not text:
        return text
    text = _NAMED_VALUE.sub(lambda match: f"{match['name']}{match['sep']}{REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda match: f"{match['prefix']}{REDACTED}", text)
    text = _BEARER.sub(lambda match: f"{match['scheme']}{REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def redact_value(value: Any) -> Any:
    """A JSON-like value with secret keys' values replaced and every string redacted as text."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_field(key) and item is not None else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def fingerprint(secret: str) -> str:
    """SHA-256 of a secret: what is kept where a replay must be recognised without the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()
