"""The security suite runs against the same control plane and emulator drivers as the lifecycle tests."""

from tests.integration.lifecycle.conftest import active_subscription, browser, control_plane, database, emulators

__all__ = ["active_subscription", "browser", "control_plane", "database", "emulators"]
