"""The landing tests run against the same control plane and emulator drivers as the lifecycle tests."""

from tests.integration.lifecycle.conftest import browser, control_plane, database, emulators

__all__ = ["browser", "control_plane", "database", "emulators"]
