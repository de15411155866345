"""The full sandbox scenario: workload, chaos and the invariants checked at the end."""
