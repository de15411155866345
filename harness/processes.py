"""Start and stop the control plane's own processes (api, worker, beat) for the sandbox and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    name: str
    arguments: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # Another interpreter (an installed release's virtualenv) and working folder, for the packaging tests.
    python: str = sys.executable
    cwd: Path | None = None

    def start(self, environment: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.python, "-m", "cli.main", *self.arguments],
            env=environment,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL for the whole group if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the process group: what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@dataclass
class ProcessGroup:
    """The API, workers and scheduler, with their logs in one folder."""

    log_dir: Path
    environment: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)
    python: str = sys.executable
    cwd: Path | None = None

    def add(self, name: str, *arguments: str) -> ManagedProcess:
        managed = ManagedProcess(name, list(arguments), self.log_dir / f"{name}.log", python=self.python, cwd=self.cwd)
        self.processes.append(managed)
        return managed

    def start_all(self) -> None:
        for managed in self.processes:
            managed.start(self.environment)

    def stop_all(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()


def wait_until_listening(base_url: str, timeout_seconds: float, group: ProcessGroup | None = None) -> None:
    """Poll /healthz until the process answers at all."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _raise_if_any_exited(group)
        try:
            if httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not answer /healthz within {timeout_seconds:.0f}s")


def _raise_if_any_exited(group: ProcessGroup | None) -> None:
    if group is None:
        return
    dead = [managed.name for managed in group.processes if not managed.alive()]
    if dead:
        raise RuntimeError(f"process(es) exited early: {', '.join(dead)}; see logs in {group.log_dir}")


def wait_until_ready(base_url: str, timeout_seconds: float, group: ProcessGroup | None = None) -> dict[str, object]:
    """Poll /readyz until it answers ready; raise with the last answer when time runs out."""
    deadline = time.monotonic() + timeout_seconds
    last: object = "no answer"
    while time.monotonic() < deadline:
        _raise_if_any_exited(group)
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=5)
            last = response.json()
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.2)
    raise RuntimeError(f"{base_url} not ready after {timeout_seconds:.0f}s: {last}")
