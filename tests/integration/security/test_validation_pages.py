"""A request the framework cannot read answers a person with a page in words, and an API client with JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from core.db import Database
from core.settings import Settings
from server.app import create_app

TOO_LONG = "a" * 65  # the landing page's subscription parameter is at most 64 characters
JARGON = ("String should", "Input should", "Value error", "query.", "pattern")


@pytest.fixture(scope="module")
def client(base_settings: Settings, database_url: str) -> Iterator[TestClient]:
    database = Database(database_url)
    # In process, without the app's lifespan: these answers need no worker, spool or emulator.
    yield TestClient(create_app(base_settings, database), raise_server_exceptions=False)
    database.dispose()


def test_a_browser_gets_the_branded_page_naming_the_value_in_words(client: TestClient) -> None:
    answer = client.get(
        "/marketplace/landing", params={"token": "t", "subscription": TOO_LONG}, headers={"accept": "text/html"}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert "Some of what was sent could not be used (subscription)" in answer.text
    assert answer.headers["x-ms-correlationid"] in answer.text
    assert not any(words in answer.text for words in JARGON)


def test_an_api_client_keeps_the_json_problems(client: TestClient) -> None:
    answer = client.get("/marketplace/landing", params={"token": "t", "subscription": TOO_LONG})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"]["code"] == "ValidationFailed"
    assert [problem["field"] for problem in body["error"]["details"]["problems"]] == ["query.subscription"]
