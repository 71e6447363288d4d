"""A run asking for two processes is trained by `accelerate launch` (2 gloo CPU processes here, one per GPU on a
GPU host) from the worker's handler, against the real PostgreSQL: metric points, checkpoint step and final
model reach the run's row as for a one-process run."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import arith_jsonl, tiny_train_config

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
