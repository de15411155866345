"""Service-level objectives: per-cluster availability and latency from probe samples, control-plane timings."""
