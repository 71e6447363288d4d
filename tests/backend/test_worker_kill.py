"""SIGKILL the GPU worker mid-training: the run is marked lost (not left running), resumes from its checkpoint
on a new worker, and no metric point is duplicated or lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import TERMINAL, arith_jsonl, tiny_train_config, wait_for
from tests.backend.test_e2e import _steps, _watch, assert_resumed_from

pytestmark = pytest.mark.slow
STEPS = 24


def test_killed_worker_is_detected_and_run_resumes(client: TestClient, make_gpu_worker) -> None:
    first = make_gpu_worker()
    ds = client.post(
        "/api/v1/datasets", files={"file": ("k.jsonl", arith_jsonl("train", 16))}, data={"name": "kill-train"}
    ).json()["id"]
    run_id = client.post(
        "/api/v1/runs",
        json={
            "name": "kill-run",
            "dataset_id": ds,
            "config": tiny_train_config(max_steps=STEPS, save_every=5),
        },
    ).json()["id"]
    run = wait_for(
        client,
        f"/api/v1/runs/{run_id}",
        lambda b: (b["checkpoint_step"] or 0) >= 5 or b["status"] in TERMINAL,
        interval=0.05,
        what="a first checkpoint",
    )
    assert run["status"] == "running", (run, first.tail())
    first.kill()

    lost = wait_for(
        client,
        f"/api/v1/runs/{run_id}",
        lambda b: b["status"] != "running",
        timeout=60,
        what="the reaper to notice the dead worker",
    )
    assert lost["status"] == "lost" and "heartbeat" in lost["error"], lost
    ckpt = lost["checkpoint_step"]
    assert 5 <= ckpt < STEPS

    make_gpu_worker()
    resumed_at = datetime.now(UTC)
    resp = client.post(f"/api/v1/runs/{run_id}/resume")
    assert resp.status_code == 202, resp.text
    run = _watch(client, f"/api/v1/runs/{run_id}")[0]
    assert run["status"] == "succeeded", run
    assert run["step"] == run["total_steps"] == STEPS and run["attempt"] == 2
    assert [p["step"] for p in _steps(client, run_id)] == list(range(1, STEPS + 1))
    assert_resumed_from(run_id, ckpt, resumed_at)

    # the same for an evaluation: killed mid-way, resumed; every chain stored exactly once
    test_ds = client.post(
        "/api/v1/datasets", files={"file": ("kt.jsonl", arith_jsonl("test", 8))}, data={"name": "kill-test"}
    ).json()["id"]
    ev = client.post(
        "/api/v1/evaluations",
        json={
            "run_id": run_id,
            "dataset_id": test_ds,
            "shots_dataset_id": ds,
            "config": {"shots": [0, 1, 2], "seeds": [0], "batch_size": 2, "max_new_tokens": 24},
        },
    ).json()
    worker = make_gpu_worker.started[-1]
    ev = wait_for(
        client,
        f"/api/v1/evaluations/{ev['id']}",
        lambda b: b["progress_done"] >= 4 or b["status"] in TERMINAL,
        interval=0.05,
        what="evaluation progress",
    )
    assert ev["status"] == "running", ev
    worker.kill()
    lost = wait_for(
        client,
        f"/api/v1/evaluations/{ev['id']}",
        lambda b: b["status"] != "running",
        timeout=60,
        what="the reaper to notice the dead worker",
    )
    assert lost["status"] == "lost", lost
    gens_url = f"/api/v1/evaluations/{ev['id']}/generations"
    before = {
        (g["example_id"], g["shots"], g["seed"]): g["generation"]
        for g in client.get(gens_url, params={"limit": 500}).json()["items"]
    }
    assert 4 <= len(before) < 24
    make_gpu_worker()
    assert client.post(f"/api/v1/evaluations/{ev['id']}/resume").status_code == 202
    done = _watch(client, f"/api/v1/evaluations/{ev['id']}")[0]
    assert done["status"] == "succeeded", done
    gens = client.get(gens_url, params={"limit": 500}).json()["items"]
    assert len(gens) == 24 == len({(g["example_id"], g["shots"], g["seed"]) for g in gens})
    assert sum(r["n"] for r in done["rows"]) == 24
    # the resumed attempt scored the stored chains instead of generating them again
    results = next(
        a
        for a in client.get("/api/v1/artifacts", params={"evaluation_id": ev["id"]}).json()["items"]
        if a["path"].endswith("results.json")
    )
    assert client.get(f"/api/v1/files/{results['path']}").json()["reused"] == len(before)
    after = {(g["example_id"], g["shots"], g["seed"]): g["generation"] for g in gens}
    assert all(after[key] == chain for key, chain in before.items())


def test_sigterm_checkpoints_and_run_resumes(client: TestClient, make_gpu_worker) -> None:
    """A warm shutdown (SIGTERM, `docker stop`) stops the job at once with a checkpoint; it ends `failed`
    (resumable), not `running`, and a new worker finishes it."""
    worker = make_gpu_worker()
    ds = client.post(
        "/api/v1/datasets",
        files={"file": ("term.jsonl", arith_jsonl("train", 12))},
        data={"name": "term-train"},
    ).json()["id"]
    cfg = tiny_train_config(max_steps=40, save_every=0)  # no periodic checkpoint: the stop writes one
    run_id = client.post("/api/v1/runs", json={"name": "term-run", "dataset_id": ds, "config": cfg}).json()[
        "id"
    ]
    wait_for(
        client,
        f"/api/v1/runs/{run_id}",
        lambda b: b["step"] >= 3 or b["status"] in TERMINAL,
        interval=0.05,
        what="training progress",
    )
    worker.stop()  # SIGTERM, then waits for the process to exit
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "failed" and "shut down" in run["error"], (run, worker.tail())
    assert 3 <= run["checkpoint_step"] == run["step"] < 40
    make_gpu_worker()
    assert client.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    run = _watch(client, f"/api/v1/runs/{run_id}")[0]
    assert run["status"] == "succeeded" and run["step"] == 40, run
    assert [p["step"] for p in _steps(client, run_id)] == list(range(1, 41))
