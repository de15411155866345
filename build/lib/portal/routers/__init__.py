"""The portal routers: sign-in, customer admin pages and operator pages."""
