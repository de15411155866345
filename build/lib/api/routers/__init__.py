"""HTTP routers; each stays thin: parse, authorize, call a service."""
