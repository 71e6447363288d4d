"""Guards that act before or around a route: token and body-size checks ahead of body parsing, an unreachable
broker, a non-blocking upload, names and values the database would reject, pages on every list. Real
PostgreSQL and Redis (plus an app pointed at a Redis port nobody listens on)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
import time
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import Dataset, Run, Sweep
from tests.backend.conftest import app_client, arith_jsonl, free_port, tiny_train_config


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail["message"], str) and detail["message"] and "field" in detail, detail
    return detail


def _count(model: type) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture(scope="module")
def dataset_id(client: TestClient) -> int:
    resp = client.post(
        "/api/v1/datasets", files={"file": ("g.jsonl", arith_jsonl("train", 6))}, data={"name": "guards"}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AICD_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    yield "s3cret"
    monkeypatch.delenv("AICD_API_TOKEN")
    get_settings.cache_clear()


def asgi_request(
    app: Any, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, Any], int]:
    """Call the ASGI app directly: (status, JSON body, how many body chunks the app pulled)."""
    pending = list(chunks)
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not pending:
            await asyncio.sleep(3600)  # a client that is still sending
        pulled += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


# ------------------------------------------------------------------------------------- 1. token and size
def test_token_is_checked_before_the_body_is_read(client: TestClient, token: str) -> None:
    resp = client.post("/api/v1/runs", content=b"{broken", headers={"content-type": "application/json"})
    detail = _error(resp, 401)  # not a 422 about the JSON: the body was never parsed
    assert detail["field"] == "Authorization" and resp.headers["www-authenticate"] == "Bearer"
    upload = client.post(
        "/api/v1/datasets", files={"file": ("x.jsonl", b"x" * (1024 * 1024))}, data={"name": "nope"}
    )
    _error(upload, 401)
    assert client.get("/api/v1/nowhere").status_code == 401  # every path but health and docs
    for path in ("/health", "/docs", "/openapi.json", "/redoc"):
        assert client.get(path).status_code == 200, path
    ok = client.post(
        "/api/v1/runs",
        content=b"{broken",
        headers={"content-type": "application/json", "Authorization": f"Bearer {token}"},
    )
    _error(ok, 422)  # with the token the body is parsed, and its problem named

    from backend.main import create_app

    status, body, pulled = asgi_request(
        create_app(), "POST", "/api/v1/runs", {"content-type": "application/json"}, [b"{broken"]
    )
    assert (status, pulled) == (401, 0) and body["detail"]["message"] == "missing or invalid bearer token"


def test_oversize_content_length_is_413_without_reading_the_body(client: TestClient) -> None:
    from backend.main import create_app

    settings = get_settings()
    app = create_app()
    declared = str(settings.max_json_bytes + 1)
    status, body, pulled = asgi_request(
        app, "POST", "/api/v1/runs", {"content-type": "application/json", "content-length": declared}, []
    )
    assert (status, pulled) == (413, 0), body  # answered at once: the (never sent) body was not awaited
    assert body["detail"]["field"] == "body" and "larger than the limit" in body["detail"]["message"]
    upload_limit = settings.max_upload_bytes + 1024 * 1024
    status, body, pulled = asgi_request(
        app,
        "POST",
        "/api/v1/datasets",
        {"content-type": "multipart/form-data; boundary=x", "content-length": str(upload_limit)},
        [],
    )
    assert (status, pulled) == (413, 0) and "for uploads" in body["detail"]["message"]


def test_streamed_body_is_counted_and_cut_at_the_limit(client: TestClient) -> None:
    from backend.main import create_app

    limit = get_settings().max_json_bytes
    chunk = b" " * (256 * 1024)
    chunks = [b'{"config": {"x": "', *[chunk] * (2 * limit // len(chunk) + 4)]
    status, body, pulled = asgi_request(  # no Content-Length: chunked transfer
        create_app(), "POST", "/api/v1/runs", {"content-type": "application/json"}, chunks
    )
    assert status == 413, body
    assert body["detail"]["field"] == "body" and "larger than the limit" in body["detail"]["message"]
    assert pulled <= limit // len(chunk) + 2 < len(chunks)  # stopped reading once past the limit
    # the same through a client streaming a multipart upload without a length
    limit = get_settings().max_upload_bytes

    def stream() -> Any:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    before = _count(Dataset)
    resp = client.post(
        "/api/v1/datasets", content=stream(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert _error(resp, 413)["field"] == "body"
    assert _count(Dataset) == before


def test_json_body_limit_applies_to_every_json_request(client: TestClient) -> None:
    limit = get_settings().max_json_bytes
    resp = client.post("/api/v1/runs", json={"config": {"padding": "x" * limit}})
    assert "larger than the limit" in _error(resp, 413)["message"]


# ---------------------------------------------------------------------------------- 2. broker unreachable
def test_unreachable_broker_fails_the_job_with_503_and_health_says_so(dataset_id: int) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with app_client(AICD_REDIS_URL=dead) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["broker"] == "unreachable", health.text
        started = time.monotonic()
        resp = c.post(
            "/api/v1/runs",
            json={"name": "no-broker", "dataset_id": dataset_id, "config": tiny_train_config()},
        )
        assert time.monotonic() - started < 10
        detail = _error(resp, 503)
        assert "broker is unreachable" in detail["message"] and "resume" in detail["message"]
        with session_scope() as s:
            run = s.scalar(select(Run).where(Run.name == "no-broker"))
            assert run.status == "failed" and "broker" in run.error and run.finished_at is not None
            run_id = run.id
        resumed = c.post(f"/api/v1/runs/{run_id}/resume")  # still down: failed again, attempt 2
        _error(resumed, 503)
        assert c.get(f"/api/v1/runs/{run_id}").json()["status"] == "failed"
    with app_client() as c:  # the broker is back
        assert c.get("/health").json()["broker"] == "ok"
        resumed = c.post(f"/api/v1/runs/{run_id}/resume")
        assert resumed.status_code == 202 and resumed.json()["status"] == "queued", resumed.text
        assert resumed.json()["attempt"] == 3 and resumed.json()["error"] is None
        assert c.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"


# --------------------------------------------------------------------------------- 5. upload off the loop
def test_routes_never_block_the_event_loop(client: TestClient) -> None:
    import importlib
    import pkgutil

    import backend.api.routes as pkg

    routes = [
        (info.name, r)
        for info in pkgutil.iter_modules(pkg.__path__)
        for r in importlib.import_module(f"{pkg.__name__}.{info.name}").router.routes
        if isinstance(r, APIRoute)
    ]
    assert len(routes) > 30
    # every route does sync DB work: a sync route runs in FastAPI's thread pool; an async one (the hot reads)
    # must hand its work to the read pool (`backend/api/read_pool.py`) and do nothing blocking itself
    is_async = [(name, r) for name, r in routes if inspect.iscoroutinefunction(r.endpoint)]
    blocking = [
        (name, r.path) for name, r in is_async if "await run_read(" not in inspect.getsource(r.endpoint)
    ]
    assert blocking == []
    assert {r.path for _, r in is_async} == {
        "/runs",
        "/evaluations/{evaluation_id}/generations",
        "/generations",
        "/compare",
    }


def test_health_answers_while_an_upload_is_processed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.services import datasets as svc

    parse = svc.parse_jsonl
    parsing = threading.Event()

    def slow_parse(filename: str, data: bytes) -> Any:  # a large file: parsing takes a while
        parsing.set()
        time.sleep(1.5)
        return parse(filename, data)

    monkeypatch.setattr(svc, "parse_jsonl", slow_parse)
    result: dict[str, Any] = {}

    def upload() -> None:
        result["resp"] = client.post(
            "/api/v1/datasets", files={"file": ("s.jsonl", arith_jsonl("train", 4))}, data={"name": "slow"}
        )

    thread = threading.Thread(target=upload)
    thread.start()
    assert parsing.wait(10)
    started = time.monotonic()
    assert client.get("/health").status_code == 200
    waited = time.monotonic() - started
    thread.join(30)
    assert result["resp"].status_code == 201, result["resp"].text
    assert waited < 1.0, f"/health waited {waited:.2f}s for the upload"


# --------------------------------------------------------------------- 6. what the database would refuse
def test_values_the_database_cannot_store_are_named(client: TestClient, dataset_id: int) -> None:
    ok = {"id": "a", "question": "q", "answer": "1"}
    long_id = {"id": "x" * 201, "question": "q", "answer": "2"}
    data = (json.dumps(ok) + "\n\n" + json.dumps(long_id) + "\n").encode()
    before = _count(Dataset)
    resp = client.post("/api/v1/datasets", files={"file": ("l.jsonl", data)}, data={"name": "long-id"})
    detail = _error(resp, 422)
    assert "l.jsonl:3" in detail["message"] and "'id'" in detail["message"] and "200" in detail["message"]
    assert detail["field"] == "file"
    model = {**ok, "rationales": [{"text": "t", "model": "m" * 300}]}
    resp = client.post(
        "/api/v1/datasets",
        files={"file": ("m.jsonl", json.dumps(model).encode())},
        data={"name": "long-model"},
    )
    assert "m.jsonl:1" in (d := _error(resp, 422))["message"] and "rationales.0.model" in d["message"]
    resp = client.post(
        "/api/v1/datasets",
        files={"file": ("n.jsonl", json.dumps(ok).encode())},
        data={"name": "nul-desc", "description": "a\x00b"},
    )
    assert _error(resp, 422)["field"] == "description"
    resp = client.post(
        "/api/v1/datasets/import", json={"name": "imp", "source": "arith", "description": "\x00"}
    )
    assert _error(resp, 422)["field"] == "description"
    assert _count(Dataset) == before

    before = _count(Run)
    resp = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": {"name": "r" * 201}})
    assert _error(resp, 422)["field"] == "config.name"
    resp = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "name": "r" * 201, "config": {}})
    assert _error(resp, 422)["field"] == "name"
    resp = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": {"teacher": "a\x00"}})
    assert _error(resp, 422)["field"] == "config.teacher" and "NUL" in resp.json()["detail"]["message"]
    assert _count(Run) == before
    before = _count(Sweep)
    resp = client.post("/api/v1/sweeps", json={"dataset_id": dataset_id, "config": {"name": "s" * 201}})
    assert _error(resp, 422)["field"] == "config.name"
    resp = client.post(
        "/api/v1/sweeps",
        json={"name": "s" * 196, "dataset_id": dataset_id, "config": {"grid": {"objective": ["aicd"]}}},
    )
    assert "longer than 200" in _error(resp, 422)["message"]  # its runs are named <sweep>.<run>
    assert _count(Sweep) == before


# --------------------------------------------------------------------------------------- 8. dotted names
@pytest.mark.parametrize("name", [".", "..", "..."])
def test_names_made_only_of_dots_are_refused(client: TestClient, dataset_id: int, name: str) -> None:
    before = (_count(Run), _count(Sweep))
    resp = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": {"name": name}})
    assert _error(resp, 422)["field"] == "config.name"
    assert _error(client.post("/api/v1/runs", json={"name": name, "config": {}}), 422)["field"] == "name"
    resp = client.post("/api/v1/sweeps", json={"dataset_id": dataset_id, "config": {"name": name}})
    assert _error(resp, 422)["field"] == "config.name"
    assert _error(client.post("/api/v1/sweeps", json={"name": name, "config": {}}), 422)["field"] == "name"
    resp = client.post("/api/v1/datasets", files={"file": ("d.jsonl", b"{}")}, data={"name": name})
    assert _error(resp, 422)["field"] == "name"
    assert (_count(Run), _count(Sweep)) == before


def test_server_sweeps_refuse_a_star_row_with_the_field_named(client: TestClient, dataset_id: int) -> None:
    """The STaR row's data step (the student rationalising) runs only in `aicd sweep`: a 422 naming the field,
    nothing created; the shipped Table 1 configs say so."""
    before = _count(Sweep)
    for star in ({}, {"k": 2}):  # an empty section asks for the row with every default
        config = {"grid": {"objective": ["aicd"]}, "star": star}
        detail = _error(client.post("/api/v1/sweeps", json={"dataset_id": dataset_id, "config": config}), 422)
        assert detail["field"] == "config.star" and "aicd sweep" in detail["message"], detail
    assert _count(Sweep) == before
    shipped = {c["name"]: c for c in _all(client, "/api/v1/preview/configs", kind="sweep")}
    for name in ("table1-svamp", "paper-table1-svamp"):
        assert shipped[name]["server"] is False and "star" in shipped[name]["note"], shipped[name]


# ------------------------------------------------------------------------------------------- 7. pages
def _all(client: TestClient, url: str, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor", "limit"}
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_every_list_is_a_page(client: TestClient) -> None:
    for i in range(3):
        assert (
            client.put(
                "/api/v1/teacher-keys", json={"base_url": f"http://127.0.0.1:{60 + i}/v1", "api_key": "k"}
            ).status_code
            == 200
        )
    keys = _all(client, "/api/v1/teacher-keys", limit=2)
    assert len({k["base_url"] for k in keys}) == len(keys) >= 3
    assert not any("api_key" in k for k in keys)
    builtins = _all(client, "/api/v1/preview/builtins", limit=2)
    assert "arith" in {b["name"] for b in builtins}
    first = client.get("/api/v1/preview/builtins", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"] is not None
    configs = _all(client, "/api/v1/preview/configs", limit=3)
    assert len(configs) > 3 and len({c["name"] for c in configs}) == len(configs)
    sweeps = _all(client, "/api/v1/preview/configs", limit=3, kind="sweep")
    assert sweeps and all(c["kind"] == "sweep" for c in sweeps)
    _error(client.get("/api/v1/preview/configs", params={"kind": "other"}), 422)
    for i in range(3):
        client.delete("/api/v1/teacher-keys", params={"base_url": f"http://127.0.0.1:{60 + i}/v1"})


def test_rationales_of_a_dataset_are_paged_and_filtered(client: TestClient) -> None:
    rows = [json.loads(line) for line in arith_jsonl("train", 5).decode().splitlines()]
    rows[0]["rationales"].append({"text": "by a teacher", "source": "teacher", "model": "t"})
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    ds = client.post("/api/v1/datasets", files={"file": ("r.jsonl", data)}, data={"name": "rationales"})
    assert ds.status_code == 201, ds.text
    ds_id = ds.json()["id"]
    examples = _all(client, f"/api/v1/datasets/{ds_id}/examples")
    every = _all(client, f"/api/v1/datasets/{ds_id}/rationales", limit=4)
    expected = sum(len(r["rationales"]) for r in rows)
    assert len(every) == expected == len({r["id"] for r in every})
    assert [r["id"] for r in every] == sorted(r["id"] for r in every)
    assert {r["ext_id"] for r in every} == {r["id"] for r in rows}
    teacher = _all(client, f"/api/v1/datasets/{ds_id}/rationales", source="teacher")
    assert [(r["text"], r["model"], r["ext_id"]) for r in teacher] == [("by a teacher", "t", rows[0]["id"])]
    one = _all(client, f"/api/v1/datasets/{ds_id}/rationales", example_id=examples[1]["id"])
    assert [r["text"] for r in one] == [r["text"] for r in examples[1]["rationales"]]
    assert all(r["example_id"] == examples[1]["id"] for r in one)
    _error(client.get(f"/api/v1/datasets/{ds_id}/rationales", params={"source": "nobody"}), 422)
    _error(client.get("/api/v1/datasets/999999/rationales"), 404)


# ---------------------------------------------------------------------------------------------- 12. models
def test_evaluations_accept_bare_hub_ids_like_training(client: TestClient, dataset_id: int) -> None:
    resp = client.post(
        "/api/v1/evaluations", json={"dataset_id": dataset_id, "config": {"model": "gpt2", "shots": [0]}}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["config"]["model"] == "gpt2"
    client.post(f"/api/v1/evaluations/{resp.json()['id']}/cancel")
    _error(client.post("/api/v1/evaluations", json={"config": {"model": "run:1"}}), 422)


def test_upload_limit_setting_still_applies_to_the_file(client: TestClient) -> None:
    limit = int(os.environ["AICD_MAX_UPLOAD_BYTES"])
    data = b"x" * (limit + 1)  # over the file limit, inside the form allowance
    resp = client.post("/api/v1/datasets", files={"file": ("b.jsonl", data)}, data={"name": "edge"})
    assert _error(resp, 413)["field"] == "file"
