"""Who is calling: Entra ID token verification and the principal the rest of the code authorizes."""
