"""A sweep fans out over real `celery worker` processes on the real broker: two gpu workers train two of its
runs at once; a worker killed mid-sweep loses only its own run, and resuming the sweep redoes exactly that."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import TERMINAL, arith_jsonl, tiny_train_config, wait_for
from tests.backend.test_e2e import _steps, _watch

pytestmark = pytest.mark.slow
EVAL = {"shots": [0], "seeds": [0], "max_new_tokens": 4, "batch_size": 8}


def _sweep(client: TestClient, name: str, steps: int) -> int:
    ids = []
    for split, n in (("train", 12), ("test", 3)):
        resp = client.post(
            "/api/v1/datasets",
            files={"file": (f"{name}-{split}.jsonl", arith_jsonl(split, n))},
            data={"name": f"{name}-{split}"},
        )
        ids.append(resp.json()["id"])
    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": name,
            "dataset_id": ids[0],
            "eval_dataset_ids": [ids[1]],
            "config": {
                "train": tiny_train_config(max_steps=steps, save_every=2),
                "grid": {"objective": ["aicd", "nocot"]},
                "eval": EVAL,
            },
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _runs(client: TestClient, sweep_id: int) -> list[dict]:
    return client.get("/api/v1/runs", params={"sweep_id": sweep_id}).json()["items"]


def _evals(client: TestClient, run_id: int) -> list[dict]:
    return client.get("/api/v1/evaluations", params={"run_id": run_id}).json()["items"]


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_two_gpu_workers_train_two_runs_of_a_sweep_at_once(client: TestClient, make_gpu_worker) -> None:
    workers = [make_gpu_worker(), make_gpu_worker()]
    sweep_id = _sweep(client, "fanout-two", steps=12)
    sweep = _watch(client, f"/api/v1/sweeps/{sweep_id}")[0]
    assert sweep["status"] == "succeeded", (sweep, [w.tail() for w in workers])
    a, b = _runs(client, sweep_id)
    assert a["status"] == b["status"] == "succeeded"
    # the two trainings overlapped in time (the database's own start/end stamps), on two workers
    assert _t(a["started_at"]) < _t(b["finished_at"]) and _t(b["started_at"]) < _t(a["finished_at"]), (a, b)
    assert a["worker"] != b["worker"]
    evals = [e for r in (a, b) for e in _evals(client, r["id"])]
    assert len(evals) == 2 and all(e["status"] == "succeeded" for e in evals)
    assert all(_t(e["started_at"]) >= _t(r["finished_at"]) for r in (a, b) for e in _evals(client, r["id"]))
    table = client.get(f"/api/v1/sweeps/{sweep_id}/table").json()
    assert {r["objective"] for r in table["rows"]} == {"aicd", "nocot"}


def test_a_killed_worker_loses_only_its_run_and_resume_redoes_only_that(
    client: TestClient, make_gpu_worker
) -> None:
    steps = 40
    workers = [make_gpu_worker(), make_gpu_worker()]
    sweep_id = _sweep(client, "fanout-kill", steps=steps)
    url = f"/api/v1/sweeps/{sweep_id}"

    def both_checkpointed(_: dict) -> bool:
        runs = _runs(client, sweep_id)
        return len(runs) == 2 and all(
            r["status"] in TERMINAL or (r["status"] == "running" and (r["checkpoint_step"] or 0) >= 2)
            for r in runs
        )

    wait_for(client, url, both_checkpointed, interval=0.05, what="both runs training")
    runs = _runs(client, sweep_id)
    assert all(r["status"] == "running" for r in runs), runs
    victim_run = runs[0]
    (victim,) = [w for w in workers if victim_run["worker"].endswith(f":{w.proc.pid}")]
    victim.kill()

    sweep = wait_for(client, url, lambda b: b["status"] in TERMINAL, timeout=300, what="the sweep to end")
    assert sweep["status"] == "failed", (sweep, [w.tail() for w in workers])
    lost, other = (
        next(r for r in _runs(client, sweep_id) if r["id"] == rid) for rid in (runs[0]["id"], runs[1]["id"])
    )
    assert lost["status"] == "lost" and "heartbeat" in lost["error"], lost
    assert other["status"] == "succeeded" and other["attempt"] == 1, other
    (other_eval,) = _evals(client, other["id"])
    assert other_eval["status"] == "succeeded"
    assert _evals(client, lost["id"])[0]["status"] == "lost"

    make_gpu_worker()
    resp = client.post(f"{url}/resume")
    assert resp.status_code == 202, resp.text
    sweep = _watch(client, url)[0]
    assert sweep["status"] == "succeeded", sweep
    resumed = next(r for r in _runs(client, sweep_id) if r["id"] == lost["id"])
    assert (resumed["status"], resumed["attempt"], resumed["step"]) == ("succeeded", 2, steps)
    assert [p["step"] for p in _steps(client, lost["id"])] == list(range(1, steps + 1))
    again = next(r for r in _runs(client, sweep_id) if r["id"] == other["id"])
    assert again == other  # the finished run was neither trained nor evaluated again
    assert _evals(client, other["id"]) == [other_eval]


def test_a_single_run_goes_before_a_sweeps_backlog(client: TestClient, make_gpu_worker) -> None:
    """Both queued before any worker is up: the sweep's runs (priority 6) wait behind the single run (0)."""
    from worker import handlers

    sweep_id = _sweep(client, "fanout-priority", steps=4)
    handlers.sweep_job(sweep_id, 1)  # planned here: its two runs are on the broker already
    ds = _runs(client, sweep_id)[0]["dataset_id"]
    single = client.post(
        "/api/v1/runs",
        json={"name": "priority-single", "dataset_id": ds, "config": tiny_train_config(max_steps=4)},
    ).json()
    worker = make_gpu_worker()
    single = _watch(client, f"/api/v1/runs/{single['id']}")[0]
    assert single["status"] == "succeeded", (single, worker.tail())
    started = [r["started_at"] for r in _runs(client, sweep_id) if r["started_at"]]
    assert all(_t(s) > _t(single["started_at"]) for s in started), (single, _runs(client, sweep_id))
    assert client.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 200


def test_cancel_and_resume_of_a_run_inside_a_sweep_work_as_for_a_single_run(
    client: TestClient, make_gpu_worker
) -> None:
    """Issue 12 #1: cancelling a running run of a sweep stops it (it used to train on to `succeeded`); the sweep
    shows it, the other run finishes, and resuming that run alone completes the sweep."""
    steps = 60
    worker = make_gpu_worker()
    sweep_id = _sweep(client, "fanout-child-cancel", steps=steps)
    url = f"/api/v1/sweeps/{sweep_id}"

    def training(_: dict) -> bool:
        return any(r["status"] == "running" and r["step"] >= 3 for r in _runs(client, sweep_id))

    wait_for(client, url, training, interval=0.05, what="a run of the sweep training")
    (target,) = [r for r in _runs(client, sweep_id) if r["status"] == "running"]
    resp = client.post(f"/api/v1/runs/{target['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["cancel_requested"] is True, resp.text
    stopped = wait_for(
        client, f"/api/v1/runs/{target['id']}", lambda b: b["status"] in TERMINAL, timeout=30, what="cancel"
    )
    assert stopped["status"] == "cancelled" and stopped["step"] < steps, (stopped, worker.tail())
    sweep = _watch(client, url)[0]  # the other run still trains and is evaluated
    assert sweep["status"] == "cancelled" and sweep["progress_done"] == 1, sweep
    assert _evals(client, target["id"])[0]["status"] == "cancelled"

    resp = client.post(f"/api/v1/runs/{target['id']}/resume")
    assert resp.status_code == 202, resp.text
    assert client.get(url).json()["status"] == "running"  # the sweep follows its resumed child
    sweep = _watch(client, url)[0]
    assert sweep["status"] == "succeeded", (sweep, worker.tail())
    resumed = client.get(f"/api/v1/runs/{target['id']}").json()
    assert (resumed["status"], resumed["attempt"], resumed["step"]) == ("succeeded", 2, steps)
    assert _evals(client, target["id"])[0]["status"] == "succeeded"
    assert [p["step"] for p in _steps(client, target["id"])] == list(range(1, steps + 1))
