"""Audit events and spooled logs reach the emulated Log Analytics: nothing lost across an outage, nothing twice."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from core.audit.service import record_audit_event
from core.azure.credentials import CredentialFactory
from core.db import Database
from core.monitoring.export_service import export_pending, pending_export_count
from core.monitoring.ingestion_client import LogAnalyticsIngestion
from core.monitoring.log_spool import DatabaseLogSpoolHandler
from core.monitoring.models import LogRecord, MonitorExportMark
from core.settings import Settings
from emulators.suite import EmulatorSuite
from server.app import create_app
from tests.conftest import migrated_database

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def log_analytics(
    emulator_suite: EmulatorSuite, operations_settings: Settings
) -> Iterator[tuple[httpx.Client, Settings]]:
    """A client of the emulator (rows and faults emptied before and after) and the app's settings."""
    state = emulator_suite.state()["loganalytics"]
    control = httpx.Client(base_url=state["endpoint"], verify=str(operations_settings.ca_bundle), timeout=10)
    control.delete("/_emulator/loganalytics/rows").raise_for_status()
    control.delete("/_emulator/faults").raise_for_status()
    yield control, operations_settings
    control.delete("/_emulator/faults").raise_for_status()
    control.close()


@pytest.fixture
def export_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A database of the test's own: the export sends every unmarked row, and the session's API and worker processes
    spool their own warnings into the shared one at any moment."""
    with migrated_database(tmp_path_factory) as url:
        database = Database(url)
        yield database
        database.dispose()


def stored_ids(control: httpx.Client, stream: str) -> list[str]:
    response = control.get("/_emulator/loganalytics/rows", params={"stream": stream})
    response.raise_for_status()
    return [row["RecordId"] for row in response.json()]


def test_outage_loses_nothing_and_recovery_sends_each_row_once(
    export_database: Database, log_analytics: tuple[httpx.Client, Settings]
) -> None:
    control, settings = log_analytics
    with export_database.session() as session:
        events = [
            record_audit_event(
                session, actor="test", action="operations.test_event", subject_type="test", subject_id=str(index)
            )
            for index in range(7)
        ]
        session.add(LogRecord(level="warning", logger_name="tests", message="spooled warning", process="test-1"))
    audit_ids = [event.id for event in events]  # assigned when the unit of work flushed on commit
    ingestion = LogAnalyticsIngestion(settings, CredentialFactory(settings).publisher)
    streams = {"audit_stream": settings.monitor_audit_stream, "log_stream": settings.monitor_log_stream}
    try:
        # An outage longer than the client's retries: every upload answers 503.
        control.post(
            "/_emulator/faults", json={"kind": "status", "status": 503, "path_pattern": "/dataCollectionRules/"}
        )
        failed = export_pending(export_database, ingestion, batch_size=3, **streams)
        assert failed.error is not None
        assert stored_ids(control, settings.monitor_audit_stream) == []
        with export_database.session() as session:
            assert session.exec(select(MonitorExportMark)).all() == []
            assert pending_export_count(session) == 8

        # Recovery: the spool drains in batches, every row exactly once.
        control.delete("/_emulator/faults").raise_for_status()
        recovered = export_pending(export_database, ingestion, batch_size=3, **streams)
        assert recovered.error is None
        assert recovered.sent == {settings.monitor_audit_stream: 7, settings.monitor_log_stream: 1}

        # A later pass finds nothing left to send.
        again = export_pending(export_database, ingestion, batch_size=3, **streams)
        assert again.sent == {settings.monitor_audit_stream: 0, settings.monitor_log_stream: 0}
    finally:
        ingestion.close()

    audit_rows = stored_ids(control, settings.monitor_audit_stream)
    assert audit_rows == [f"audit-{audit_id}" for audit_id in audit_ids]
    log_rows = control.get("/_emulator/loganalytics/rows", params={"stream": settings.monitor_log_stream}).json()
    assert [row["Message"] for row in log_rows] == ["spooled warning"]
    uploads = control.get("/_emulator/loganalytics/uploads").json()
    assert [upload["rows"] for upload in uploads] == [3, 3, 1, 1]
    with export_database.session() as session:
        assert pending_export_count(session) == 0


def test_a_short_outage_is_ridden_out_by_the_client_retries(
    export_database: Database, log_analytics: tuple[httpx.Client, Settings]
) -> None:
    control, settings = log_analytics
    with export_database.session() as session:
        record_audit_event(session, actor="test", action="operations.test_event", subject_type="test", subject_id="x")
    control.post(
        "/_emulator/faults",
        json={"kind": "status", "status": 503, "path_pattern": "/dataCollectionRules/", "count": 2},
    ).raise_for_status()
    ingestion = LogAnalyticsIngestion(settings, CredentialFactory(settings).publisher)
    try:
        report = export_pending(
            export_database,
            ingestion,
            audit_stream=settings.monitor_audit_stream,
            log_stream=settings.monitor_log_stream,
            batch_size=50,
        )
    finally:
        ingestion.close()
    assert report.error is None
    assert len(stored_ids(control, settings.monitor_audit_stream)) == 1
    assert [rule["hits"] for rule in control.get("/_emulator/faults").json()] == [2]


def test_ingestion_refuses_a_missing_token_and_an_unknown_rule(
    emulator_suite: EmulatorSuite, operations_settings: Settings
) -> None:
    state = emulator_suite.state()["loganalytics"]
    with httpx.Client(base_url=state["endpoint"], verify=str(operations_settings.ca_bundle), timeout=10) as client:
        path = f"/dataCollectionRules/{state['dcr_immutable_id']}/streams/{state['streams'][0]}"
        unauthenticated = client.post(path, params={"api-version": "2023-01-01"}, json=[{"a": 1}])
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] == "InvalidAuthenticationToken"
        entra = emulator_suite.components["entra"]
        token = entra.mint_access_token(  # type: ignore[attr-defined]
            tenant_id=entra.publisher_tenant.id,  # type: ignore[attr-defined]
            audience="https://monitor.azure.com",
            client_id=operations_settings.publisher_client_id,
        )
        headers = {"Authorization": f"Bearer {token}"}
        unknown_rule = client.post(
            "/dataCollectionRules/dcr-unknown/streams/Custom-X",
            params={"api-version": "2023-01-01"},
            json=[],
            headers=headers,
        )
        assert unknown_rule.status_code == 404
        accepted = client.post(path, params={"api-version": "2023-01-01"}, json=[{"a": 1}], headers=headers)
        assert accepted.status_code == 204


def test_log_spool_keeps_warnings_and_skips_lower_levels(database: Database) -> None:
    logger = logging.getLogger("tests.operations.spool")
    handler = DatabaseLogSpoolHandler(database, "WARNING", "test")
    logger.addHandler(handler)
    try:
        logger.info("not spooled")
        logger.warning("disk nearly full", extra={"cluster_id": "c-1"})
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    with database.session() as session:
        records = session.exec(select(LogRecord).where(LogRecord.logger_name == "tests.operations.spool")).all()
    assert [(record.level, record.message, record.fields) for record in records] == [
        ("warning", "disk nearly full", {"cluster_id": "c-1"})
    ]


def spool_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, DatabaseLogSpoolHandler)]


def test_the_api_spools_logs_while_it_serves_and_building_it_leaves_logging_alone(
    database: Database, operations_settings: Settings
) -> None:
    # Building the app (as the route-table tests do) once attached a spool for the life of the test process; its
    # late flushes then added rows to another test's spool count.
    assert operations_settings.monitor_ingestion_endpoint
    app = create_app(operations_settings, database)
    assert spool_handlers() == []
    with TestClient(app):
        assert len(spool_handlers()) == 1
        logging.getLogger("tests.operations.api_spool").warning("served while the app ran")
    assert spool_handlers() == []
    with database.session() as session:
        records = session.exec(select(LogRecord).where(LogRecord.logger_name == "tests.operations.api_spool")).all()
    assert [(record.message, record.process.startswith("api-")) for record in records] == [
        ("served while the app ran", True)
    ]
