"""The RSA keys that sign tokens, with Entra-style rollover.

Rollover has two steps, like Entra's: `rotate()` publishes a new key beside the current one and
signs with it from then on; `retire_inactive()` removes the keys that no longer sign. Between the
two, both keys are in the JWKS, so tokens signed before the rotation still verify.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa


def _base64url_integer(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One RSA key pair with its key id."""

    kid: str
    private_key: rsa.RSAPrivateKey
    created_at: float

    def public_jwk(self) -> dict[str, Any]:
        """The JWK entry published in the key set."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _base64url_integer(numbers.n),
            "e": _base64url_integer(numbers.e),
        }


class SigningKeyRing:
    """The published keys; exactly one of them signs new tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        first = self._generate()
        self._published: dict[str, SigningKey] = {first.kid: first}
        self._active_kid = first.kid

    @staticmethod
    def _generate() -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return SigningKey(kid=secrets.token_urlsafe(16), private_key=private_key, created_at=time.time())

    @property
    def active(self) -> SigningKey:
        """The key that signs new tokens."""
        with self._lock:
            return self._published[self._active_kid]

    def find(self, kid: str) -> SigningKey | None:
        """A published key by id; None when unknown or retired."""
        with self._lock:
            return self._published.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set document."""
        with self._lock:
            return {"keys": [key.public_jwk() for key in self._published.values()]}

    def rotate(self) -> SigningKey:
        """Publish a new key beside the old ones and sign with it from now on."""
        new_key = self._generate()
        with self._lock:
            self._published[new_key.kid] = new_key
            self._active_kid = new_key.kid
        return new_key

    def retire_inactive(self) -> list[str]:
        """Stop publishing every key but the signing one; returns the retired key ids."""
        with self._lock:
            retired = [kid for kid in self._published if kid != self._active_kid]
            for kid in retired:
                del self._published[kid]
        return retired

    def describe(self) -> dict[str, Any]:
        """Key ids for the control API."""
        with self._lock:
            return {"active_kid": self._active_kid, "published_kids": list(self._published)}
