"""What the CPU cuts of the hot read endpoints (issue 11) must not change: the JSON values read, every filter and
page of the generation list, compare by evaluation id, and the response model each route declares and serves."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import null, text

from backend.db import get_engine, json_loads, session_scope
from backend.models import Evaluation, Generation, Run
from backend.schemas.common import Page
from backend.schemas.jobs import CompareRow, GenerationPublic, RunPublic

VALUES = [
    {"a": 123456789012345678901234567890, "b": [1e308, -0.0, 0.1, 5e-324, 2.5e-8], "c": None, "d": True},
    {"text": 'é😀 \n\t"quoted" \\ back', "nested": {"x": [{"y": []}, {}]}},
    [],
    "plain",
    7,
]


@pytest.mark.parametrize("value", VALUES)
def test_json_loads_reads_what_json_loads_reads(value: Any) -> None:
    raw = json.dumps(value)
    assert json_loads(raw) == json.loads(raw)
    assert json_loads(raw.encode()) == json.loads(raw)


def test_json_loads_takes_nesting_past_pydantic_cores_limit() -> None:
    raw = "[" * 300 + "]" * 300  # pydantic-core stops at 200 levels: json.loads takes over
    assert json_loads(raw) == json.loads(raw)


def test_postgres_json_columns_read_as_json_loads_reads_their_text(client: TestClient) -> None:
    """Whatever PostgreSQL makes of a value (jsonb prints 1e308 as an integer), the API reads what `json.loads`
    reads from the same text, at any depth."""
    deep: Any = 1
    for _ in range(250):
        deep = {"k": deep}
    sql = text(
        "SELECT CAST(:v AS jsonb), CAST(CAST(:v AS jsonb) AS text), CAST(:w AS json), CAST(CAST(:w AS json) AS text)"
    )
    with get_engine().connect() as conn:
        assert conn.dialect.name == "postgresql"
        value, value_text, nested, nested_text = conn.execute(
            sql, {"v": json.dumps(VALUES), "w": json.dumps(deep)}
        ).one()
    assert value == json.loads(value_text) and nested == json.loads(nested_text) == deep


def _evaluation(tag: str) -> int:
    """An evaluation with 4 questions × shots {0, 2} × seeds {0, 1}, every other one correct."""
    with session_scope() as s:
        run = Run(name=f"cpu-{tag}", config={}, run_dir=f"runs/cpu-{tag}", status="succeeded")
        s.add(run)
        s.flush()
        ev = Evaluation(run_id=run.id, config={}, output_dir=f"evaluations/cpu-{tag}", status="succeeded")
        s.add(ev)
        s.flush()
        i = 0
        for shots in (0, 2):
            for seed in (0, 1):
                for q in range(4):
                    i += 1
                    s.add(Generation(evaluation_id=ev.id, example_id=f"q{q}", shots=shots, seed=seed,
                                     question=f"Q{q}?", gold=str(q), shot_ids=[f"d{k}" for k in range(shots)],
                                     prompt=f"Q{q}?", generation=f"... {q if i % 2 else 9}",
                                     extracted=str(q) if i % 2 else None, correct=bool(i % 2)))  # fmt: skip
        s.flush()
        return ev.id


def _all_pages(client: TestClient, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = client.get(url, params={**params, "limit": 3, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        TypeAdapter(Page[GenerationPublic]).validate_json(page.content)
        items += page.json()["items"]
        if (cursor := page.json()["next_cursor"]) is None:
            return items


def test_generation_pages_hold_under_every_filter(any_db_client: TestClient) -> None:
    client = any_db_client
    ev_id = _evaluation(uuid.uuid4().hex[:8])
    url = f"/api/v1/evaluations/{ev_id}/generations"
    every = _all_pages(client, url, {})
    assert len(every) == 16 and [g["id"] for g in every] == sorted(g["id"] for g in every)
    assert _all_pages(client, "/api/v1/generations", {"evaluation_id": ev_id}) == every
    assert client.get("/api/v1/generations", params={"limit": 2}).json()["next_cursor"] is not None
    for params in ({"shots": 2}, {"seed": 1}, {"correct": True}, {"correct": False},
                   {"shots": 0, "seed": 1, "correct": False}, {"shots": 2, "correct": True}):  # fmt: skip
        want = [g for g in every if all(g[k] == v for k, v in params.items())]
        assert want and _all_pages(client, url, params) == want, params
    assert client.get(url, params={"shots": 5}).json() == {"items": [], "next_cursor": None, "limit": 50}
    missing = client.get(f"/api/v1/evaluations/{ev_id + 10**6}/generations")
    assert missing.status_code == 404 and f"evaluation {ev_id + 10**6}" in missing.text
    assert (
        client.get(f"/api/v1/evaluations/{ev_id + 10**6}/generations", params={"shots": 5}).status_code == 404
    )


def test_compare_by_evaluation_id_is_compare_by_run(client: TestClient) -> None:
    ev_a = _evaluation(uuid.uuid4().hex[:8])
    ev_b = _evaluation(uuid.uuid4().hex[:8])
    with session_scope() as s:
        runs = [s.get(Evaluation, e).run_id for e in (ev_a, ev_b)]
    by_eval = client.get("/api/v1/compare", params={"evaluation_id": [ev_b, ev_a], "shots": 2, "seed": 1})
    by_run = client.get("/api/v1/compare", params={"run_id": runs[::-1], "shots": 2, "seed": 1})
    assert by_eval.status_code == 200 and by_eval.content == by_run.content
    page = TypeAdapter(Page[CompareRow]).validate_json(by_eval.content)
    assert [r.example_id for r in page.items] == ["q0", "q1", "q2", "q3"]
    assert all([e.evaluation_id for e in r.entries] == [ev_b, ev_a] and r.agree for r in page.items)
    default = client.get("/api/v1/compare", params={"evaluation_id": [ev_a]}).json()  # smallest shots, seed
    assert {(r["shots"], r["seed"]) for r in default["items"]} == {(0, 0)}
    gone = client.get("/api/v1/compare", params={"evaluation_id": [ev_a, 10**12]})
    assert gone.status_code == 404 and f"evaluation {10**12} not found" in gone.text


@pytest.mark.parametrize(
    ("path", "model", "schema"),
    [
        ("/api/v1/runs", Page[RunPublic], "Page_RunPublic_"),
        ("/api/v1/evaluations/{evaluation_id}/generations", Page[GenerationPublic], "Page_GenerationPublic_"),
        ("/api/v1/compare", Page[CompareRow], "Page_CompareRow_"),
    ],
)
def test_hot_routes_declare_and_serve_their_response_model(
    client: TestClient, path: str, model: Any, schema: str
) -> None:
    """They return ready bytes (no re-validation by FastAPI): the OpenAPI still names the model, and what is
    served validates against it."""
    spec = client.get("/openapi.json").json()
    ok = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": f"#/components/schemas/{schema}"}
    ev_id = _evaluation(uuid.uuid4().hex[:8])
    with session_scope() as s:
        run_id = s.get(Evaluation, ev_id).run_id
    url = path.replace("{evaluation_id}", str(ev_id))
    params = {"run_id": [run_id]} if path.endswith("compare") else {}
    served = client.get(url, params=params)
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    page = TypeAdapter(model).validate_json(served.content)
    assert page.items and json.loads(served.content) == TypeAdapter(model).dump_python(page, mode="json")


def test_listed_runs_read_sql_null_and_json_null_metrics_as_null(any_db_client: TestClient) -> None:
    """GET /runs serves config and last_metrics as their stored JSON text: a missing value (SQL
    NULL), a JSON null and nested values list exactly as GET /runs/{id} shows them."""
    client = any_db_client
    tag = uuid.uuid4().hex[:8]
    config = {"lr": 7e-6, "big": 2**62, "template": {"sep": "\n\n", "ü": "✓"}, "lora": None, "w": [0.1, 1]}
    items = _list_back(
        client,
        [
            Run(name=f"null-{tag}-sql", config=config, run_dir="r", last_metrics=null()),
            Run(name=f"null-{tag}-json", config=config, run_dir="r", last_metrics=None),
            Run(name=f"null-{tag}-set", config=config, run_dir="r", last_metrics={"loss": 0.5, "x": [1]}),
        ],
    )
    assert [r["last_metrics"] for r in items] == [{"loss": 0.5, "x": [1]}, None, None]
    assert all(r["config"] == config for r in items)
    for item in items:
        assert item == client.get(f"/api/v1/runs/{item['id']}").json()


def _list_back(client: TestClient, runs: list[Run]) -> list[dict[str, Any]]:
    """Store these runs and list them with GET /runs (newest first), checked against its response model."""
    with session_scope() as s:
        s.add_all(runs)
        s.flush()
        ids = [r.id for r in runs]
    listed = client.get("/api/v1/runs", params={"cursor": ids[-1] + 1, "limit": len(ids)})
    TypeAdapter(Page[RunPublic]).validate_json(listed.content)
    items = listed.json()["items"]
    assert [r["id"] for r in items] == ids[::-1]
    return items


def test_listed_runs_serve_stored_json_text_whatever_the_strings_hold(any_db_client: TestClient) -> None:
    """The lists splice stored JSON text into the page at `"config":<slot>` keys: strings that spell such a key
    (in the config, the metrics and the scalar fields around them) stay what they are."""
    client = any_db_client
    tag = uuid.uuid4().hex[:8]
    trap = '"config":0,"last_metrics":1 \\"config\\":2 "shot_ids":0'
    config = {
        "lr": 7e-6,
        "note": trap,
        "config": 0,
        "last_metrics": {"config": 1},
        "deep": [{"config": trap}],
    }
    runs = [
        Run(
            name=f"trap-{tag}-{i}",
            config=config,
            run_dir=trap,
            error=trap,
            last_metrics={"loss": i, "t": trap},
        )
        for i in range(3)
    ]
    items = _list_back(client, runs)
    assert [r["last_metrics"] for r in items] == [{"loss": i, "t": trap} for i in (2, 1, 0)]
    assert all(r["config"] == config and r["error"] == trap and r["run_dir"] == trap for r in items)
    for item in items:
        assert item == client.get(f"/api/v1/runs/{item['id']}").json()


def test_json_columns_refuse_nan_and_infinity_on_every_database(any_db_client: TestClient) -> None:
    """Stored JSON must parse: PostgreSQL refuses NaN/inf, and SQLite, which would store the `NaN` token, refuses
    them too, so the lists can serve stored text as it is."""
    for bad in (float("nan"), float("inf")):
        with pytest.raises(Exception, match="JSON compliant|Out of range float"):
            with session_scope() as s:
                s.add(Run(name=f"nan-{uuid.uuid4().hex[:8]}", config={"x": bad}, run_dir="r"))


def test_raw_pages_refuse_models_whose_other_fields_could_spell_a_slot() -> None:
    """A nested field could hold a `"config":<int>` pair of its own; such a model cannot have raw fields."""
    from pydantic import BaseModel

    from backend.api.responses import page_response

    class Nested(BaseModel):
        config: Any
        extra: dict[str, Any]

    with pytest.raises(TypeError, match="Nested.extra"):
        page_response(Nested, [], None, 1, raw=("config",))
