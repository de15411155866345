"""Façade-cluster metrics emulator: seedable, computed usage curves per cluster name, with a control API."""

from emulators.facade.emulator import FacadeMetricsEmulator

__all__ = ["FacadeMetricsEmulator"]
