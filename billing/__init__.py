"""Usage collection, the hourly ledger, metering submission, reconciliation and reports."""
