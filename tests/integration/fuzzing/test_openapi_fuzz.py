"""OpenAPI fuzzing with schemathesis against a real API process: no 5xx, every answer as the schema documents it.

The schema is loaded from the running server. Every operation is fuzzed with positive and negative data as a
publisher operator; the routes customers call are fuzzed again as a customer admin, and the webhook
as Marketplace. Path parameters are drawn from random values and from the ids of seeded rows (the caller's
tenant and another tenant's), so requests reach the real handlers and tenant isolation is exercised too.
Hypothesis runs from a fixed seed with a bounded number of examples, so every run sends the same requests;
CP_FUZZ_EXAMPLES raises the examples per operation for a longer run and CP_FUZZ_SEED changes the seed.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.db import Database
from core.models import metadata
from core.settings import Settings
from emulators.suite import EmulatorSuite
from tests.conftest import CATALOG_TABLES, start_api
from tests.integration.fuzzing.seed import SeededData, seed
from tests.integration.lifecycle.marketplace_driver import Emulators
from web.errors import ErrorResponse

FUZZ_EXAMPLES = int(os.environ.get("CP_FUZZ_EXAMPLES", "12"))
FUZZ_SEED = int(os.environ.get("CP_FUZZ_SEED", "20261128"))
# Sequences along the links schemathesis infers (a list feeds a detail, a POST's id feeds its GET).
STATEFUL_SCENARIOS = max(1, FUZZ_EXAMPLES // 2)
STATEFUL_STEPS = 6
# Generic only for schemathesis' own typing; these tests handle any operation alike.
Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Operation]
# Fresh Entra tenants of our own, so rows that other modules' processes left behind cannot collide with them.
CUSTOMER_TENANT_ID = str(uuid.uuid4())
OTHER_TENANT_ID = str(uuid.uuid4())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# The routes a customer admin calls with their own token; the rest are for operators (or Azure itself).
CUSTOMER_PATHS = r"^/api/(clusters|operations/slo)/"
WEBHOOK_PATH = "/marketplace/webhook"
MANAGED_APP_PATH = "/managedapp/resource"

pytestmark = [pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Caller:
    """Whose token the requests carry and which operations that caller is fuzzed on."""

    name: str
    select: Callable[[BaseSchema], BaseSchema]
    token: Callable[[Emulators], str]


CALLERS = [
    Caller(
        "operator",
        lambda schema: schema.exclude(path=WEBHOOK_PATH),
        lambda emulators: emulators.control_plane_token(roles=["Operator"]),
    ),
    Caller(
        "customer admin",
        lambda schema: schema.include(path_regex=CUSTOMER_PATHS),
        lambda emulators: emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CUSTOMER_TENANT_ID),
    ),
    Caller(
        "marketplace", lambda schema: schema.include(path=WEBHOOK_PATH), lambda emulators: emulators.webhook_token()
    ),
]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[SeededData]:
    """Two tenants' rows, committed for the API process; every non-catalog table is emptied afterwards."""
    database = Database(database_url)
    data = seed(database, customer_entra_tenant_id=CUSTOMER_TENANT_ID, other_entra_tenant_id=OTHER_TENANT_ID)
    yield data
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name not in CATALOG_TABLES:
                connection.execute(table.delete())
    database.dispose()


@pytest.fixture(scope="module")
def managed_app_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def fuzz_api(
    tmp_path_factory: pytest.TempPathFactory, app_settings: Settings, seeded: SeededData, managed_app_secret: str
) -> Iterator[str]:
    """One API process on the emulators, with managed-application notifications configured."""
    group, base_url = start_api(
        tmp_path_factory.mktemp("fuzz-api-logs"),
        app_settings,
        CP_MANAGED_APP_NOTIFICATION_SECRET=managed_app_secret,
        # The fuzzer is one client sending as fast as it can; rate limiting has its own tests.
        CP_RATE_LIMITS_ENABLED="false",
    )
    yield base_url
    group.stop_all()


@pytest.fixture(scope="module")
def emulators(emulator_suite: EmulatorSuite) -> Iterator[Emulators]:
    driver = Emulators(emulator_suite)
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_api: str, seeded: SeededData, managed_app_secret: str) -> BaseSchema:
    """The running server's OpenAPI document, with generation steered towards the seeded rows."""
    config = schemathesis.Config.from_dict({"seed": FUZZ_SEED, "generation": {"database": "none"}})
    schema = schemathesis.openapi.from_url(f"{fuzz_api}/openapi.json", config=config, timeout=30)
    existing_ids = seeded.path_values()

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Half the time, point every id in the path at one tenant's seeded rows (the caller's or another's)."""
        names = [name for name in path_parameters or {} if name in existing_ids[0]]
        if not names:
            return st.just(path_parameters)
        seeded_ids = st.sampled_from(existing_ids).map(
            lambda ids: {**path_parameters, **{name: ids[name] for name in names}}
        )
        return st.one_of(st.just(path_parameters), seeded_ids)

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        """Half the managed-application notifications carry the right signature, so their bodies get validated."""
        if context.operation.path != MANAGED_APP_PATH:
            return st.just(query)
        return st.one_of(st.just(query), st.just({**(query or {}), "sig": managed_app_secret}))

    return schema


def fuzz_settings(max_examples: int) -> hypothesis.settings:
    """Bounded, reproducible runs. No shrinking: a failure is reported as found, so a failing run stays as short."""
    return hypothesis.settings(
        max_examples=max_examples,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        stateful_step_count=STATEFUL_STEPS,
    )


def fuzz_operation(operation: Operation, token: str) -> None:
    """Positive and negative cases for one operation; raises the first failure of any check, as found."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @hypothesis.seed(FUZZ_SEED)
    @fuzz_settings(FUZZ_EXAMPLES)
    @given(case=cases)
    def run(case: FuzzCase) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=30)

    run()


@pytest.mark.parametrize("caller", CALLERS, ids=lambda caller: caller.name)
def test_every_operation_answers_as_documented(caller: Caller, api_schema: BaseSchema, emulators: Emulators) -> None:
    token = caller.token(emulators)
    operations = [result.ok() for result in caller.select(api_schema).get_all_operations() if isinstance(result, Ok)]
    assert operations, "the schema has no operation for this caller"
    failures: list[str] = []
    for operation in operations:
        try:
            fuzz_operation(operation, token)
        except (Exception, FailureGroup) as error:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}:\n{error}")
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("caller", CALLERS[:2], ids=lambda caller: caller.name)
def test_linked_operations_in_sequence_answer_as_documented(
    caller: Caller, api_schema: BaseSchema, emulators: Emulators
) -> None:
    """Stateful: ids that one answer returns are used by the next request, as the inferred links say."""
    token = caller.token(emulators)
    workflow = caller.select(api_schema).as_state_machine()

    class CallerWorkflow(workflow):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: FuzzCase) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {token}"}, "timeout": 30}

        def validate_response(
            self, response: Any, case: FuzzCase, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    hypothesis.seed(FUZZ_SEED)(CallerWorkflow)
    run_state_machine_as_test(CallerWorkflow, settings=fuzz_settings(STATEFUL_SCENARIOS))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/no/such/route", None, 404, "NotFound"),
        ("DELETE", "/api/publisher/subscriptions", None, 405, "MethodNotAllowed"),
        ("POST", "/api/clusters/any/retry", b'{"reason": "\xff"}', 400, "BadRequest"),
        # Found by the fuzzer: numbers beyond 64 bits reached SQLite's driver, which raised (a 500).
        ("GET", f"/api/publisher/subscriptions?offset={2**70}", None, 422, "ValidationFailed"),
        ("GET", f"/api/publisher/reconciliations/{2**64}", None, 422, "ValidationFailed"),
        (
            "GET",
            f"/api/publisher/billing/reconciliation-reports/{2**64}/differences.csv",
            None,
            422,
            "ValidationFailed",
        ),
    ],
)
def test_what_the_framework_refuses_has_the_error_body(
    fuzz_api: str, emulators: Emulators, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    """Refusals that never reach a handler answer in the same documented shape as every other error."""
    token = emulators.control_plane_token(roles=["Operator"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = httpx.request(method, f"{fuzz_api}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert ErrorResponse.model_validate(response.json()).error.code == code


@pytest.mark.parametrize("authorization", [None, "", "Basic b3BlcmF0b3I6cGFzc3dvcmQ=", "Bearer"])
def test_a_request_without_a_bearer_token_is_refused(fuzz_api: str, authorization: str | None) -> None:
    """The declared bearer scheme leaves the refusal to us: 401, our body and the challenge header."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{fuzz_api}/api/publisher/subscriptions", headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == {"code": "Unauthenticated", "message": "missing bearer token", "details": {}}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_webhook_quantity_beyond_the_column_is_refused_as_invalid(fuzz_api: str, emulators: Emulators) -> None:
    """Found by the fuzzer on PostgreSQL: a quantity above 32 bits reached the INTEGER column (a 500)."""
    subscription_id = str(uuid.uuid4())
    body = {
        "id": str(uuid.uuid4()),
        "subscriptionId": subscription_id,
        "action": "ChangeQuantity",
        "quantity": 2**31,
        "status": "InProgress",
        "subscription": {"id": subscription_id},
    }
    headers = {"Authorization": f"Bearer {emulators.webhook_token()}"}
    response = httpx.post(f"{fuzz_api}/marketplace/webhook", json=body, headers=headers, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["problems"][0]["field"] == "quantity"
