"""The transactional outbox: work leaves the database only through rows committed with the state change."""
