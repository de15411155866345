"""Starts every emulator, each on its own loopback port, sharing one CA and one Entra ID.

The suite writes `emulators.json` into its state directory: the URLs, the CA bundle and the
publisher app registration that the control plane's settings need (see `app_environment`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from emulators.common.server import EmulatorServer
from emulators.common.tls import EmulatorCertificateAuthority

STATE_FILE = "emulators.json"


class EmulatorComponent(Protocol):
    """What the suite needs from an emulator: a name, an ASGI app, and a description."""

    name: str

    def asgi_app(self) -> Any:
        """The ASGI application to serve."""

    def on_started(self, base_url: str) -> None:
        """Told the https base URL once its server listens."""

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable facts for emulators.json (URLs, control API, credentials)."""


# Optional component hooks, looked up with getattr so components without them need nothing:
#   use_certificate_authority(tls) - called before asgi_app(), for components that open more servers later
#     (the ARM emulator serves each Key Vault's data plane on its own port, as vaults have their own hosts);
#   stop() - called when the suite stops, to close those servers.


@dataclass
class EmulatorSuiteConfig:
    """Options for a suite; ports of 0 mean any free port."""

    state_dir: Path
    seed: int = 0
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    catalog_path: Path | None = None
    publisher_webhook_url: str | None = None
    arm_deployment_seconds: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


class EmulatorSuite:
    """Owns the CA, the components and their servers."""

    def __init__(self, config: EmulatorSuiteConfig) -> None:
        self.config = config
        self.tls = EmulatorCertificateAuthority(config.state_dir / "tls")
        self.components: dict[str, EmulatorComponent] = {}
        self.servers: dict[str, EmulatorServer] = {}

    def add(self, component: EmulatorComponent) -> None:
        self.components[component.name] = component

    def start(self) -> dict[str, Any]:
        """Start every component's server, then write and return the state document."""
        for name, component in self.components.items():
            use_certificate_authority = getattr(component, "use_certificate_authority", None)
            if use_certificate_authority is not None:
                use_certificate_authority(self.tls)
            server = EmulatorServer(
                name, component.asgi_app(), self.tls, host=self.config.host, port=self.config.ports.get(name, 0)
            )
            component.on_started(server.start())
            self.servers[name] = server
        state = self.state()
        (self.config.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        return state

    def state(self) -> dict[str, Any]:
        return {
            "ca_bundle": str(self.tls.ca_path),
            **{name: component.describe() for name, component in self.components.items()},
        }

    def stop(self) -> None:
        for name, server in reversed(list(self.servers.items())):
            stop_component = getattr(self.components.get(name), "stop", None)
            if stop_component is not None:
                stop_component()
            server.stop()
        self.servers.clear()


def build_default_suite(config: EmulatorSuiteConfig) -> EmulatorSuite:
    """Entra ID first (the others verify its tokens), then Marketplace, ARM, the façade metrics, Log Analytics."""
    from emulators.arm import build_arm_components
    from emulators.entra import EntraEmulator
    from emulators.facade import FacadeMetricsEmulator
    from emulators.facade.sizing import arm_scale_set_lookup
    from emulators.loganalytics import LogAnalyticsEmulator
    from emulators.marketplace import MarketplaceEmulator

    suite = EmulatorSuite(config)
    entra = EntraEmulator.from_suite_config(config)
    suite.add(entra)
    suite.add(MarketplaceEmulator.from_suite_config(config, entra))
    arm_components = build_arm_components(config, entra)
    for component in arm_components:
        suite.add(component)
    suite.add(LogAnalyticsEmulator.from_suite_config(config, entra))
    # A façade cluster's usage is sized by the scale set ARM holds for it.
    scale_sets = arm_scale_set_lookup(arm_components[0].store)
    suite.add(FacadeMetricsEmulator.from_suite_config(config, scale_sets))
    return suite
