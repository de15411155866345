"""A redis-server of the scenario's own, on a free loopback port, that the scenario (and chaos) may restart.

The machine's shared Redis is never stopped; a broker restart is exercised on this private one. Append-only
persistence keeps queued messages across a restart, as a production broker would.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from harness.processes import free_port


def redis_server_available() -> bool:
    """True when a redis-server binary is on PATH."""
    return shutil.which("redis-server") is not None


class PrivateRedis:
    """One redis-server process; the port is chosen once, so `url` stays valid across restarts."""

    def __init__(self, data_dir: Path, *, start_timeout_seconds: float = 15.0) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.start_timeout_seconds = start_timeout_seconds
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL (database 0 of this private server)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_until_answering()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the server: a broker crash (writes not yet in the append-only file are lost)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self, *, crash: bool = False, downtime_seconds: float = 0.0) -> None:
        """Stop (or, with `crash`, SIGKILL), stay down for `downtime_seconds`, start again on the same port and data."""
        if crash:
            self.kill()
        else:
            self.stop()
        if downtime_seconds > 0:
            time.sleep(downtime_seconds)
        self.start()

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process is not None and self.process.poll() is None

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout_seconds
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {self.start_timeout_seconds:.0f}s")
