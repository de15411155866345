"""Benchmarks that print figures, run on demand (never part of the tests)."""
