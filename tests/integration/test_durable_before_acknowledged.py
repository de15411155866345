"""A JSON API answer of 2xx means the request's unit of work is committed: the commit runs before the answer is sent.

FastAPI runs a yield dependency's exit code after the response has been sent unless the dependency is declared with
scope="function". The request session commits in that exit code, so without it a client could be told "accepted" for
a write that then failed to commit, and a client reading its own write right after the answer could miss it (the
intermittent `decision_reason is None` seen in the injection test under load was this).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.db import Database
from core.settings import Settings
from core.subscriptions.models import MarketplaceReconciliationReport as ReconciliationReport
from emulators.suite import EmulatorSuite
from harness.cluster_report import operator_headers
from tests.conftest import TEST_DATABASE, start_api

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        TEST_DATABASE != "postgresql", reason="a commit that fails on purpose needs PostgreSQL's deferred triggers"
    ),
]

REPORTS = ReconciliationReport.__tablename__


@pytest.fixture
def failing_report_commits(database: Database) -> Iterator[None]:
    """Every commit that inserted a reconciliation report fails, as a serialization failure at commit would."""
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'refused at commit' USING ERRCODE = '40001'; END $$"
            )
        )
        connection.execute(
            sa.text(
                f"CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON {REPORTS} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"
            )
        )
    try:
        yield
    finally:
        with database.engine.begin() as connection:
            connection.execute(sa.text(f"DROP TRIGGER refuse_at_commit ON {REPORTS}"))
            connection.execute(sa.text("DROP FUNCTION refuse_at_commit()"))


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, app_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path_factory.mktemp("durability-api-logs"), app_settings)
    yield base_url
    group.stop_all()


def test_a_write_that_fails_to_commit_is_never_acknowledged(
    failing_report_commits: None, database: Database, emulator_suite: EmulatorSuite, api_url: str
) -> None:
    answer = httpx.post(
        f"{api_url}/api/publisher/reconciliations", headers=operator_headers(emulator_suite.state()), timeout=30
    )

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "DatabaseUnavailable"
    assert answer.headers["Retry-After"].isdigit()
    with database.session() as session:
        assert session.exec(select(ReconciliationReport)).all() == []


def test_an_acknowledged_write_is_visible_to_the_next_read(
    database: Database, emulator_suite: EmulatorSuite, api_url: str
) -> None:
    headers = operator_headers(emulator_suite.state())
    for _ in range(20):
        answer = httpx.post(f"{api_url}/api/publisher/reconciliations", headers=headers, timeout=30)
        assert answer.status_code == 202, answer.text
        with database.session() as session:
            assert session.get(ReconciliationReport, answer.json()["id"]) is not None
