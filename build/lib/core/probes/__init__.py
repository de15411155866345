"""The Blob API health probe of every ready cluster, and the samples it records for the SLOs."""
