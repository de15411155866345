"""The FastAPI application: Marketplace landing page and webhook, notifications, the JSON API."""
