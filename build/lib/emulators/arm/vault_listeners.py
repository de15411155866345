"""One uvicorn event loop serving the Key Vault data plane on a loopback port per vault.

A server thread per vault would cost every vault a thread and an event loop that wakes ten times a second,
so a thousand vaults would keep the emulator busy doing nothing. Here one loop owns every listening socket:
`open_port()` binds a new port and adds it to the running loop; the app tells vaults apart by the port a
request arrived on.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from emulators.common.server import tls_server_config
from emulators.common.tls import EmulatorCertificateAuthority

LISTEN_BACKLOG = 512


class _MultiPortServer(uvicorn.Server):
    """A uvicorn server that can start listening on more sockets after it has started."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.loop = asyncio.get_running_loop()

    async def listen(self, sock: socket.socket) -> None:
        """Serve the app on one more bound, listening socket (uvicorn's own protocol and TLS settings)."""
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return protocol

        loop = asyncio.get_running_loop()
        server = await loop.create_server(create_protocol, sock=sock, ssl=config.ssl, backlog=LISTEN_BACKLOG)
        # uvicorn closes `servers` on shutdown, so added ports stop with the rest.
        self.servers.append(server)


class VaultListeners:
    """Starts lazily on the first port; `stop()` closes every port at once."""

    def __init__(self, app: Any, tls: EmulatorCertificateAuthority, host: str = "127.0.0.1") -> None:
        self.app = app
        self.tls = tls
        self.host = host
        self._lock = threading.Lock()
        self._server: _MultiPortServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    def open_port(self, timeout: float = 10.0) -> int:
        """Bind a free loopback port, serve the app on it, and return the port once it accepts connections."""
        server = self._running_server(timeout)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(LISTEN_BACKLOG)
        assert server.loop is not None
        # Not awaited: the caller may hold the ARM store lock that a vault request on that loop is waiting for.
        # The socket already listens, so connections queue in its backlog until the loop accepts them.
        asyncio.run_coroutine_threadsafe(server.listen(sock), server.loop)
        with self._lock:
            self._sockets.append(sock)
        return int(sock.getsockname()[1])

    def _running_server(self, timeout: float) -> _MultiPortServer:
        with self._lock:
            if self._server is None:
                config = tls_server_config(self.app, self.tls)
                self._server = _MultiPortServer(config)
                self._thread = threading.Thread(
                    target=self._server.run, kwargs={"sockets": []}, name="emulator-keyvaults", daemon=True
                )
                self._thread.start()
            server, thread = self._server, self._thread
        deadline = time.monotonic() + timeout
        while not server.started or server.loop is None:
            if time.monotonic() > deadline or thread is None or not thread.is_alive():
                raise RuntimeError("the Key Vault data plane server did not start")
            time.sleep(0.01)
        return server

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for its thread, and close the sockets."""
        with self._lock:
            server, thread, sockets = self._server, self._thread, list(self._sockets)
            self._server, self._thread, self._sockets = None, None, []
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        for sock in sockets:
            sock.close()
