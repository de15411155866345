"""Log Analytics emulator: the Logs Ingestion API of a data collection endpoint, storing rows for tests."""

from emulators.loganalytics.emulator import MONITOR_AUDIENCE, LogAnalyticsEmulator

__all__ = ["MONITOR_AUDIENCE", "LogAnalyticsEmulator"]
