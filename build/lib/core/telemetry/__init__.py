"""Operational telemetry: OpenTelemetry traces and Prometheus metrics shared by the API and the workers."""
