"""Azurite (npm `azurite`, installed under tools/node) standing in for a façade cluster's Blob endpoint.

Started by the sandbox and the tests. Its account and key are generated at start (AZURITE_ACCOUNTS),
so no key is written anywhere in the repository. Given a server certificate it serves HTTPS and accepts
OAuth bearer tokens (`--oauth basic`: Azurite checks lifetime, audience and an Azure-shaped issuer, not
the signature); over plain http it takes shared key and SAS only.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.checkout import REPOSITORY_ROOT
from harness.processes import free_port

AZURITE_BLOB = REPOSITORY_ROOT / "tools" / "node" / "node_modules" / ".bin" / "azurite-blob"


def azurite_available() -> bool:
    """Node and the installed package are both present (`npm ci` in tools/node)."""
    return AZURITE_BLOB.exists() and shutil.which("node") is not None


@dataclass(frozen=True)
class AzuriteTls:
    """A self-signed loopback certificate and its key; the certificate is also what clients trust.

    Self-signed because Azurite fetches copy-from-URL sources from itself trusting only the certificate
    it presents: a leaf issued by a separate CA fails that check, a self-signed one passes.
    """

    cert_path: Path
    key_path: Path

    @property
    def ca_path(self) -> Path:
        """What clients pass as `verify=` / `connection_verify=`."""
        return self.cert_path

    @classmethod
    def generate(cls, directory: Path) -> AzuriteTls:
        """Write a fresh key and a one-day certificate for 127.0.0.1 and localhost into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azurite loopback")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        tls = cls(cert_path=directory / "azurite.pem", key_path=directory / "azurite.key")
        tls.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        tls.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        tls.key_path.chmod(0o600)
        return tls


class Azurite:
    """One in-memory Azurite Blob service on a free loopback port, with a generated account; `stop()` ends it."""

    def __init__(self, log_path: Path, port: int | None = None, tls: AzuriteTls | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.tls = tls
        self.account_name = f"facade{secrets.token_hex(4)}"
        self.account_key = base64.b64encode(secrets.token_bytes(64)).decode()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_fqdn(self) -> str:
        """What a cluster row holds as endpoint_fqdn; the probe's endpoint template adds scheme and account."""
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        """https when started with a certificate, else http."""
        return "https" if self.tls is not None else "http"

    @property
    def endpoint_template(self) -> str:
        """CP_BLOB_PROBE_ENDPOINT_TEMPLATE for clusters served by this Azurite (account name in the path)."""
        return f"{self.scheme}://{{endpoint_fqdn}}/{self.account_name}"

    @property
    def account_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{self.account_name}"

    def start(self, timeout_seconds: float = 30.0) -> None:
        """Spawn Azurite and wait until it answers HTTP(S)."""
        environment = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account_name}:{self.account_key}"}
        arguments = [
            str(AZURITE_BLOB),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--inMemoryPersistence",
            "--loose",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]
        verify: str | bool = True
        if self.tls is not None:
            arguments += ["--cert", str(self.tls.cert_path), "--key", str(self.tls.key_path), "--oauth", "basic"]
            verify = str(self.tls.ca_path)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # a fixed executable from the repository
                arguments,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"azurite exited; see {self.log_path}")
            try:
                # Any HTTP answer (400 for a bare GET) means the server listens.
                httpx.get(f"{self.scheme}://127.0.0.1:{self.port}/", timeout=1, verify=verify)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"azurite did not listen on port {self.port} in {timeout_seconds} s")

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None
