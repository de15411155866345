"""Shared plumbing for the emulators: TLS, the threaded server runner and fault injection."""
