"""The web portal: server-rendered pages for customer admins and publisher operators, signed in with Entra ID."""
