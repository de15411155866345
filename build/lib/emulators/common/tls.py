"""A certificate authority generated at start, so emulators serve HTTPS like Azure does.

azure-core refuses to send bearer tokens over plain http and the Key Vault SDK demands TLS,
so every emulator serves HTTPS; clients trust the CA through settings (a CA bundle path).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class EmulatorCertificateAuthority:
    """One CA per emulator suite; its PEM is written to `ca_path` for clients to trust."""

    directory: Path
    _ca: trustme.CA = field(default_factory=trustme.CA, init=False)
    _server_cert: trustme.LeafCert | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._server_cert = self._ca.issue_cert(*SERVER_NAMES)
        self._server_cert.cert_chain_pems[0].write_to_path(str(self.cert_path))
        for pem in self._server_cert.cert_chain_pems[1:]:
            pem.write_to_path(str(self.cert_path), append=True)
        self._server_cert.private_key_pem.write_to_path(str(self.key_path))
        self.key_path.chmod(0o600)

    @property
    def ca_path(self) -> Path:
        """PEM bundle clients pass as `verify=` / `connection_verify=`."""
        return self.directory / "emulator-ca.pem"

    @property
    def cert_path(self) -> Path:
        return self.directory / "emulator-server.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "emulator-server.key"

    def server_ssl_context(self) -> ssl.SSLContext:
        """An SSL context for the emulator servers (loopback names only)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context
