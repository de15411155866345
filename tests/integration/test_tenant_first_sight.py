"""Two first sign-ins of one tenant at once: both succeed and agree on one tenant row (no unique violation)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.db import Database
from core.tenants.models import Tenant
from core.tenants.service import get_or_create_tenant

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(60)]


def test_a_second_first_sight_waiting_on_the_first_gets_the_same_tenant(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the interleaving is observed through pg_stat_activity")
    entra_tenant_id = str(uuid.uuid4())
    first_inserted = threading.Event()

    def second_sight() -> str:
        first_inserted.wait(timeout=30)
        with database.session() as session:
            return get_or_create_tenant(session, entra_tenant_id).id

    with ThreadPoolExecutor(max_workers=1) as pool, database.session() as first:
        first_id = get_or_create_tenant(first, entra_tenant_id).id
        first_inserted.set()
        # The second saw no row and now waits on our uncommitted key: the race the unique key must settle.
        second = pool.submit(second_sight)
        _wait_until_a_backend_waits_on_a_lock(database)
        first.commit()
        second_id = second.result(timeout=30)

    assert second_id == first_id
    with database.session() as session:
        assert len(session.exec(select(Tenant).where(Tenant.entra_tenant_id == entra_tenant_id)).all()) == 1


def _wait_until_a_backend_waits_on_a_lock(database: Database) -> None:
    deadline = time.monotonic() + 30
    with database.engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database() AND query ILIKE '%tenants%'"
                )
            ).scalar_one()
            if waiting:
                return
            # pg_stat_activity is a snapshot kept until the transaction ends: end it, or the wait is never seen.
            connection.rollback()
            time.sleep(0.05)
    raise AssertionError("the second sign-in never waited on the first one's row")
