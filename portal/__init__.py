"""The server-rendered portal for customer admins and publisher operators."""
