"""Usage collection, the hourly ledger, metering submission, reconciliation and reports.

The flow, each step a beat task (workers/tasks/billing.py) and a CLI command (`controlplane billing`):

1. collector: every running cluster's metrics endpoint -> usage_samples (unique per cluster, dimension,
   instant; future-dated samples go to rejected_usage_samples with the reason).
2. ledger: closed hours (grace after their end) -> usage_ledger_entries, one per (resource, dimension,
   hour), in one INSERT ... SELECT; later samples for a closed hour -> usage_ledger_adjustments.
3. submission: pending entries -> Marketplace batchUsageEvent, committed as submitted before sending;
   every per-event answer recorded; hours out of the 24-hour window expire unsent.
4. settlement: entries whose answer was lost -> settled through usage retrieval, never re-sent blindly.
5. reconciliation: the accepted ledger against usage retrieval per resource, dimension, plan and day ->
   usage_reconciliation_reports and their differences (JSON API and CSV).
"""
