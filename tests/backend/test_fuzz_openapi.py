"""Schemathesis over /openapi.json with the token, against PostgreSQL: no generated request may give a 5xx.

Bounded to fit CI: a few derandomized (fixed-seed) examples per operation, on a database of its own and a Redis
prefix no worker listens to (the jobs it manages to create stay queued and touch nothing else)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from backend.main import create_app
from tests.backend.conftest import _apply_env, _restore_env, create_database, drop_database, run_alembic

TOKEN = "fuzz-token"
EXAMPLES_PER_OPERATION = 4


APP = create_app()  # the schema is read at collection; requests run under the module's settings (below)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def fuzz_env(stack_env: dict[str, str]) -> Iterator[None]:
    name, url = create_database("aicd_fuzz")
    env = {
        **stack_env,
        "AICD_DATABASE_URL": url,
        "AICD_API_TOKEN": TOKEN,
        "AICD_REDIS_PREFIX": f"{stack_env['AICD_REDIS_PREFIX']}fuzz-{uuid.uuid4().hex[:6]}:",
    }
    try:
        run_alembic(url, "upgrade", "head")
        old = _apply_env(env)
        try:
            with TestClient(APP):  # runs the lifespan (dispatcher, reaper) like a served app
                yield
        finally:
            _restore_env(old)
    finally:
        drop_database(name)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_is_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code != 401, "the token must get every request past the guard"
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"{case.as_curl_command()}"
    )
