"""Runs an ASGI app under uvicorn with TLS on a loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from emulators.common.tls import EmulatorCertificateAuthority


def tls_server_config(app: Any, tls: EmulatorCertificateAuthority) -> uvicorn.Config:
    """The uvicorn configuration every emulator server uses: HTTPS with the emulators' certificate, quiet logs."""
    return uvicorn.Config(
        app,
        log_level="warning",
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        lifespan="off",
        timeout_keep_alive=30,
        # A TLS client that keeps an idle connection open would otherwise hold shutdown until the join times out.
        timeout_graceful_shutdown=2,
    )


class EmulatorServer:
    """One emulator on one loopback port; `start()` returns its https base URL."""

    def __init__(
        self,
        name: str,
        app: Any,
        tls: EmulatorCertificateAuthority,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.app = app
        self.tls = tls
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(f"emulator {self.name} is not started")
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        """Bind the port, serve in a daemon thread, and wait until it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(512)
        self._socket = sock
        config = tls_server_config(self.app, self.tls)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"emulator-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"emulator {self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
