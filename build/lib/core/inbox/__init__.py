"""Inbound events (webhooks, notifications): committed, unique on their natural id, before the 2xx."""
