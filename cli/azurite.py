"""Azurite (npm `azurite`, installed under tools/node) standing in for a façade cluster's Blob endpoint.

Started by the sandbox and the tests. Its account and key are generated at start (AZURITE_ACCOUNTS),
so no key is written anywhere in the repository.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from cli.processes import free_port
from core.settings import REPOSITORY_ROOT

AZURITE_BLOB = REPOSITORY_ROOT / "tools" / "node" / "node_modules" / ".bin" / "azurite-blob"


def azurite_available() -> bool:
    """Node and the installed package are both present (`npm ci` in tools/node)."""
    return AZURITE_BLOB.exists() and shutil.which("node") is not None


class Azurite:
    """One in-memory Azurite Blob service on a free loopback port, with a generated account; `stop()` ends it."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.account_name = f"facade{secrets.token_hex(4)}"
        self.account_key = base64.b64encode(secrets.token_bytes(64)).decode()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_fqdn(self) -> str:
        """What a cluster row holds as endpoint_fqdn; the probe's endpoint template adds scheme and account."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint_template(self) -> str:
        """CP_BLOB_PROBE_ENDPOINT_TEMPLATE for clusters served by this Azurite (it serves http, account in the path)."""
        return "http://{endpoint_fqdn}/" + self.account_name

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    def start(self, timeout_seconds: float = 30.0) -> None:
        """Spawn Azurite and wait until it answers HTTP."""
        environment = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account_name}:{self.account_key}"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # a fixed executable from the repository
                [
                    str(AZURITE_BLOB),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--loose",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                ],
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
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
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
