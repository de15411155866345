"""Measured usage: raw samples and the hourly ledger that billing submits to Marketplace metering."""
