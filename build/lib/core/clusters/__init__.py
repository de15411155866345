"""Façade clusters: the desired spec (with a generation) and what ARM shows (observed)."""
