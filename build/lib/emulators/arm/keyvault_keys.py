"""Key material of the emulated Key Vaults: RSA keys with versions, rotation policies and wrap/unwrap."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALLOWED_KEY_SIZES = (2048, 3072, 4096)
DEFAULT_KEY_OPERATIONS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]


class KeyVaultError(Exception):
    """An error in Key Vault's shape: `{"error": {"code", "message", "innererror"?}}`."""

    def __init__(self, status: int, code: str, message: str, inner_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


def base64url(data: bytes) -> str:
    """Unpadded base64url, as JSON Web Keys and Key Vault values use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_base64url(text: str) -> bytes:
    """Decode unpadded base64url."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise KeyVaultError(400, "BadParameter", "The value is not valid base64url.") from None


def _integer_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _oaep(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm == "RSA-OAEP":
        # RSA-OAEP is defined with SHA-1 (RFC 7518); Key Vault offers it, so the emulator must too.
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    if algorithm == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if algorithm == "RSA1_5":
        return padding.PKCS1v15()
    raise KeyVaultError(400, "BadParameter", f"Algorithm '{algorithm}' is not supported; use RSA-OAEP or RSA-OAEP-256.")


@dataclass
class KeyVersion:
    """One version of a key, with its private RSA material.

    The material is generated when first used (a read of the public key, a wrap or an unwrap), not when the
    version is created: RSA generation takes up to a second of CPU, and a thousand clusters provisioned at
    once must not wait on the emulator's 2 cores for keys nobody has read yet. Key Vault makes its keys on
    its own hardware, so our control plane never pays this in Azure.
    """

    version: str
    key_type: str
    key_size: int
    operations: list[str]
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = field(default_factory=lambda: int(time.time()))
    _material: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    _material_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The RSA material, generated once on first use."""
        with self._material_lock:
            if self._material is None:
                self._material = rsa.generate_private_key(public_exponent=65537, key_size=self.key_size)
            return self._material

    def wrap(self, algorithm: str, plaintext: bytes) -> bytes:
        """Encrypt a data key with the public half."""
        return self.private_key.public_key().encrypt(plaintext, _oaep(algorithm))

    def unwrap(self, algorithm: str, ciphertext: bytes) -> bytes:
        """Decrypt a wrapped data key; a value wrapped under another key or algorithm fails."""
        try:
            return self.private_key.decrypt(ciphertext, _oaep(algorithm))
        except ValueError:
            raise KeyVaultError(
                400, "BadParameter", "The ciphertext could not be decrypted with this key and algorithm."
            ) from None


@dataclass
class VaultKey:
    """A named key: its versions (oldest first) and its rotation policy."""

    name: str
    versions: list[KeyVersion]
    rotation_policy: dict[str, Any]

    @property
    def latest(self) -> KeyVersion:
        """The current version."""
        return self.versions[-1]

    def version(self, version: str | None) -> KeyVersion:
        """A version by id, or the latest when None/empty."""
        if not version:
            return self.latest
        for item in self.versions:
            if item.version == version:
                return item
        raise KeyVaultError(
            404, "KeyNotFound", f"A key with (name/id) {self.name}/{version} was not found in this key vault."
        )


def new_key_version(
    key_type: str,
    key_size: int,
    operations: list[str] | None,
    attributes: dict[str, Any] | None,
    tags: dict[str, str] | None,
) -> KeyVersion:
    """A new version (its RSA material is generated on first use)."""
    if key_type not in ("RSA", "RSA-HSM"):
        raise KeyVaultError(
            400, "BadParameter", f"Key type '{key_type}' is not supported by this emulator; use RSA or RSA-HSM."
        )
    if key_size not in ALLOWED_KEY_SIZES:
        raise KeyVaultError(400, "BadParameter", f"The key size {key_size} is not valid; use 2048, 3072 or 4096.")
    attributes = attributes or {}
    return KeyVersion(
        version=secrets.token_hex(16),
        key_type=key_type,
        key_size=key_size,
        operations=list(operations or DEFAULT_KEY_OPERATIONS),
        enabled=bool(attributes.get("enabled", True)),
        not_before=attributes.get("nbf"),
        expires=attributes.get("exp"),
        tags=dict(tags or {}),
    )


def default_rotation_policy() -> dict[str, Any]:
    """The policy a new key gets: notify 30 days before expiry, like Key Vault's default."""
    now = int(time.time())
    return {
        "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
        "attributes": {"created": now, "updated": now},
    }


def key_bundle(vault_url: str, key: VaultKey, version: KeyVersion, recovery_level: str) -> dict[str, Any]:
    """The KeyBundle JSON of a version (public material only)."""
    public = version.private_key.public_key().public_numbers()
    attributes: dict[str, Any] = {
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.updated,
        "recoveryLevel": recovery_level,
        "recoverableDays": 90,
        "exportable": False,
    }
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    return {
        "key": {
            "kid": f"{vault_url}/keys/{key.name}/{version.version}",
            "kty": version.key_type,
            "key_ops": version.operations,
            "n": base64url(_integer_bytes(public.n)),
            "e": base64url(_integer_bytes(public.e)),
        },
        "attributes": attributes,
        "tags": version.tags,
    }
