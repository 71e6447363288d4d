"""Issue 11, items 2, 3 and 8 at the API, on PostgreSQL and on SQLite: non-finite and out-of-range numbers,
capped strings, n_shots against the dataset's size, deep JSON in uploads and in configs, NaN answers. Every
refusal is a 4xx naming the field (never the database's text, never a 500), and whatever is accepted reads back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aicd.data.record import MAX_JSON_DEPTH
from backend.schemas.common import DESCRIPTION_MAX
from tests.backend.conftest import arith_jsonl, tiny_train_config


@pytest.fixture
def api(any_db_client: TestClient) -> TestClient:
    """The API on PostgreSQL, then on SQLite (tests/backend/conftest.py)."""
    return any_db_client


def _field(resp: Any, status: int = 422) -> str:
    assert resp.status_code == status, resp.text
    return resp.json()["detail"]["field"]


def _upload(client: TestClient, data: bytes, name: str | None = None, **form: str) -> Any:
    return client.post(
        "/api/v1/datasets",
        files={"file": ("d.jsonl", data)},
        data={"name": name or f"h-{uuid.uuid4().hex[:8]}", **form},
    )


def _dataset(client: TestClient, n: int) -> int:
    resp = _upload(client, arith_jsonl("train", n))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_non_finite_numbers_are_422_naming_the_field(api: TestClient) -> None:
    ds = _dataset(api, 6)
    for value in ("inf", "-Infinity", "nan"):  # as strings pydantic would parse into floats
        resp = api.post("/api/v1/runs", json={"dataset_id": ds, "config": tiny_train_config(lr=value)})
        assert _field(resp) == "config.lr"
    for key, literal in (("lr", "Infinity"), ("omega", "NaN"), ("epochs", "1e999")):  # JSON literals
        body = '{"dataset_id": ' + str(ds) + ', "config": {"' + key + '": ' + literal + "}}"
        resp = api.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
        assert _field(resp) == f"config.{key}", resp.text
    sweep = {"train": {"model": "tiny:gpt2"}, "grid": {"lr": [1e-3, "inf"]}}
    assert _field(api.post("/api/v1/sweeps", json={"config": sweep})) == "config.train.lr"
    anno = {"source": "gold", "temperature": "nan"}
    assert _field(api.post("/api/v1/annotations", json={"dataset_id": ds, "config": anno})) == (
        "config.temperature"
    )
    evaluation = {"model": "tiny:gpt2", "seeds": [2**31]}  # generations.seed is a 32-bit column
    assert _field(api.post("/api/v1/evaluations", json={"dataset_id": ds, "config": evaluation})) == (
        "config.seeds.0"
    )
    assert _field(api.post("/api/v1/runs", json={"config": {"batch_size": 2**40}})) == "config.batch_size"


def test_n_shots_is_capped_and_fits_the_dataset(api: TestClient) -> None:
    ds = _dataset(api, 6)
    resp = api.post("/api/v1/runs", json={"dataset_id": ds, "config": tiny_train_config(n_shots=10_000)})
    assert _field(resp) == "config.n_shots" and "less than or equal to 64" in resp.text
    resp = api.post("/api/v1/runs", json={"dataset_id": ds, "config": tiny_train_config(n_shots=7)})
    assert _field(resp) == "config.n_shots" and "only 6 training examples" in resp.text
    resp = api.post("/api/v1/runs", json={"dataset_id": ds, "config": tiny_train_config(n_shots=4, limit=3)})
    assert _field(resp) == "config.n_shots" and "(limit 3)" in resp.text
    builtin = tiny_train_config(dataset="arith", n_shots=5, limit=4)  # a built-in dataset is sized too
    resp = api.post("/api/v1/runs", json={"config": builtin})
    assert (
        _field(resp) == "config.n_shots" and "arith/train has only 4 training examples (limit 4)" in resp.text
    )
    sweep = {"train": tiny_train_config(), "grid": {"n_shots": [2, 9]}}
    resp = api.post("/api/v1/sweeps", json={"dataset_id": ds, "config": sweep})
    assert _field(resp) == "config.grid.n_shots"


def test_n_shots_fits_the_training_set_of_every_run_and_sweep(api: TestClient) -> None:
    """Whatever names the training set (dataset_id, `config.dataset: db:<id>` as the UI's comparisons send it,
    a built-in name, a grid axis), n_shots is checked against what that run will read, after `limit`."""
    small, big = _dataset(api, 6), _dataset(api, 12)
    resp = api.post("/api/v1/runs", json={"config": tiny_train_config(dataset=f"db:{small}", n_shots=7)})
    assert _field(resp) == "config.n_shots" and f"dataset {small} has only 6 training examples" in resp.text
    builtin = {"train": tiny_train_config(dataset="arith", limit=4), "grid": {"n_shots": [2, 5]}}
    resp = api.post("/api/v1/sweeps", json={"config": builtin})
    assert _field(resp) == "config.grid.n_shots" and "arith/train has only 4 training examples" in resp.text
    builtin = {"train": tiny_train_config(dataset="arith", n_shots=4, limit=3), "grid": {"seed": [0, 1]}}
    assert _field(api.post("/api/v1/sweeps", json={"config": builtin})) == "config.train.n_shots"
    comparison = {  # the Launch page's "train then evaluate" comparison (ui/components/plans.sweep_body)
        "train": tiny_train_config(dataset=f"db:{small}", n_shots=7),
        "eval": {"shots": [0], "shots_dataset": f"db:{small}"},
        "eval_datasets": [f"db:{small}"],
        "grid": {"objective": ["aicd", "condgen"]},
    }
    resp = api.post("/api/v1/sweeps", json={"config": comparison})
    assert _field(resp) == "config.train.n_shots" and "only 6 training examples" in resp.text
    per_point = {"train": tiny_train_config(n_shots=7), "grid": {"dataset": [f"db:{big}", f"db:{small}"]}}
    resp = api.post("/api/v1/sweeps", json={"dataset_id": big, "config": per_point})
    assert _field(resp) == "config.train.n_shots" and f"dataset {small} has only 6" in resp.text


def test_strings_are_capped(api: TestClient) -> None:
    long = "x" * (DESCRIPTION_MAX + 1)
    assert _field(_upload(api, arith_jsonl("train", 2), description=long)) == "description"
    body = {"name": "imp", "source": "arith", "description": long}
    assert _field(api.post("/api/v1/datasets/import", json=body)) == "description"
    assert _field(api.post("/api/v1/runs", json={"config": {"model": "m" * 5000}})) == "config.model"


def test_deep_json_in_an_upload_is_422_naming_the_line(api: TestClient) -> None:
    good = b'{"id": "a", "question": "q", "answer": 1}\n'
    deep = b'{"id": "b", "question": "q", "answer": 1, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    resp = _upload(api, good + deep)
    assert _field(resp) == "file" and "d.jsonl:2: JSON nested deeper" in resp.text

    def meta_line(depth: int) -> bytes:
        meta = '{"a": ' * depth + "1" + "}" * depth
        line = (
            '{"id": "m", "question": "q", "answer": 1, "rationales": [{"text": "t", "meta": ' + meta + "}]}"
        )
        return line.encode() + b"\n"

    resp = _upload(api, good + meta_line(MAX_JSON_DEPTH + 1))
    assert _field(resp) == "file" and "d.jsonl:2: field 'rationales.0.meta'" in resp.text
    # the deepest meta that is accepted is read back by every route that returns it
    resp = _upload(api, good + meta_line(MAX_JSON_DEPTH))
    assert resp.status_code == 201, resp.text
    ds = resp.json()["id"]
    for url in (f"/api/v1/datasets/{ds}/examples", f"/api/v1/datasets/{ds}/rationales"):
        page = api.get(url)
        assert page.status_code == 200, page.text
        assert '{"a": ' * MAX_JSON_DEPTH in json.dumps(page.json())


def test_deep_json_in_a_config_is_a_4xx(api: TestClient) -> None:
    nested: dict[str, Any] = {}
    node = nested
    for _ in range(MAX_JSON_DEPTH + 5):
        node["k"] = {}
        node = node["k"]
    resp = api.post("/api/v1/runs", json={"config": {"lora": nested}})
    assert _field(resp).startswith("config.lora.k.k") and "nested deeper" in resp.text
    body = '{"config": {"a": ' + "[" * 20_000 + "]" * 20_000 + "}}"  # past the JSON parser's own limit
    resp = api.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500, resp.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity"])
def test_non_finite_answer_is_refused_on_upload(api: TestClient, literal: bytes) -> None:
    data = (
        b'{"id": "a", "question": "q", "answer": 1}\n{"id": "b", "question": "q", "answer": '
        + literal
        + b"}\n"
    )
    resp = _upload(api, data)
    assert _field(resp) == "file" and "d.jsonl:2: field 'answer': must be a finite number" in resp.text


def test_an_exhausted_connection_pool_is_503_not_500() -> None:
    """Under overload every pooled connection can stay busy past the pool timeout: that is a 503 with
    Retry-After (seen at 50 clients in bench/bench_api.py), not an internal error."""
    from fastapi import FastAPI
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from backend.api import errors

    app = FastAPI()
    errors.install(app)

    @app.get("/busy")
    def busy() -> None:
        raise PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached, connection timed out")

    resp = TestClient(app, raise_server_exceptions=False).get("/busy")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert "overloaded" in resp.json()["detail"]["message"]
