"""Run one relay pass that dies (SIGKILL) right after publishing, before marking anything dispatched.

Started as a child process by the outbox tests, with CP_* settings in its environment.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from core.db import get_database
from core.outbox.models import OutboxMessage
from workers.celery_app import celery_app
from workers.relay import OutboxRelay, celery_publisher


def main() -> None:
    publish = celery_publisher(celery_app)

    def publish_then_die(messages: Sequence[OutboxMessage]) -> None:
        publish(messages)
        os.kill(os.getpid(), signal.SIGKILL)

    OutboxRelay(get_database(), publish_then_die).run_once()


if __name__ == "__main__":
    main()
