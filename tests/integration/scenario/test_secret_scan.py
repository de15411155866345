"""The log scan of the full scenario finds what it looks for (and nothing in clean logs)."""

from __future__ import annotations

from pathlib import Path

from cli.scenario.invariants import no_secrets_in_logs

CLEAN_LINE = '{"level": "info", "message": "operation reported", "operation_id": "3f8b2a61-9d4e"}\n'
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9jb250cm9sIn0.c2lnbmF0dXJlLXBhcnQtb25l"


def _log(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(CLEAN_LINE + text)
    return path


def test_clean_logs_pass(tmp_path: Path) -> None:
    result = no_secrets_in_logs([_log(tmp_path, "api-1.log", CLEAN_LINE)], ["client-secret-value"])
    assert result.passed, result.problems


def test_a_secret_value_a_bearer_token_and_a_private_key_are_each_found(tmp_path: Path) -> None:
    logs = [
        _log(tmp_path, "worker-1.log", '{"message": "token request", "client_secret": "client-secret-value"}\n'),
        _log(tmp_path, "api-2.log", f'{{"message": "auth", "header": "Bearer {TOKEN}"}}\n'),
        _log(tmp_path, "beat.log", "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"),
    ]
    result = no_secrets_in_logs(logs, ["client-secret-value"])
    assert not result.passed
    assert {problem.split(":")[0] for problem in result.problems} == {"worker-1.log", "api-2.log", "beat.log"}
    assert not any("client-secret-value" in problem for problem in result.problems)  # the report does not leak it
