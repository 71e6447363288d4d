"""A run asking for two processes is trained by `accelerate launch` (2 gloo CPU processes here, one per GPU on a
GPU host) from the worker's handler, against the real PostgreSQL: metric points, checkpoint step and final
model reach the run's row as for a one-process run; a SIGKILLed worker leaves none of its processes training."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import TERMINAL, Worker, arith_jsonl, tiny_train_config, wait_for

pytestmark = pytest.mark.slow


def test_a_two_process_run_is_launched_and_followed(client: TestClient) -> None:
    from backend.core.settings import get_settings
    from worker import handlers

    ds = client.post(
        "/api/v1/datasets", files={"file": ("l.jsonl", arith_jsonl("train", 8))}, data={"name": "launch-2"}
    ).json()["id"]
    config = tiny_train_config(
        max_steps=4, micro_batch_size=1, save_every=2, distributed={"num_processes": 2}
    )
    run = client.post("/api/v1/runs", json={"name": "launch-2", "dataset_id": ds, "config": config}).json()
    handlers.train_run(run["id"], 1)  # what the gpu2 worker does with the message
    done = client.get(f"/api/v1/runs/{run['id']}").json()
    assert done["status"] == "succeeded", done
    assert (done["step"], done["checkpoint_step"]) == (4, 4)
    assert done["last_metrics"]["processes"] == 2  # trained on two ranks, not in this process
    points = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["items"]
    assert [p["step"] for p in points] == [1, 2, 3, 4]
    assert (get_settings().artifacts / "runs" / "launch-2" / "final").is_dir()


def test_cancelling_a_launched_run_stops_every_rank_at_a_checkpoint(client: TestClient) -> None:
    import threading
    import time

    from worker import handlers

    ds = client.post(
        "/api/v1/datasets", files={"file": ("lc.jsonl", arith_jsonl("train", 8))}, data={"name": "launch-c"}
    ).json()["id"]
    config = tiny_train_config(
        max_steps=400, micro_batch_size=1, save_every=50, distributed={"num_processes": 2}
    )
    run = client.post("/api/v1/runs", json={"name": "launch-c", "dataset_id": ds, "config": config}).json()
    worker = threading.Thread(target=handlers.train_run, args=(run["id"], 1))
    worker.start()
    url = f"/api/v1/runs/{run['id']}"
    deadline = time.monotonic() + 240
    while client.get(url).json()["step"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.post(f"{url}/cancel").status_code == 200
    worker.join(timeout=120)
    assert not worker.is_alive()
    done = client.get(url).json()
    assert done["status"] == "cancelled" and 3 <= done["step"] < 400, done
    assert done["checkpoint_step"] is not None  # every rank stopped after saving, as on Ctrl-C


def _gpu2_worker(env: dict[str, str], logs: Path) -> Worker:
    """The compose GPU worker, serving queue `gpu2` (a host with two devices) under a node name of its own."""
    worker = Worker("worker-gpu", env, logs)
    cmd = list(worker.cmd)
    cmd[cmd.index("-Q") + 1] = "gpu2"
    cmd[cmd.index("-n") + 1] = f"gpu2-{uuid.uuid4().hex[:6]}@%h"
    worker.cmd = cmd
    return worker.start()


def test_a_sigkilled_worker_leaves_no_rank_training_and_the_run_resumes_once(
    client: TestClient, stack_env: dict[str, str], worker_logs: Path
) -> None:
    """SIGKILL the worker of a launched run: the launcher and both ranks die with it (they are in sessions of
    their own, so the worker's process group is not theirs), nothing writes into the run directory any more,
    the reaper marks the run lost, and a resume on a new worker trains each step once."""
    from backend.core.settings import get_settings
    from tests.backend.test_e2e import _steps, _watch
    from tests.support.processes import assert_unchanged, descendants, kill, wait_gone

    steps = 60
    ds = client.post(
        "/api/v1/datasets", files={"file": ("lk.jsonl", arith_jsonl("train", 8))}, data={"name": "launch-k"}
    ).json()["id"]
    config = tiny_train_config(
        max_steps=steps, micro_batch_size=1, save_every=2, distributed={"num_processes": 2}
    )
    run_id = client.post(
        "/api/v1/runs", json={"name": "launch-k", "dataset_id": ds, "config": config}
    ).json()["id"]
    workers = [_gpu2_worker(stack_env, worker_logs)]
    launched: list[int] = []
    try:
        url = f"/api/v1/runs/{run_id}"
        run = wait_for(
            client,
            url,
            lambda b: (b["checkpoint_step"] or 0) >= 2 or b["status"] in TERMINAL,
            interval=0.05,
            what="a first checkpoint",
        )
        assert run["status"] == "running", (run, workers[0].tail())
        assert workers[0].proc is not None
        launched = descendants(workers[0].proc.pid)  # the launcher and its two ranks (and their helpers)
        assert len(launched) >= 3, launched
        workers[0].kill()
        wait_gone(launched, what="the launcher and its ranks")

        run_dir = get_settings().artifacts / "runs" / "launch-k"
        assert not (run_dir / "final").exists(), "the ranks trained on to the end after the worker died"
        assert_unchanged(run_dir)
        lost = wait_for(client, url, lambda b: b["status"] != "running", timeout=60, what="the reaper")
        assert lost["status"] == "lost", lost
        assert 2 <= lost["checkpoint_step"] < steps

        workers.append(_gpu2_worker(stack_env, worker_logs))
        assert client.post(f"{url}/resume").status_code == 202
        done = _watch(client, url)[0]
        assert done["status"] == "succeeded", (done, workers[-1].tail())
        assert done["step"] == steps and done["attempt"] == 2
        assert [p["step"] for p in _steps(client, run_id)] == list(range(1, steps + 1))
    finally:
        kill(launched)
        for worker in workers:
            worker.stop()
