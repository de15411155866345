"""The web layer the JSON API and the portal share: sessions, errors, permissions, middlewares, browser paths."""
