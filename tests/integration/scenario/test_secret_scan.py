"""The secret scan of the full scenario finds what it looks for in logs, traces and database columns (and
nothing in clean ones)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit.models import AuditEvent
from core.db import Database
from core.inbox.models import InboundSource
from core.inbox.service import record_inbound_event
from harness.scenario.invariants import no_secrets_written_down
from tests.conftest import migrated_database

CLEAN_LINE = '{"level": "info", "message": "operation reported", "operation_id": "3f8b2a61-9d4e"}\n'
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9jb250cm9sIn0.c2lnbmF0dXJlLXBhcnQtb25l"


@pytest.fixture
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A database of its own: other tests store hostile strings on purpose."""
    with migrated_database(tmp_path_factory) as url:
        database = Database(url)
        yield database
        database.dispose()


def _log(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(CLEAN_LINE + text)
    return path


def test_clean_logs_and_database_pass(tmp_path: Path, database: Database) -> None:
    result = no_secrets_written_down([_log(tmp_path, "api-1.log", CLEAN_LINE)], database, ["client-secret-value"])
    assert result.passed, result.problems


def test_a_secret_value_a_bearer_token_and_a_private_key_are_each_found(tmp_path: Path, database: Database) -> None:
    logs = [
        _log(tmp_path, "worker-1.log", '{"message": "token request", "client_secret": "client-secret-value"}\n'),
        _log(tmp_path, "api-2.log", f'{{"message": "auth", "header": "Bearer {TOKEN}"}}\n'),
        _log(tmp_path, "beat.log", "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"),
        _log(tmp_path, "traces.jsonl", '{"attributes": {"http.url": "/marketplace/landing?token=purchase-token-1"}}\n'),
    ]
    result = no_secrets_written_down(logs, database, ["client-secret-value", "purchase-token-1"])
    assert not result.passed
    assert {problem.split(":")[0] for problem in result.problems} == {
        "worker-1.log",
        "api-2.log",
        "beat.log",
        "traces.jsonl",
    }
    assert not any("client-secret-value" in problem for problem in result.problems)  # the report does not leak it


def test_a_secret_in_any_text_or_json_column_is_found(tmp_path: Path, database: Database) -> None:
    # Written past the service functions (which would hash or redact them), as a careless future change might.
    with database.session() as session:
        record_inbound_event(session, InboundSource.MARKETPLACE_WEBHOOK, "op-1", {"purchaseToken": "purchase-1x"})
        session.add(
            AuditEvent(
                actor="test", action="test.scan", subject_type="t", subject_id="x", details={"h": f"Bearer {TOKEN}"}
            )
        )
    result = no_secrets_written_down([], database, ["purchase-1x"])
    assert not result.passed
    assert set(result.problems) == {
        "inbound_events.payload: holds a secret value (a setting's SecretStr, a purchase token, a code or state)",
        "audit_events.details: holds a bearer token",
    }
