"""Typed clients for Azure Marketplace: SaaS fulfilment API v2 and the metering service."""
