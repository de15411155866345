"""Customer and publisher tenants (Entra ID directories)."""
