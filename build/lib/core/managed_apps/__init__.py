"""Managed-application deployments of the offer: lifecycle notifications and the applications they describe."""
