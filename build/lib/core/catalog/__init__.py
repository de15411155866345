"""The offer catalog: offers, plans (public and private), metered dimensions and included quantities."""
