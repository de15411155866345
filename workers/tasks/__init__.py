"""Task modules; importing this package registers every task on the Celery app."""

from workers.tasks import system

__all__ = ["system"]
