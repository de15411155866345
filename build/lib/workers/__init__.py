"""Celery workers: the app, the outbox relay, the controllers and the beat schedule."""
