"""Schemathesis over the browser-facing routes (portal and landing pages) that /openapi.json leaves out.

The HTML routes are not part of the published API, so their schema is generated here from the same routers with
every route included. Each operation is fuzzed with positive and negative data (odd path and query values:
non-ASCII, huge numbers, full-width digits) as a signed-in publisher operator and as a signed-in customer admin
whose tenant owns none of the seeded rows. The check is the one that matters for pages: never a 5xx.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from core.db import Database
from core.models import metadata
from core.settings import Settings
from emulators.suite import EmulatorSuite
from harness.marketplace_demo import CONTOSO_ADMIN
from harness.processes import ProcessGroup, free_port, wait_until_listening
from portal.routers import customer, operator, purchase, sign_in
from tests.conftest import CATALOG_TABLES
from tests.integration.fuzzing.seed import SeededData, seed
from tests.integration.fuzzing.test_openapi_fuzz import FUZZ_EXAMPLES, FUZZ_SEED, Operation, fuzz_settings
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.visitors import OPERATOR_USERNAME, PortalVisitor, sign_in_to_portal

pytestmark = [pytest.mark.timeout(900)]


def html_schema_document() -> dict[str, Any]:
    """An OpenAPI document of every browser-facing route, including those kept out of /openapi.json."""
    routes = []
    for router in (purchase.router, sign_in.router, customer.router, operator.router):
        for route in router.routes:
            if isinstance(route, APIRoute):
                included = copy.copy(route)
                included.include_in_schema = True
                routes.append(included)
    return get_openapi(title="browser-facing routes", version="1", routes=routes)


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[SeededData]:
    database = Database(database_url)
    data = seed(database, customer_entra_tenant_id=str(uuid.uuid4()), other_entra_tenant_id=str(uuid.uuid4()))
    yield data
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name not in CATALOG_TABLES:
                connection.execute(table.delete())
    database.dispose()


@pytest.fixture(scope="module")
def emulators(emulator_suite: EmulatorSuite) -> Iterator[Emulators]:
    driver = Emulators(emulator_suite)
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def html_api(tmp_path_factory: pytest.TempPathFactory, app_settings: Settings, seeded: SeededData) -> Iterator[str]:
    """One API process whose public URL is its own, so the portal's sign-in comes back to it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = app_settings.model_copy(update={"api_port": port, "public_base_url": base_url})
    # The fuzzer is one client sending as fast as it can; rate limiting has its own tests.
    environment = {**os.environ, **settings.as_environment(), "CP_RATE_LIMITS_ENABLED": "false"}
    group = ProcessGroup(tmp_path_factory.mktemp("html-fuzz-logs"), environment)
    group.add("api", "api")
    group.start_all()
    try:
        wait_until_listening(base_url, timeout_seconds=60, group=group)
        yield base_url
    finally:
        group.stop_all()


@pytest.fixture(scope="module")
def html_schema(seeded: SeededData) -> BaseSchema:
    config = schemathesis.Config.from_dict({"seed": FUZZ_SEED, "generation": {"database": "none"}})
    schema = schemathesis.openapi.from_dict(html_schema_document(), config=config)
    existing_ids = seeded.path_values()

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Half the time, point every id in the path at one tenant's seeded rows."""
        names = [name for name in path_parameters or {} if name in existing_ids[0]]
        if not names:
            return st.just(path_parameters)
        seeded_ids = st.sampled_from(existing_ids).map(
            lambda ids: {**path_parameters, **{name: ids[name] for name in names}}
        )
        return st.one_of(st.just(path_parameters), seeded_ids)

    return schema


def fuzz_page(operation: Operation, base_url: str, visitor: PortalVisitor) -> None:
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    cookies = dict(visitor.browser.http.cookies)

    @hypothesis.seed(FUZZ_SEED)
    @fuzz_settings(FUZZ_EXAMPLES)
    @given(case=cases)
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, cookies=cookies, checks=[not_a_server_error], timeout=30, allow_redirects=False
        )

    run()


@pytest.mark.parametrize("username", [OPERATOR_USERNAME, CONTOSO_ADMIN], ids=["operator", "customer admin"])
def test_no_page_answers_a_server_error(
    username: str, html_api: str, html_schema: BaseSchema, emulators: Emulators
) -> None:
    visitor = sign_in_to_portal(emulators, html_api, username)
    operations = [result.ok() for result in html_schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) > 20, [operation.label for operation in operations]
    failures: list[str] = []
    try:
        for operation in operations:
            try:
                fuzz_page(operation, html_api, visitor)
            except (Exception, FailureGroup) as error:  # every page's failure, reported together
                failures.append(f"{operation.label}:\n{error}")
    finally:
        visitor.close()
    assert not failures, f"{len(failures)} of {len(operations)} pages failed:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize(
    ("method", "path", "form", "status"),
    [
        # Found by the fuzzer: a non-ASCII CSRF token made hmac.compare_digest raise (a 500 on every form).
        ("POST", "/portal/sign-out", {"csrf_token": "é"}, 403),
        ("POST", "/portal/operator/reconciliations", {"csrf_token": "\U0001d47b"}, 403),
        # str.isdigit() took "²" and full-width digits for numbers; int() then failed or found report 1.
        ("GET", "/portal/operator/billing/reports/%C2%B2", None, 422),
        ("GET", "/portal/operator/billing/reports/%EF%BC%91", None, 422),
        ("GET", "/portal/operator/billing/reports/99999999999999999999", None, 422),
        ("GET", "/portal/operator/billing/reports/0/differences.csv", None, 422),
        ("GET", "/marketplace/landing?token=%C3%A9", None, 400),
    ],
)
def test_odd_values_found_on_pages_get_a_clear_refusal(
    html_api: str, emulators: Emulators, method: str, path: str, form: dict[str, str] | None, status: int
) -> None:
    visitor = sign_in_to_portal(emulators, html_api, OPERATOR_USERNAME)
    try:
        response = visitor.browser.http.request(method, f"{html_api}{path}", data=form, follow_redirects=False)
    finally:
        visitor.close()
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
