"""A sweep's children are jobs of their own, exercised in this process against the real PostgreSQL with the
handlers a Celery task calls: planning, a failed child, cancel, resume and the reaper (workers on the real
broker: tests/backend/test_sweep_fanout.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from backend.db import session_scope
from backend.models import Evaluation, Run, Sweep
from backend.services import lifecycle
from tests.backend.conftest import arith_jsonl, tiny_train_config

EVAL = {"shots": [0], "seeds": [0], "max_new_tokens": 4, "batch_size": 8}


def _datasets(client: TestClient, name: str) -> tuple[int, int]:
    ids = []
    for split, n in (("train", 8), ("test", 3)):
        resp = client.post(
            "/api/v1/datasets",
            files={"file": (f"{name}-{split}.jsonl", arith_jsonl(split, n))},
            data={"name": f"{name}-{split}"},
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids[0], ids[1]


def _planned_sweep(client: TestClient, name: str, **train: object) -> int:
    """A sweep of two runs (aicd, nocot), each evaluated on one dataset, planned by its `aicd.sweep` job."""
    from worker import handlers

    train_id, test_id = _datasets(client, name)
    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": name,
            "dataset_id": train_id,
            "eval_dataset_ids": [test_id],
            "config": {
                "train": tiny_train_config(**{"max_steps": 2, "save_every": 1, **train}),
                "grid": {"objective": ["aicd", "nocot"]},
                "eval": EVAL,
            },
        },
    )
    assert resp.status_code == 202, resp.text
    handlers.sweep_job(resp.json()["id"], 1)  # what the gpu worker does with the sweep's message
    return resp.json()["id"]


def _children(client: TestClient, sweep_id: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """runs and evaluations by objective."""
    runs = client.get("/api/v1/runs", params={"sweep_id": sweep_id}).json()["items"]
    by_obj = {r["config"]["objective"]: r for r in runs}
    evals = {}
    for obj, run in by_obj.items():
        (ev,) = client.get("/api/v1/evaluations", params={"run_id": run["id"]}).json()["items"]
        evals[obj] = ev
    return by_obj, evals


def test_a_failed_child_fails_the_sweep_and_resume_redoes_only_it(client: TestClient) -> None:
    from worker import handlers

    sweep_id = _planned_sweep(client, "children-fail")
    sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert (sweep["status"], sweep["progress_total"], sweep["progress_done"]) == ("running", 2, 0)
    runs, evals = _children(client, sweep_id)
    assert {r["status"] for r in runs.values()} == {"queued"}
    assert {e["status"] for e in evals.values()} == {"queued"}
    assert evals["aicd"]["config"]["model"] == f"run:{runs['aicd']['id']}"
    bad, good = runs["nocot"], runs["aicd"]
    with session_scope() as s:  # the nocot run's data vanishes: its training fails
        row = s.get(Run, bad["id"])
        row.config = {**row.config, "dataset": "/nonexistent/data.jsonl"}

    handlers.train_run(bad["id"], 1)
    handlers.evaluate_job(evals["nocot"]["id"], 1)  # its message arrives anyway: it waits, untouched
    runs, evals = _children(client, sweep_id)
    assert runs["nocot"]["status"] == "failed", runs["nocot"]
    assert evals["nocot"]["status"] == "failed" and "resume" in evals["nocot"]["error"], evals["nocot"]
    assert client.get(f"/api/v1/sweeps/{sweep_id}").json()["status"] == "running"  # the other still runs

    handlers.train_run(good["id"], 1)
    handlers.evaluate_job(evals["aicd"]["id"], 1)
    sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "failed" and "resume the sweep" in sweep["error"], sweep
    assert sweep["progress_done"] == 1
    table = client.get(f"/api/v1/sweeps/{sweep_id}/table").json()
    assert {r["objective"] for r in table["rows"]} == {"aicd"}  # rebuilt as the evaluation finished
    before, evals_before = _children(client, sweep_id)

    with session_scope() as s:
        row = s.get(Run, bad["id"])
        row.config = {**row.config, "dataset": good["config"]["dataset"]}
    resp = client.post(f"/api/v1/sweeps/{sweep_id}/resume")
    assert resp.status_code == 202 and resp.json()["status"] == "running", resp.text
    runs, evals = _children(client, sweep_id)
    assert (runs["nocot"]["status"], runs["nocot"]["attempt"]) == ("queued", 2)
    assert (evals["nocot"]["status"], evals["nocot"]["attempt"]) == ("queued", 2)
    assert runs["aicd"] == before["aicd"] and evals["aicd"] == evals_before["aicd"]  # not touched again

    handlers.train_run(bad["id"], 2)
    handlers.evaluate_job(evals["nocot"]["id"], 2)
    sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded" and sweep["error"] is None, sweep
    assert sweep["progress_done"] == 2
    table = client.get(f"/api/v1/sweeps/{sweep_id}/table").json()
    assert {r["objective"] for r in table["rows"]} == {"aicd", "nocot"}
    runs, evals = _children(client, sweep_id)
    assert runs["aicd"]["finished_at"] == before["aicd"]["finished_at"]
    assert evals["aicd"]["finished_at"] == evals_before["aicd"]["finished_at"]
    assert sweep["outputs"]["md"].endswith("results.md")


def test_cancel_reaches_queued_and_running_children_and_shows_cancelling(client: TestClient) -> None:
    from worker.context import JobContext
    from worker.sweep import child_ended

    sweep_id = _planned_sweep(client, "children-cancel")
    runs, evals = _children(client, sweep_id)
    running = JobContext(Run, runs["aicd"]["id"], 1)
    assert running.claim()
    resp = client.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert resp.status_code == 200, resp.text
    # cancelling: the sweep waits for its running child to stop
    assert (resp.json()["status"], resp.json()["cancel_requested"]) == ("running", True)
    runs, evals = _children(client, sweep_id)
    assert runs["nocot"]["status"] == "cancelled" and "resume the sweep" in runs["nocot"]["error"]
    assert {e["status"] for e in evals.values()} == {"cancelled"}
    assert (runs["aicd"]["status"], runs["aicd"]["cancel_requested"]) == ("running", True)
    running.beat()
    assert running.should_stop()  # the child's worker sees the cancel on its next beat
    running.finish("cancelled", "cancelled by request")
    child_ended(Run, runs["aicd"]["id"])
    sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert (sweep["status"], sweep["cancel_requested"]) == ("cancelled", False), sweep

    resp = client.post(f"/api/v1/sweeps/{sweep_id}/resume")
    assert resp.status_code == 202, resp.text
    runs, evals = _children(client, sweep_id)
    assert {(r["status"], r["attempt"]) for r in runs.values()} == {("queued", 2)}
    assert {(e["status"], e["attempt"]) for e in evals.values()} == {("queued", 2)}
    _drop(client, sweep_id)


def _drop(client: TestClient, sweep_id: int) -> None:
    """Cancel what a test left queued, so workers of later tests on this broker never train it."""
    assert client.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 200


def test_a_child_cancelled_on_its_own_is_resumed_on_its_own(client: TestClient) -> None:
    """Cancel and resume of a run inside a sweep work as for a standalone run; the sweep follows."""
    sweep_id = _planned_sweep(client, "children-one")
    runs, evals = _children(client, sweep_id)
    resp = client.post(f"/api/v1/runs/{runs['nocot']['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
    runs, evals = _children(client, sweep_id)
    assert evals["nocot"]["status"] == "cancelled"
    assert client.get(f"/api/v1/sweeps/{sweep_id}").json()["status"] == "running"
    resp = client.post(f"/api/v1/evaluations/{evals['nocot']['id']}/resume")
    assert resp.status_code == 409 and "resume that run first" in resp.text, resp.text
    resp = client.post(f"/api/v1/runs/{runs['nocot']['id']}/resume")
    assert resp.status_code == 202 and resp.json()["attempt"] == 2, resp.text
    _drop(client, sweep_id)


def test_the_reaper_loses_a_sweeps_dead_child_not_the_sweep(client: TestClient) -> None:
    from worker.context import JobContext

    sweep_id = _planned_sweep(client, "children-reap")
    runs, evals = _children(client, sweep_id)
    assert JobContext(Run, runs["aicd"]["id"], 1).claim()
    with session_scope() as s:
        hour_ago = s.scalar(select(func.now())) - timedelta(hours=1)
        for model, job_id in ((Run, runs["aicd"]["id"]), (Sweep, sweep_id)):
            s.execute(update(model).where(model.id == job_id).values(heartbeat_at=hour_ago))
        assert lifecycle.reap_stale(s, 30) == 1
    runs, evals = _children(client, sweep_id)
    assert runs["aicd"]["status"] == "lost" and evals["aicd"]["status"] == "lost"
    assert runs["nocot"]["status"] == "queued"
    assert client.get(f"/api/v1/sweeps/{sweep_id}").json()["status"] == "running"
    _drop(client, sweep_id)


@pytest.mark.usefixtures("client")
def test_an_evaluation_of_an_unfinished_sweep_run_is_not_claimed() -> None:
    from worker import handlers

    with session_scope() as s:
        sweep = Sweep(name="children-wait", config={}, status="running")
        s.add(sweep)
        s.flush()
        run = Run(name="children-wait.r", sweep_id=sweep.id, config={}, run_dir="sweeps/x/runs/r")
        s.add(run)
        s.flush()
        ev = Evaluation(run_id=run.id, config={}, output_dir="sweeps/x/evals/r/d")
        s.add(ev)
        s.flush()
        ev_id = ev.id
    handlers.evaluate_job(ev_id, 1)
    with session_scope() as s:
        assert s.get(Evaluation, ev_id).status == "queued"


def test_a_run_asking_for_several_gpus_goes_to_its_own_queue(client: TestClient) -> None:
    """distributed.num_processes = 2 → queue `gpu2` (a worker on a 2-GPU host); one GPU → `gpu`."""
    import redis

    from backend.core.settings import get_settings
    from backend.jobs import gpus_of, queue_for
    from tests.backend.conftest import REDIS_URL

    assert queue_for("aicd.train", 1) == "gpu" and queue_for("aicd.train", 8) == "gpu8"
    assert queue_for("aicd.annotate", 8) == "cpu" and queue_for("aicd.evaluate") == "gpu"
    assert gpus_of({"distributed": {"num_processes": 4}}) == 4 and gpus_of({}) == 1
    train_id, _ = _datasets(client, "gpus-queue")
    prefix = get_settings().redis_prefix
    r = redis.Redis.from_url(REDIS_URL)
    before = r.llen(f"{prefix}gpu2")
    resp = client.post(
        "/api/v1/runs",
        json={
            "name": "two-gpu-run",
            "dataset_id": train_id,
            "config": tiny_train_config(micro_batch_size=1, distributed={"num_processes": 2}),
        },
    )
    assert resp.status_code == 202, resp.text
    assert r.llen(f"{prefix}gpu2") == before + 1  # waits for a gpu2 worker; no `gpu` worker takes it
    client.post(f"/api/v1/runs/{resp.json()['id']}/cancel")
