"""HTTP behaviour against real PostgreSQL (and Redis as the broker): validation, errors, pagination, auth,
artifact safety, side-by-side view. No worker runs here; jobs created are cancelled while still queued."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from backend.db import session_scope
from backend.models import Dataset, Evaluation, Example, Generation, MetricPoint, Run, Sweep
from tests.backend.conftest import arith_jsonl, tiny_train_config


def _count(model: type) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _upload(client: TestClient, name: str, data: bytes, filename: str = "data.jsonl"):
    return client.post("/api/v1/datasets", files={"file": (filename, data)}, data={"name": name})


def _assert_error(resp, status: int, *needles: str) -> dict:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail["message"], str) and detail["message"]
    for needle in needles:
        assert needle in detail["message"] or needle == detail.get("field"), detail
    return detail


@pytest.fixture(scope="module")
def dataset_id(client: TestClient) -> int:
    resp = _upload(client, "api-arith", arith_jsonl("train", 12))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_health_and_docs_need_no_token(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/runs" in spec["paths"] and "/api/v1/compare" in spec["paths"]


def test_upload_and_page_examples(client: TestClient, dataset_id: int) -> None:
    ds = client.get(f"/api/v1/datasets/{dataset_id}").json()
    assert ds["n_examples"] == 12 and ds["answer_kind"] == "number"
    seen, cursor = [], None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/datasets/{dataset_id}/examples", params=params).json()
        seen += [e["ext_id"] for e in page["items"]]
        assert all(len(e["rationales"]) == 3 for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [json.loads(line)["id"] for line in arith_jsonl("train", 12).decode().splitlines()]


@pytest.mark.parametrize(
    ("payload", "needles"),
    [
        (b'{"id": "a", "question": "q", "answer": "1"}\n{not json}\n', ["bad.jsonl:2", "invalid JSON"]),
        (b'{"id": "a", "question": "q"}\n', ["bad.jsonl:1", "answer"]),
        (b'{"id": "a", "question": "q\xff\xfe", "answer": "1"}\n', ["bad.jsonl:1", "UTF-8"]),
        (
            b'{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "r", "answer": "2"}\n',
            ["duplicate id"],
        ),
        (b"", ["no records"]),
    ],
)
def test_malformed_jsonl_is_rejected_and_nothing_stored(
    client: TestClient, payload: bytes, needles: list[str]
) -> None:
    before = (_count(Dataset), _count(Example))
    _assert_error(_upload(client, "bad", payload, "bad.jsonl"), 422, *needles)
    assert (_count(Dataset), _count(Example)) == before


def test_oversize_upload_is_413(client: TestClient) -> None:
    limit = int(os.environ["AICD_MAX_UPLOAD_BYTES"])
    line = json.dumps({"id": "x", "question": "q" * 1000, "answer": "1"}) + "\n"
    data = "".join(line.replace('"x"', f'"x{i}"') for i in range(limit // len(line) + 10)).encode()
    before = _count(Dataset)
    _assert_error(_upload(client, "huge", data), 413, "larger than the limit")
    assert _count(Dataset) == before


def test_duplicate_dataset_name_is_409(client: TestClient, dataset_id: int) -> None:
    _assert_error(_upload(client, "api-arith", arith_jsonl("train", 2)), 409, "already exists")


@pytest.mark.parametrize(
    ("config", "field", "needle"),
    [
        ({"objective": "magic"}, "config.objective", "aicd"),
        ({"n_shots": 4, "weights": [0.1, 1.0]}, "config.weights", "n_shots=4"),
        ({"n_shots": -1}, "config.n_shots", "greater than 0"),
        ({"lr": -1}, "config.lr", "greater than 0"),
        ({"schedule": "custom"}, "config.weights", "weights must be given"),
        ({"output_dir": "/etc"}, "config.output_dir", "chosen by the server"),
        ({"model": "tiny:transformer9000"}, "config.model", "unknown tiny architecture"),
        ({"bogus": 1}, "config.bogus", "Extra inputs"),
    ],
)
def test_bad_run_configs_are_422(
    client: TestClient, dataset_id: int, config: dict, field: str, needle: str
) -> None:
    before = _count(Run)
    detail = _assert_error(
        client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config}), 422, needle
    )
    assert detail["field"] == field
    assert _count(Run) == before


def test_bad_references_and_params(client: TestClient, dataset_id: int) -> None:
    _assert_error(
        client.post("/api/v1/runs", json={"dataset_id": 999999, "config": {}}), 404, "dataset 999999"
    )
    _assert_error(client.post("/api/v1/runs", json={"config": {"dataset": "/etc/passwd"}}), 422, "built-in")
    _assert_error(client.get("/api/v1/runs/424242"), 404, "run 424242")
    _assert_error(client.get("/api/v1/runs", params={"limit": 0}), 422, "limit")
    _assert_error(client.get("/api/v1/runs", params={"cursor": "abc"}), 422, "cursor")
    _assert_error(client.get("/api/v1/runs/notanumber"), 422, "run_id")
    _assert_error(
        client.post("/api/v1/runs", content=b"{broken", headers={"content-type": "application/json"}),
        422,
        "JSON",
    )
    _assert_error(client.post("/api/v1/evaluations", json={"config": {"shots": [0]}}), 422, "config.model")
    _assert_error(client.post("/api/v1/evaluations", json={"run_id": 999999}), 404, "run 999999")
    _assert_error(
        client.post("/api/v1/sweeps", json={"config": {"grid": {"objective": ["aicd", "nope"]}}}),
        422,
        "config.train.objective",
    )
    _assert_error(
        client.post("/api/v1/annotations", json={"dataset_id": dataset_id, "config": {"k": 0}}),
        422,
        "config.k",
    )


def test_queued_run_cancel_and_resume_rules(client: TestClient, dataset_id: int) -> None:
    resp = client.post(
        "/api/v1/runs", json={"name": "api-queued", "dataset_id": dataset_id, "config": tiny_train_config()}
    )
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert run["status"] == "queued" and run["config"]["dataset"] == f"db:{dataset_id}"
    _assert_error(
        client.post("/api/v1/runs", json={"name": "api-queued", "config": {}}), 409, "already exists"
    )
    _assert_error(client.post(f"/api/v1/runs/{run['id']}/resume"), 409, "only failed")
    cancelled = client.post(f"/api/v1/runs/{run['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    _assert_error(client.post(f"/api/v1/runs/{run['id']}/cancel"), 409, "only queued or running")


def test_annotation_key_is_never_returned(client: TestClient, dataset_id: int) -> None:
    secret = "sk-test-very-secret-key"
    resp = client.post(
        "/api/v1/annotations",
        json={
            "dataset_id": dataset_id,
            "config": {
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": secret,
                "teacher": "fake-teacher",
                "k": 1,
            },
        },
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    client.post(f"/api/v1/annotations/{job_id}/cancel")
    for body in (
        resp.text,
        client.get(f"/api/v1/annotations/{job_id}").text,
        client.get("/api/v1/annotations").text,
    ):
        assert secret not in body
    assert resp.json()["has_api_key"] is True and "api_key" not in resp.json()["config"]


def _annotate(client: TestClient, dataset_id: int, base_url: str, **extra: str) -> dict:
    config = {"base_url": base_url, "teacher": "fake-teacher", "k": 1, **extra}
    resp = client.post("/api/v1/annotations", json={"dataset_id": dataset_id, "config": config})
    assert resp.status_code == 202, resp.text
    client.post(f"/api/v1/annotations/{resp.json()['id']}/cancel")  # no worker runs here
    return resp.json()


def _stored_key(job_id: int) -> str | None:
    """The key a job would use: the one stored (encrypted) for the endpoint it refers to."""
    from backend.models import AnnotationJob
    from backend.services import teacher_keys

    with session_scope() as s:
        url = s.get(AnnotationJob, job_id).teacher_key_url
        return teacher_keys.lookup(s, url) if url else None


def test_teacher_key_is_entered_once_per_endpoint_and_never_returned(
    client: TestClient, dataset_id: int
) -> None:
    url, other = "http://127.0.0.1:7/v1", "http://127.0.0.1:8/v1"
    first, second = "sk-first-secret-value", "sk-second-secret-value"
    bodies = []
    job = _annotate(client, dataset_id, url + "/", api_key=first)  # normalised: trailing / dropped
    assert job["has_api_key"] and _stored_key(job["id"]) == first
    listed = client.get("/api/v1/teacher-keys")
    bodies.append(listed.text)
    keys = listed.json()["items"]  # a page, like every list
    assert url in [k["base_url"] for k in keys] and set(keys[0]) == {"base_url", "created_at", "updated_at"}
    later = _annotate(client, dataset_id, url)  # no key sent: the stored one is used
    assert later["has_api_key"] and _stored_key(later["id"]) == first
    elsewhere = _annotate(client, dataset_id, other)  # a key belongs to its endpoint only
    assert not elsewhere["has_api_key"] and _stored_key(elsewhere["id"]) is None

    put = client.put("/api/v1/teacher-keys", json={"base_url": url, "api_key": second})
    assert put.status_code == 200 and put.json()["base_url"] == url
    bodies.append(put.text)
    assert _stored_key(_annotate(client, dataset_id, url)["id"]) == second
    assert (
        _stored_key(later["id"]) == second
    )  # jobs refer to the endpoint's key: a replaced key holds for all

    _assert_error(client.put("/api/v1/teacher-keys", json={"base_url": url, "api_key": " "}), 422, "api_key")
    _assert_error(
        client.put("/api/v1/teacher-keys", json={"base_url": "ftp://x", "api_key": "k"}), 422, "base_url"
    )
    assert client.delete("/api/v1/teacher-keys", params={"base_url": url}).status_code == 204
    _assert_error(client.delete("/api/v1/teacher-keys", params={"base_url": url}), 404, "base_url")
    assert not _annotate(client, dataset_id, url)["has_api_key"]
    assert not client.get(f"/api/v1/annotations/{later['id']}").json()["has_api_key"]  # gone for every job
    bodies += [client.get("/api/v1/annotations").text, client.get("/openapi.json").text]
    assert not any(secret in body for body in bodies for secret in (first, second))


def test_artifact_paths_cannot_escape(client: TestClient) -> None:
    root = os.environ["AICD_ARTIFACT_DIR"]
    os.makedirs(os.path.join(root, "evaluations"), exist_ok=True)
    with open(os.path.join(root, "evaluations", "ok.txt"), "w") as fh:
        fh.write("fine")
    assert client.get("/api/v1/files/evaluations/ok.txt").text == "fine"
    for bad in (
        "%2e%2e/%2e%2e/etc/passwd",
        "evaluations/%2e%2e/%2e%2e/%2e%2e/etc/hostname",
        "..%2f..%2fetc%2fpasswd",
    ):
        resp = client.get(f"/api/v1/files/{bad}")
        assert resp.status_code in (400, 404), (bad, resp.status_code)
        assert "root:" not in resp.text
    os.symlink("/etc/passwd", os.path.join(root, "evaluations", "link"))
    _assert_error(client.get("/api/v1/files/evaluations/link"), 400, "escapes")


def test_token_required_when_configured(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.core.settings import get_settings

    monkeypatch.setenv("AICD_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    try:
        _assert_error(client.post("/api/v1/runs", json={"config": {}}), 401, "bearer token")
        _assert_error(client.get("/api/v1/runs"), 401, "bearer token")
        _assert_error(
            client.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"}), 401, "bearer token"
        )
        assert client.get("/api/v1/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/openapi.json").status_code == 200
    finally:
        monkeypatch.delenv("AICD_API_TOKEN")
        get_settings.cache_clear()


def _seed_evaluation(name: str, answers: dict[str, str], gold: dict[str, str]) -> int:
    """An evaluation with one generation per question at (shots=0, seed=0), written like a worker would."""
    from worker import store

    with session_scope() as s:
        run = Run(name=name, config={}, run_dir=f"runs/{name}", status="succeeded")
        s.add(run)
        s.flush()
        ev = Evaluation(run_id=run.id, config={}, output_dir=f"evaluations/{name}", status="succeeded")
        s.add(ev)
        s.flush()

        class Rec:
            def __init__(self, qid: str):
                self.example_id, self.question, self.gold, self.shots, self.seed = (
                    qid,
                    f"Q {qid}?",
                    gold[qid],
                    0,
                    0,
                )
                self.shot_ids, self.prompt = [], f"Question: Q {qid}?\nAnswer:"
                self.generation = f"... So, the answer is {answers[qid]}."
                self.extracted, self.correct = answers[qid], answers[qid] == gold[qid]

        store.save_generations(s, ev.id, [Rec(q) for q in answers])
        store.save_generations(s, ev.id, [Rec(q) for q in answers])  # a redelivered batch: no duplicates
        return run.id


def test_side_by_side_and_disagreements(client: TestClient) -> None:
    gold = {f"q{i:02d}": str(i) for i in range(10)}
    a = _seed_evaluation("cmp-a", dict(gold), gold)
    b = _seed_evaluation("cmp-b", {**gold, "q03": "99", "q07": "70"}, gold)
    c = _seed_evaluation("cmp-c", {**gold, "q07": "70"}, gold)
    with session_scope() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(Generation).join(Evaluation).where(Evaluation.run_id == a)
            )
            == 10
        )
    params = {"run_id": [a, b, c], "limit": 4}
    first = client.get("/api/v1/compare", params=params).json()
    assert [r["example_id"] for r in first["items"]] == ["q00", "q01", "q02", "q03"]
    rows, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = client.get("/api/v1/compare", params={**params, "cursor": cursor}).json()
        rows += page["items"]
        cursor = page["next_cursor"]
    assert len(rows) == 10
    q3 = next(r for r in rows if r["example_id"] == "q03")
    assert q3["gold"] == "3" and not q3["agree"]
    assert [(e["run_name"], e["extracted"], e["correct"]) for e in q3["entries"]] == [
        ("cmp-a", "3", True),
        ("cmp-b", "99", False),
        ("cmp-c", "3", True),
    ]
    dis = client.get("/api/v1/compare", params={**params, "disagree": True}).json()
    assert [r["example_id"] for r in dis["items"]] == ["q03", "q07"]
    one = client.get("/api/v1/compare/q07", params={"run_id": [a, b, c]}).json()
    assert [e["extracted"] for e in one["entries"]] == ["7", "70", "70"]
    slash = _seed_evaluation("cmp-slash", {"set/train/1": "1"}, {"set/train/1": "1"})
    assert client.get("/api/v1/compare/set/train/1", params={"run_id": [slash]}).json()["gold"] == "1"
    _assert_error(client.get("/api/v1/compare/nope", params={"run_id": [a, b]}), 404, "nope")
    _assert_error(client.get("/api/v1/compare", params={"run_id": [999999]}), 404, "run 999999")


def test_metric_points_are_idempotent(client: TestClient) -> None:
    from worker import store

    with session_scope() as s:
        run = Run(name="metrics-idem", config={}, run_dir="runs/metrics-idem")
        s.add(run)
        s.flush()
        for step in (1, 2, 3, 2, 3):  # steps 2-3 logged again after a resume
            store.save_metric(s, run.id, step, {"step": step, "loss": float(step), "lr": 0.1})
        store.drop_metrics_after(s, run.id, 2)
        run_id = run.id
    pts = client.get(f"/api/v1/runs/{run_id}/metrics").json()["items"]
    assert [p["step"] for p in pts] == [1, 2]
    with session_scope() as s:
        assert (
            s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.run_id == run_id)) == 2
        )


def _seed_listed_runs(tag: str) -> int:
    """A sweep of five runs in every state a list shows: configs, metrics, errors, timestamps and nulls."""
    now = datetime.now(UTC)
    with session_scope() as s:
        sweep = Sweep(name=f"list-{tag}", config={"grid": {"seed": [0, 1, 2, 3, 4]}})
        s.add(sweep)
        s.flush()
        for i in range(5):
            config = {
                "lr": 7e-6,
                "weights": [0.1, 1.0],
                "template": {"separator": "\n\n"},
                "seed": i,
                "lora": None,
            }
            s.add(
                Run(
                    name=f"list-{tag}-{i}",
                    sweep_id=sweep.id,
                    config=config,
                    run_dir=f"runs/list-{tag}-{i}",
                    status="running" if i % 2 else "succeeded",
                    step=i,
                    total_steps=10,
                    checkpoint_step=i or None,
                    progress_done=i,
                    progress_total=10,
                    last_metrics={"loss": 1.25 + i, "lr": 7e-6, "epoch": 0.5} if i else None,
                    error="boom: ü ✓" if i == 3 else None,
                    worker="worker-1" if i else None,
                    heartbeat_at=now if i else None,
                    started_at=now if i else None,
                    finished_at=now if i % 2 == 0 else None,
                )
            )
        return sweep.id


def test_listed_runs_are_plain_rows_and_read_as_each_run_does(any_db_client: TestClient) -> None:
    """GET /runs builds no ORM instance per run (its CPU per page is the API's bottleneck), and every item is
    exactly what GET /runs/{id} returns, on PostgreSQL and SQLite; pages and filters hold."""
    client = any_db_client
    tag = uuid.uuid4().hex[:8]
    sweep_id = _seed_listed_runs(tag)
    loads: list[Run] = []

    def on_load(target: Run, _context: object) -> None:
        loads.append(target)

    event.listen(Run, "load", on_load)
    try:
        items, cursor = [], None
        while True:
            params = {"sweep_id": sweep_id, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/runs", params=params).json()
            items += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        running = client.get("/api/v1/runs", params={"sweep_id": sweep_id, "status": "running"}).json()
    finally:
        event.remove(Run, "load", on_load)
    assert not loads
    assert [r["name"] for r in items] == [f"list-{tag}-{i}" for i in (4, 3, 2, 1, 0)]
    assert [r["id"] for r in running["items"]] == [r["id"] for r in items if r["status"] == "running"]
    for item in items:
        assert item == client.get(f"/api/v1/runs/{item['id']}").json()


def test_hostile_input_never_gives_500(any_db_client: TestClient) -> None:
    client = any_db_client
    resp = _upload(client, f"hostile-{uuid.uuid4().hex[:6]}", arith_jsonl("train", 4))
    assert resp.status_code == 201, resp.text
    dataset_id = resp.json()["id"]
    dots = client.post(  # a file named ".." is only a name (it was written over the temporary directory)
        "/api/v1/datasets",
        files={"file": ("..", arith_jsonl("train", 2))},
        data={"name": f"dots-{uuid.uuid4().hex[:6]}"},
    )
    assert dots.status_code == 201 and dots.json()["source"] == "upload:upload.jsonl", dots.text
    big = "9" * 30
    huge = 2**63  # one past the largest id either database can hold
    requests = [
        ("GET", f"/api/v1/runs/{big}", None),
        ("GET", "/api/v1/runs", {"params": {"cursor": big}}),
        ("GET", f"/api/v1/evaluations/{2**40}/generations", None),
        ("GET", "/api/v1/compare", {"params": {"run_id": [2**40]}}),
        ("GET", "/api/v1/compare", {"params": {"run_id": [1], "shots": 2**40}}),
        ("GET", "/api/v1/compare", {"params": {"run_id": [1], "cursor": "a\x00b"}}),
        ("GET", "/api/v1/compare/a%00b", {"params": {"run_id": [1]}}),
        ("POST", "/api/v1/runs", {"json": {"dataset_id": 2**40, "config": {}}}),
        ("POST", "/api/v1/runs", {"json": {"dataset_id": dataset_id, "config": {"max_steps": 2**70}}}),
        ("POST", "/api/v1/runs", {"json": {"config": None}}),
        ("POST", "/api/v1/runs", {"json": [1, 2]}),
        (
            "POST",
            "/api/v1/annotations",
            {"json": {"dataset_id": dataset_id, "config": {"teacher": "a\x00b"}}},
        ),
        (
            "POST",
            "/api/v1/datasets",
            {
                "files": {"file": ("n.jsonl", b'{"id":"a","question":"q\\u0000","answer":"1"}\n')},
                "data": {"name": "nul"},
            },
        ),
        ("POST", "/api/v1/datasets", {"data": {"name": "nofile"}}),
        ("POST", "/api/v1/datasets/import", {"json": {"name": "x", "source": "nope"}}),
        ("DELETE", f"/api/v1/datasets/{2**40}", None),
        ("GET", "/api/v1/artifacts/1/download", None),
        ("GET", "/api/v1/files/" + "a" * 5000, None),
        # a sweep's shared evaluation fields of the wrong type (was a TypeError)
        ("POST", "/api/v1/sweeps", {"json": {"config": {"eval": {"shots_dataset": ["a", "b"]}}}}),
        ("POST", "/api/v1/sweeps", {"json": {"config": {"eval": {"shots_dataset": {"a": 1}}}}}),
        ("POST", "/api/v1/sweeps", {"json": {"config": {"eval_datasets": [f"db:{big}"]}}}),
        ("POST", "/api/v1/runs", {"json": {"config": {"dataset": f"db:{big}"}}}),
        # ids past 64 bits in paths, queries and bodies (SQLite overflowed with a 500)
        *[
            ("GET", f"/api/v1/{kind}/{huge}", None)
            for kind in ("runs", "evaluations", "sweeps", "annotations", "datasets")
        ],
        ("GET", f"/api/v1/runs/{huge}/metrics", None),
        ("POST", f"/api/v1/runs/{huge}/resume", None),
        ("POST", f"/api/v1/sweeps/{huge}/cancel", None),
        ("GET", f"/api/v1/artifacts/{huge}/download", None),
        ("GET", f"/api/v1/datasets/{huge}/examples", None),
        ("GET", f"/api/v1/datasets/{huge}/rationales", None),
        ("GET", f"/api/v1/datasets/{dataset_id}/rationales", {"params": {"example_id": huge}}),
        ("GET", f"/api/v1/preview/datasets/{huge}/stats", None),
        ("GET", "/api/v1/runs", {"params": {"sweep_id": huge}}),
        ("GET", "/api/v1/runs", {"params": {"status": "a\x00b"}}),
        ("GET", "/api/v1/evaluations", {"params": {"run_id": huge}}),
        ("GET", "/api/v1/annotations", {"params": {"dataset_id": huge}}),
        ("GET", "/api/v1/artifacts", {"params": {"sweep_id": huge}}),
        ("GET", "/api/v1/generations", {"params": {"evaluation_id": huge}}),
        ("GET", f"/api/v1/evaluations/{huge}/generations", {"params": {"shots": 2**70}}),
        ("GET", "/api/v1/compare", {"params": {"run_id": [huge]}}),
        ("GET", "/api/v1/compare", {"params": {"evaluation_id": [huge], "seed": 2**70}}),
        ("GET", "/api/v1/compare/q1", {"params": {"run_id": [huge]}}),
        ("POST", "/api/v1/runs", {"json": {"dataset_id": huge, "config": {}}}),
        ("POST", "/api/v1/evaluations", {"json": {"run_id": huge}}),
        ("POST", "/api/v1/evaluations", {"json": {"dataset_id": huge, "config": {"model": "gpt2"}}}),
        ("POST", "/api/v1/evaluations", {"json": {"shots_dataset_id": huge, "config": {"model": "gpt2"}}}),
        ("POST", "/api/v1/annotations", {"json": {"dataset_id": huge}}),
        ("POST", "/api/v1/sweeps", {"json": {"dataset_id": huge}}),
        ("POST", "/api/v1/sweeps", {"json": {"eval_dataset_ids": [huge]}}),
        ("POST", "/api/v1/preview/episode", {"json": {"dataset_id": huge}}),
        ("POST", "/api/v1/preview/prompt", {"json": {"dataset_id": huge, "prompt_template": "{question}"}}),
        (
            "POST",
            "/api/v1/preview/prompt",
            {"json": {"dataset_id": dataset_id, "prompt_template": "{question} {answer}", "index": 2**70}},
        ),
        ("GET", "/api/v1/preview/configs", {"params": {"cursor": big}}),
        ("DELETE", "/api/v1/teacher-keys", {"params": {"base_url": "http://x\x00"}}),
        ("PUT", "/api/v1/teacher-keys", {"json": {"base_url": "http://x", "api_key": "k\x00"}}),
    ]
    for method, url, kwargs in requests:
        resp = client.request(method, url, **(kwargs or {}))
        assert 400 <= resp.status_code < 500, (method, url, resp.status_code, resp.text)
        assert resp.json()["detail"]["message"], (url, resp.text)


# ------------------------------------------------------------------------------------------ live panels' reads


def _seed_live_sweep(name: str, points: int) -> tuple[int, list[int], list[int]]:
    """A running sweep of two runs, the first with `points` metric points and two evaluations, written as the
    workers write them: (sweep id, run ids, evaluation ids)."""
    with session_scope() as s:
        sweep = Sweep(name=name, config={}, status="running", table_rows=[{"objective": "aicd", "acc": 0.5}])
        s.add(sweep)
        s.flush()
        members = [
            Run(name=f"{name}.{i}", sweep_id=sweep.id, config={}, run_dir=f"sweeps/{name}/{i}", step=step)
            for i, step in ((0, points), (1, 0))
        ]
        s.add_all(members)
        s.flush()
        s.add_all(
            MetricPoint(run_id=members[0].id, step=i, loss=1 / i, values={"loss": 1 / i})
            for i in range(1, points + 1)
        )
        evals = [
            Evaluation(run_id=members[0].id, config={}, output_dir=f"evaluations/{name}-{i}") for i in (0, 1)
        ]
        s.add_all(evals)
        s.flush()
        return sweep.id, [r.id for r in members], [e.id for e in evals]


def test_run_live_is_the_run_its_new_metrics_evaluations_and_sweep_in_one_read(client: TestClient) -> None:
    page_max = 500  # AICD_PAGE_MAX's default: the bound of GET /runs/{id}/metrics
    sweep_id, (run_id, _), eval_ids = _seed_live_sweep("live-sweep", page_max + 20)
    view = client.get(f"/api/v1/runs/{run_id}/live").json()
    assert view["run"] == client.get(f"/api/v1/runs/{run_id}").json()
    metrics = view["metrics"]
    assert [p["step"] for p in metrics["items"]] == list(range(1, page_max + 1))
    assert metrics["next_cursor"] == str(page_max) and metrics["limit"] == page_max
    assert (
        metrics["items"]
        == client.get(f"/api/v1/runs/{run_id}/metrics", params={"limit": page_max}).json()["items"]
    )
    assert [e["id"] for e in view["evaluations"]] == sorted(eval_ids, reverse=True)
    assert view["evaluations"] == client.get("/api/v1/evaluations", params={"run_id": run_id}).json()["items"]
    assert view["sweep"]["id"] == sweep_id and view["sweep"]["status"] == "running"
    assert view["sweep"]["cancel_requested"] is False and "progress_total" in view["sweep"]

    later = client.get(f"/api/v1/runs/{run_id}/live", params={"metrics_after": page_max}).json()["metrics"]
    assert [p["step"] for p in later["items"]] == list(range(page_max + 1, page_max + 21))
    assert later["next_cursor"] is None
    assert (
        client.get(f"/api/v1/runs/{run_id}/live", params={"metrics_after": 10**6}).json()["metrics"]["items"]
        == []
    )


def test_run_live_of_a_standalone_run_without_metrics(client: TestClient, dataset_id: int) -> None:
    run = client.post(
        "/api/v1/runs", json={"name": "live-alone", "dataset_id": dataset_id, "config": tiny_train_config()}
    )
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    client.post(f"/api/v1/runs/{run_id}/cancel")  # no worker here: keep it from waiting in the queue
    view = client.get(f"/api/v1/runs/{run_id}/live").json()
    assert view["run"]["name"] == "live-alone" and view["run"]["status"] == "cancelled"
    assert view["metrics"]["items"] == [] and view["metrics"]["next_cursor"] is None
    assert view["evaluations"] == [] and view["sweep"] is None


def test_sweep_live_is_the_sweep_its_table_and_its_runs_in_one_read(client: TestClient) -> None:
    sweep_id, run_ids, _ = _seed_live_sweep("live-sweep-b", 3)
    view = client.get(f"/api/v1/sweeps/{sweep_id}/live").json()
    assert view["sweep"] == client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert view["table"] == client.get(f"/api/v1/sweeps/{sweep_id}/table").json()
    assert sorted(view["table"]["columns"]) == ["acc", "objective"]  # (JSONB keeps keys in its own order)
    assert [r["id"] for r in view["runs"]] == run_ids  # launch order
    assert [(r["name"], r["step"], r["status"]) for r in view["runs"]] == [
        ("live-sweep-b.0", 3, "queued"),
        ("live-sweep-b.1", 0, "queued"),
    ]


def test_every_live_read_brings_the_sweeps_the_sidebar_follows_as_status_does(
    client: TestClient, dataset_id: int
) -> None:
    """A page's live panel asks for the sidebar's sweeps too, so the sidebar needs no read of its own."""
    followed, _, _ = _seed_live_sweep("live-followed", 2)
    other, (run_id, _), _ = _seed_live_sweep("live-shown", 1)
    job_id = _annotate(client, dataset_id, "http://127.0.0.1:9/v1")["id"]
    asked = {"sweep": [followed, 10**12, followed]}  # an unknown id is left out, a repeated one sent once
    expected = client.get("/api/v1/status", params=asked).json()["sweeps"]
    assert [s["id"] for s in expected] == [followed] and len(expected[0]["runs"]) == 2
    for url in (
        f"/api/v1/runs/{run_id}/live",
        f"/api/v1/sweeps/{other}/live",
        f"/api/v1/annotations/{job_id}/live",
    ):
        assert client.get(url, params=asked).json()["followed"] == expected, url
        assert client.get(url).json()["followed"] == [], url
    ann = client.get(f"/api/v1/annotations/{job_id}/live").json()["job"]
    assert ann == client.get(f"/api/v1/annotations/{job_id}").json()
    too_many = {"sweep": list(range(1, 22))}
    for url in (f"/api/v1/runs/{run_id}/live", f"/api/v1/annotations/{job_id}/live", "/api/v1/status"):
        assert _assert_error(client.get(url, params=too_many), 422)["field"] == "sweep", url


@pytest.mark.parametrize(
    ("url", "params", "status", "field"),
    [
        ("/api/v1/annotations/{huge}/live", {}, 404, "annotation_id"),
        ("/api/v1/runs/{huge}/live", {}, 404, "run_id"),
        ("/api/v1/sweeps/{huge}/live", {}, 404, "sweep_id"),
        ("/api/v1/runs/{huge}/live", {"metrics_after": -1}, 422, "metrics_after"),
        ("/api/v1/runs/{huge}/live", {"metrics_after": 2**40}, 422, "metrics_after"),
        ("/api/v1/runs/0/live", {}, 422, "run_id"),
    ],
)
def test_live_reads_name_what_is_wrong(
    client: TestClient, url: str, params: dict, status: int, field: str
) -> None:
    detail = _assert_error(client.get(url.format(huge=10**12), params=params), status)
    assert detail["field"] == field, detail
