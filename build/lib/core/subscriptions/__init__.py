"""Marketplace SaaS subscriptions and the operations Marketplace sends about them."""
