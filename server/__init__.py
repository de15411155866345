"""The application factory: assembles the JSON API and the portal on the shared web layer."""
