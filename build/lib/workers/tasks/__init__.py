"""Task modules; importing this package registers every task on the Celery app."""

from workers.tasks import billing, managed_apps, marketplace, monitoring, provisioning, system

__all__ = ["billing", "managed_apps", "marketplace", "monitoring", "provisioning", "system"]
