"""Typed access to Azure: credentials through azure-identity, ARM through the azure-mgmt-* SDKs."""
