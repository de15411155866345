"""Task modules; importing this package registers every task on the Celery app."""

from workers.tasks import billing, drift, managed_apps, marketplace, monitoring, provisioning, system

__all__ = ["billing", "drift", "managed_apps", "marketplace", "monitoring", "provisioning", "system"]
