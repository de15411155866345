"""Export of audit events and control-plane logs to Azure Monitor (Logs Ingestion API -> Log Analytics)."""
