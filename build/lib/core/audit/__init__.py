"""The audit trail: who did what to which subject, before and after, with the correlation id."""
