"""Local stand-ins for the Azure services the control plane talks to.

Each emulator is a real HTTPS server on a loopback port; the app reaches it only through
settings (base URLs, authority, CA bundle), with the same SDKs it uses against Azure.
"""
