"""End to end through HTTP with real PostgreSQL, Redis and `celery worker` processes (docker-compose commands):
dataset → annotate (local fake teacher) → train → evaluate → side-by-side; cancel and resume."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import TERMINAL, TINY_MODEL, Worker, arith_jsonl, tiny_train_config, wait_for
from tests.support.fake_teacher import start_fake_teacher

pytestmark = pytest.mark.slow
STEPS = 200  # long enough that a cancel (polled every 0.2 s) always lands mid-run, even on a fast machine


@pytest.fixture(scope="module")
def gpu_worker(stack_env: dict[str, str], worker_logs) -> Iterator[Worker]:
    w = Worker("worker-gpu", stack_env, worker_logs).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def teacher() -> Iterator[str]:
    base_url, handle = start_fake_teacher(latency=0.02)
    yield base_url
    handle.close()


def _questions_only(data: bytes) -> bytes:
    rows = [json.loads(line) for line in data.decode().splitlines()]
    return "".join(json.dumps({k: r[k] for k in ("id", "question", "answer")}) + "\n" for r in rows).encode()


def _watch(client: TestClient, url: str, timeout: float = 300) -> tuple[dict, list[dict]]:
    """Poll until terminal; return the final body and every body seen (to check transitions and progress)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        seen.append(body)
        if body["status"] in TERMINAL:
            return body, seen
        time.sleep(0.1)
    raise AssertionError(f"{url} did not finish: {seen[-1]}")


def _watch_run_and_metrics(
    client: TestClient, run_id: int, timeout: float = 300
) -> tuple[dict, list[dict], list[int]]:
    """Like `_watch`, and while the run is running read its metric points: how many were served each time
    the run was still running after the read."""
    seen: list[dict] = []
    live: list[int] = []
    url = f"/api/v1/runs/{run_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        seen.append(body)
        if body["status"] in TERMINAL:
            return body, seen, live
        if body["status"] == "running":
            points = client.get(f"{url}/metrics", params={"limit": 500}).json()["items"]
            if client.get(url).json()["status"] == "running":
                live.append(len(points))
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish: {seen[-1]}")


def _statuses(seen: list[dict]) -> list[str]:
    out: list[str] = []
    for body in seen:
        if not out or out[-1] != body["status"]:
            out.append(body["status"])
    return out


def _steps(client: TestClient, run_id: int) -> list[dict]:
    points, cursor = [], None
    while True:
        page = client.get(
            f"/api/v1/runs/{run_id}/metrics", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
        ).json()
        points += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return points


def test_pipeline_end_to_end(
    client: TestClient, cpu_worker: Worker, gpu_worker: Worker, teacher: str
) -> None:
    # 1. dataset (questions and gold answers only) and annotation by the fake teacher
    resp = client.post(
        "/api/v1/datasets",
        files={"file": ("e2e.jsonl", _questions_only(arith_jsonl("train", 16)))},
        data={"name": "e2e-train"},
    )
    assert resp.status_code == 201, resp.text
    train_id = resp.json()["id"]
    resp = client.post(
        "/api/v1/annotations",
        json={
            "dataset_id": train_id,
            "config": {
                "base_url": teacher,
                "api_key": "sk-fake",
                "teacher": "fake-teacher",
                "k": 2,
                "concurrency": 4,
            },
        },
    )
    assert resp.status_code == 202, resp.text
    job, seen = _watch(client, f"/api/v1/annotations/{resp.json()['id']}")
    assert job["status"] == "succeeded", (job, cpu_worker.tail())
    assert _statuses(seen)[-1] == "succeeded" and job["report"]["ok"] == 32
    assert job["worker"].startswith("cpu@"), job["worker"]  # annotation runs on the CPU queue's worker
    examples = client.get(f"/api/v1/datasets/{train_id}/examples", params={"limit": 100}).json()["items"]
    kept = sum(len(e["rationales"]) for e in examples)
    assert kept == job["report"]["rationales_stored"] > 0
    assert all(
        r["source"] == "teacher" and r["model"] == "fake-teacher" for e in examples for r in e["rationales"]
    )

    # 2. train: queued → running → succeeded, metric points arriving while it runs
    test_id = client.post(
        "/api/v1/datasets", files={"file": ("t.jsonl", arith_jsonl("test", 8))}, data={"name": "e2e-test"}
    ).json()["id"]
    run_ids = []
    for name, objective in (("e2e-aicd", "aicd"), ("e2e-nocot", "nocot")):
        resp = client.post(
            "/api/v1/runs",
            json={
                "name": name,
                "dataset_id": train_id,
                "config": {
                    **tiny_train_config(objective=objective, max_steps=30),
                    # accuracy on the stored test set while training (the Runs page's accuracy curve)
                    **{"eval_every": 15, "eval_dataset": f"db:{test_id}", "eval_limit": 4},
                    "eval_max_new_tokens": 16,
                },
            },
        )
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "queued"
        run_ids.append(resp.json()["id"])
    run, seen, live = _watch_run_and_metrics(client, run_ids[0])
    assert run["status"] == "succeeded", (run, gpu_worker.tail())
    assert run["worker"].startswith("gpu@"), run["worker"]  # training runs on the GPU queue's worker
    assert any(n > 0 for n in live), f"no metric points were served while the run was running: {live}"
    assert _statuses(seen) in (["queued", "running", "succeeded"], ["running", "succeeded"])
    assert any(b["status"] == "running" and 0 < b["step"] < b["total_steps"] for b in seen), (
        "no progress seen"
    )
    assert run["step"] == run["total_steps"] == 30
    points = _steps(client, run_ids[0])
    assert [p["step"] for p in points] == list(range(1, 31))
    assert all(p["loss"] is not None and p["lr"] is not None for p in points)
    scored = {p["step"]: p["values"] for p in points if "eval_accuracy" in p["values"]}
    assert sorted(scored) == [15, 30], scored
    assert all(v["eval_n"] == 4 and v["eval_held_out"] is True for v in scored.values())
    arts = client.get("/api/v1/artifacts", params={"run_id": run_ids[0], "limit": 100}).json()["items"]
    assert any(a["path"].endswith("final/model.safetensors") for a in arts)
    assert client.get(f"/api/v1/artifacts/{arts[0]['id']}/download").status_code == 200
    assert _watch(client, f"/api/v1/runs/{run_ids[1]}")[0]["status"] == "succeeded"

    # 3. evaluate both runs (0 and 1 shot) and page through every chain
    eval_ids = []
    for rid in run_ids:
        resp = client.post(
            "/api/v1/evaluations",
            json={
                "run_id": rid,
                "dataset_id": test_id,
                "shots_dataset_id": train_id,
                "config": {"shots": [0, 1], "seeds": [0], "max_new_tokens": 24, "batch_size": 8},
            },
        )
        assert resp.status_code == 202, resp.text
        eval_ids.append(resp.json()["id"])
    for eid in eval_ids:
        ev, seen = _watch(client, f"/api/v1/evaluations/{eid}")
        assert ev["status"] == "succeeded", (ev, gpu_worker.tail())
        assert ev["worker"].startswith("gpu@"), ev["worker"]
        assert [r["shots"] for r in ev["rows"]] == [0, 1] and all(r["n"] == 8 for r in ev["rows"])
        gens, cursor = [], None
        while True:
            page = client.get(
                f"/api/v1/evaluations/{eid}/generations",
                params={"limit": 5, **({"cursor": cursor} if cursor else {})},
            ).json()
            gens += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(gens) == 16 == len({(g["example_id"], g["shots"], g["seed"]) for g in gens})
        acc = sum(g["correct"] for g in gens if g["shots"] == 0) / 8
        assert acc == ev["rows"][0]["accuracy"]

    # 4. side-by-side view of the two runs, and only the disagreements
    full = client.get("/api/v1/compare", params={"run_id": run_ids, "shots": 1, "limit": 50}).json()["items"]
    assert len(full) == 8
    for row in full:
        assert [e["run_name"] for e in row["entries"]] == ["e2e-aicd", "e2e-nocot"]
        assert all(e["generation"] is not None for e in row["entries"])
    dis = client.get(
        "/api/v1/compare", params={"run_id": run_ids, "shots": 1, "disagree": True, "limit": 50}
    ).json()["items"]
    assert [r["example_id"] for r in dis] == [r["example_id"] for r in full if not r["agree"]]
    one = client.get(
        f"/api/v1/compare/{full[0]['example_id']}", params={"run_id": run_ids, "shots": 1}
    ).json()
    assert one == full[0]


def test_cancel_then_resume_finishes_at_same_step(client: TestClient, gpu_worker: Worker) -> None:
    ds = client.post(
        "/api/v1/datasets", files={"file": ("c.jsonl", arith_jsonl("train", 16))}, data={"name": "e2e-cancel"}
    ).json()["id"]
    cfg = tiny_train_config(max_steps=STEPS, save_every=5)
    ref_id = client.post(
        "/api/v1/runs", json={"name": "e2e-uninterrupted", "dataset_id": ds, "config": cfg}
    ).json()["id"]
    run_id = client.post("/api/v1/runs", json={"name": "e2e-cancel", "dataset_id": ds, "config": cfg}).json()[
        "id"
    ]
    ref = _watch(client, f"/api/v1/runs/{ref_id}")[0]
    assert ref["status"] == "succeeded" and ref["step"] == STEPS
    wait_for(
        client,
        f"/api/v1/runs/{run_id}",
        lambda b: b["step"] >= 8 or b["status"] in TERMINAL,
        interval=0.05,
        what="training progress",
    )
    asked = time.monotonic()
    assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    run = wait_for(
        client,
        f"/api/v1/runs/{run_id}",
        lambda b: b["status"] in TERMINAL,
        timeout=10,
        interval=0.1,
        what="cancellation within 10 s",
    )
    stopped_after = time.monotonic() - asked
    assert run["status"] == "cancelled", run
    assert run["step"] < STEPS and run["checkpoint_step"] == run["step"], run
    ckpt = run["checkpoint_step"]
    print(f"cancel honoured in {stopped_after:.1f}s at step {ckpt}")

    resumed_at = datetime.now(UTC)
    resp = client.post(f"/api/v1/runs/{run_id}/resume")
    assert resp.status_code == 202 and resp.json()["attempt"] == 2
    run = _watch(client, f"/api/v1/runs/{run_id}")[0]
    assert run["status"] == "succeeded", (run, gpu_worker.tail())
    assert run["step"] == run["total_steps"] == ref["total_steps"] == STEPS
    points = _steps(client, run_id)
    assert [p["step"] for p in points] == list(range(1, STEPS + 1))
    assert_resumed_from(run_id, ckpt, resumed_at)
    # same data order, optimizer and RNG: the resumed run retraces the uninterrupted one
    ref_points = _steps(client, ref_id)
    assert [p["loss"] for p in points] == pytest.approx([p["loss"] for p in ref_points], rel=1e-4)


def assert_resumed_from(run_id: int, ckpt: int, resumed_at: datetime) -> None:
    """Points up to the checkpoint were kept from the first attempt; later ones were written after resuming."""
    from sqlalchemy import select

    from backend.db import session_scope
    from backend.models import MetricPoint

    with session_scope() as s:
        rows = s.execute(
            select(MetricPoint.step, MetricPoint.created_at).where(MetricPoint.run_id == run_id)
        ).all()
    assert ckpt > 0
    assert all(created < resumed_at for step, created in rows if step <= ckpt)
    assert all(created > resumed_at for step, created in rows if step > ckpt)


def test_sweep_runs_grid_and_fills_table(client: TestClient, gpu_worker: Worker) -> None:
    train_id = client.post(
        "/api/v1/datasets",
        files={"file": ("s.jsonl", arith_jsonl("train", 12))},
        data={"name": "sweep-train"},
    ).json()["id"]
    test_id = client.post(
        "/api/v1/datasets", files={"file": ("st.jsonl", arith_jsonl("test", 6))}, data={"name": "sweep-test"}
    ).json()["id"]
    bad = client.post(
        "/api/v1/sweeps",
        json={"name": "bad-sweep", "dataset_id": train_id, "config": {"grid": {"n_shots": [2, -1]}}},
    )
    assert bad.status_code == 422 and "n_shots" in bad.json()["detail"]["message"]
    eval_cfg = {"shots": [0, 1], "seeds": [0], "max_new_tokens": 8, "batch_size": 8}
    bad = client.post(
        "/api/v1/sweeps",
        json={
            "name": "bad-sweep",
            "dataset_id": train_id,
            "config": {"grid": {"objective": ["aicd"]}, "eval": {**eval_cfg, "shots_dataset": "db:999999"}},
        },
    )
    assert bad.status_code == 404 and bad.json()["detail"]["field"] == "config.eval.shots_dataset", bad.text
    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": "e2e-sweep",
            "dataset_id": train_id,
            "eval_dataset_ids": [test_id],
            "config": {
                "train": tiny_train_config(max_steps=3),
                "grid": {"objective": ["aicd", "nocot"]},
                "eval": {**eval_cfg, "shots_dataset": f"db:{train_id}"},
            },
        },
    )
    assert resp.status_code == 202, resp.text
    sweep, seen = _watch(client, f"/api/v1/sweeps/{resp.json()['id']}")
    assert sweep["status"] == "succeeded", (sweep, gpu_worker.tail())
    assert sweep["progress_done"] == sweep["progress_total"] == 2
    table = client.get(f"/api/v1/sweeps/{sweep['id']}/table").json()
    assert {(r["objective"], r["shots"]) for r in table["rows"]} == {
        (o, k) for o in ("aicd", "nocot") for k in (0, 1)
    }
    assert {"objective", "shots", "mean", "std"} <= set(table["columns"])
    runs = client.get("/api/v1/runs", params={"sweep_id": sweep["id"]}).json()["items"]
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]
    assert {r["dataset_id"] for r in runs} == {train_id}  # mirrored runs keep the stored dataset they used
    evals = [
        e for r in runs for e in client.get("/api/v1/evaluations", params={"run_id": r["id"]}).json()["items"]
    ]
    assert len(evals) == 2 and {e["dataset_id"] for e in evals} == {test_id}
    assert all(
        e["config"]["shots_dataset"].endswith("sweep-train.jsonl") for e in evals
    )  # demos from train data
    assert all([p["step"] for p in _steps(client, r["id"])] == [1, 2, 3] for r in runs)
    rows = client.get("/api/v1/compare", params={"run_id": [r["id"] for r in runs], "shots": 1}).json()[
        "items"
    ]
    assert len(rows) == 6 and all(len(r["entries"]) == 2 for r in rows)
    arts = client.get("/api/v1/artifacts", params={"sweep_id": sweep["id"]}).json()["items"]
    assert any(a["path"].endswith("results.md") for a in arts)


def test_cancel_a_running_evaluation_and_a_running_sweep(client: TestClient, gpu_worker: Worker) -> None:
    train_id = client.post(
        "/api/v1/datasets", files={"file": ("ce.jsonl", arith_jsonl("train", 16))}, data={"name": "e2e-ce"}
    ).json()["id"]
    test_id = client.post(
        "/api/v1/datasets", files={"file": ("cet.jsonl", arith_jsonl("test", 8))}, data={"name": "e2e-ce-t"}
    ).json()["id"]
    total = 8 * 3 * 3
    ev = client.post(
        "/api/v1/evaluations",
        json={
            "dataset_id": test_id,
            "shots_dataset_id": train_id,
            "config": {
                "model": TINY_MODEL,
                "shots": [0, 1, 2],
                "seeds": [0, 1, 2],
                "batch_size": 1,
                "max_new_tokens": 48,
            },
        },
    ).json()
    url = f"/api/v1/evaluations/{ev['id']}"
    running = wait_for(
        client,
        url,
        lambda b: b["progress_done"] >= 2 or b["status"] in TERMINAL,
        interval=0.05,
        what="evaluation progress",
    )
    assert running["status"] == "running", running
    asked = time.monotonic()
    assert client.post(f"{url}/cancel").status_code == 200
    done = wait_for(client, url, lambda b: b["status"] in TERMINAL, timeout=10, interval=0.1, what="cancel")
    assert done["status"] == "cancelled" and done["error"] == "cancelled by request", done
    stored = client.get(f"{url}/generations", params={"limit": 500}).json()["items"]
    assert 2 <= len(stored) < total and done["progress_done"] < total
    print(f"evaluation cancel honoured in {time.monotonic() - asked:.1f}s after {len(stored)} chains")

    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": "e2e-sweep-cancel",
            "dataset_id": train_id,
            "config": {
                "train": tiny_train_config(max_steps=STEPS),
                "grid": {"objective": ["aicd", "nocot"]},
                "eval": {"shots": [0], "seeds": [0], "max_new_tokens": 8},
            },
        },
    )
    assert resp.status_code == 202, resp.text
    sweep_url = f"/api/v1/sweeps/{resp.json()['id']}"

    def first_run_training(_: dict) -> bool:
        runs = client.get("/api/v1/runs", params={"sweep_id": resp.json()["id"]}).json()["items"]
        return any(r["status"] == "running" and r["step"] >= 3 for r in runs)

    wait_for(client, sweep_url, first_run_training, interval=0.05, what="the sweep's first run training")
    assert client.post(f"{sweep_url}/cancel").status_code == 200
    sweep = wait_for(
        client, sweep_url, lambda b: b["status"] in TERMINAL, timeout=10, interval=0.1, what="sweep cancel"
    )
    assert sweep["status"] == "cancelled", (sweep, gpu_worker.tail())
    runs = client.get("/api/v1/runs", params={"sweep_id": sweep["id"]}).json()["items"]
    stopped = [r for r in runs if r["status"] == "cancelled"]
    assert len(stopped) == len(runs) == 2, runs
    started = [r for r in stopped if r["step"] > 0]
    assert len(started) == 1 and started[0]["step"] < STEPS, runs
    # the run the sweep never reached is closed with it, not left queued (nor re-run on its own)
    (unstarted,) = [r for r in runs if r["step"] == 0]
    assert unstarted["status"] == "cancelled" and "resume the sweep" in unstarted["error"], unstarted
    assert not any(r["status"] in ("running", "succeeded", "queued") for r in runs), runs
