"""Every job phase honours cancel and a stall watchdog (issue 11 #1, #8): real PostgreSQL and Redis.

The training jobs run their real handler (`worker.handlers.train_run`) in this process, so one phase can be made
slow on purpose (episode building, the phase that jammed workers); the annotation jobs run on a real `celery
worker` against a fake teacher that hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import TERMINAL, Worker, arith_jsonl, tiny_train_config, wait_for
from tests.support.fake_teacher import start_fake_teacher

pytestmark = pytest.mark.slow


def _queued_run(client: TestClient, name: str, **config) -> dict:
    ds = client.post(
        "/api/v1/datasets", files={"file": (f"{name}.jsonl", arith_jsonl("train", 24))}, data={"name": name}
    ).json()["id"]
    resp = client.post(
        "/api/v1/runs", json={"name": name, "dataset_id": ds, "config": tiny_train_config(**config)}
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


@pytest.fixture
def slow_episodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """Episode building that takes `per_episode` seconds an episode and says when it started."""
    import aicd.train

    real = aicd.train.build_episode
    state = {"started": threading.Event(), "per_episode": 1.0, "release": threading.Event()}

    def slow(*args, **kwargs):
        state["started"].set()
        state["release"].wait(state["per_episode"])
        return real(*args, **kwargs)

    monkeypatch.setattr(aicd.train, "build_episode", slow)
    yield state
    state["release"].set()


def _start(run: dict) -> threading.Thread:
    from worker import handlers

    thread = threading.Thread(target=handlers.train_run, args=(run["id"], run["attempt"]), daemon=True)
    thread.start()
    return thread


def test_cancel_while_building_episodes_ends_cancelled_within_seconds(
    client: TestClient, slow_episodes
) -> None:
    run = _queued_run(client, "phase-cancel", n_shots=4)
    thread = _start(run)
    assert slow_episodes["started"].wait(60), "episode building never started"
    t0 = time.monotonic()
    assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 200
    # 24 episodes × 1 s: before, the cancel was only seen by the training loop, ~24 s later
    done = wait_for(client, f"/api/v1/runs/{run['id']}", lambda b: b["status"] in TERMINAL, timeout=30)
    assert done["status"] == "cancelled" and done["error"] == "cancelled by request", done
    assert time.monotonic() - t0 < 8
    thread.join(10)
    assert not thread.is_alive()


def test_shutdown_while_building_episodes_ends_failed_and_resumable(
    client: TestClient, slow_episodes
) -> None:
    from worker.context import SHUTDOWN

    run = _queued_run(client, "phase-shutdown", n_shots=4)
    thread = _start(run)
    assert slow_episodes["started"].wait(60), "episode building never started"
    SHUTDOWN.set()  # what SIGTERM does in a worker
    try:
        thread.join(10)
        assert not thread.is_alive()
    finally:
        SHUTDOWN.clear()
    done = client.get(f"/api/v1/runs/{run['id']}").json()
    assert done["status"] == "failed" and "worker shut down" in done["error"], done
    assert client.post(f"/api/v1/runs/{run['id']}/resume").status_code == 202
    client.post(f"/api/v1/runs/{run['id']}/cancel")  # queued: cancelled at once, no worker trains it later


def test_a_phase_that_makes_no_progress_fails_the_job_naming_the_phase(
    client: TestClient, slow_episodes
) -> None:
    from backend.core.settings import get_settings

    settings = get_settings()  # the instance the job's context reads its stall timeout from, on every beat
    default = settings.stall_timeout_s
    slow_episodes["per_episode"] = 120.0  # one episode that never finishes
    run = _queued_run(client, "phase-stall", n_shots=4)
    thread = _start(run)
    assert slow_episodes["started"].wait(60), "episode building never started"
    settings.stall_timeout_s = 3.0  # set once the quiet phase has begun, so a slow model load cannot trip it
    try:
        done = wait_for(client, f"/api/v1/runs/{run['id']}", lambda b: b["status"] in TERMINAL, timeout=60)
        assert done["status"] == "failed", done
        assert "no progress for" in done["error"] and "in phase 'episodes' at 0/24" in done["error"], done
        assert "AICD_STALL_TIMEOUT_S=3" in done["error"]
        slow_episodes["release"].set()  # the stuck call returns; the job sees the stall and ends quietly
        thread.join(20)
        assert not thread.is_alive()
        assert client.get(f"/api/v1/runs/{run['id']}").json()["error"] == done["error"]
    finally:
        settings.stall_timeout_s = default


@pytest.fixture
def hung_teacher() -> Iterator[tuple[str, object]]:
    base_url, handle = start_fake_teacher(hang_rate=1.0, hang_s=60.0)
    yield base_url, handle
    handle.close()


def _annotation(client: TestClient, base_url: str, name: str, **config) -> int:
    ds = client.post(
        "/api/v1/datasets", files={"file": (f"{name}.jsonl", arith_jsonl("train", 20))}, data={"name": name}
    ).json()["id"]
    body = {"base_url": base_url, "api_key": "sk-fake", "teacher": "fake-teacher", "k": 1, "concurrency": 16}
    resp = client.post("/api/v1/annotations", json={"dataset_id": ds, "config": {**body, **config}})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_annotation_against_a_hung_teacher_fails_once_naming_it_and_resumes(
    client: TestClient, cpu_worker: Worker, hung_teacher
) -> None:
    base_url, handle = hung_teacher
    job_id = _annotation(client, base_url, "hung-breaker", timeout=2.0)
    url = f"/api/v1/annotations/{job_id}"
    job = wait_for(client, url, lambda b: b["status"] in TERMINAL, timeout=60)
    assert job["status"] == "failed", (job, cpu_worker.tail())
    assert (
        base_url in job["error"] and "first 8 requests all failed (last: request timed out)" in job["error"]
    )

    handle.options.hang_rate = 0.0
    assert client.post(f"{url}/resume").status_code == 202
    job = wait_for(client, url, lambda b: b["status"] in TERMINAL, timeout=120)
    assert job["status"] == "succeeded" and job["report"]["ok"] == 20, (job, cpu_worker.tail())


def test_cancel_during_hung_teacher_requests_ends_cancelled_within_seconds(
    client: TestClient, cpu_worker: Worker, hung_teacher
) -> None:
    base_url, handle = hung_teacher
    job_id = _annotation(client, base_url, "hung-cancel", timeout=50.0, breaker_after=0)
    url = f"/api/v1/annotations/{job_id}"
    wait_for(client, url, lambda b: b["status"] == "running", timeout=60)
    deadline = time.monotonic() + 30
    while len(handle.requests) < 16 and time.monotonic() < deadline:  # every slot holds a hung request
        time.sleep(0.1)
    t0 = time.monotonic()
    assert client.post(f"{url}/cancel").status_code == 200
    job = wait_for(client, url, lambda b: b["status"] in TERMINAL, timeout=60)
    assert job["status"] == "cancelled", (job, cpu_worker.tail())
    assert time.monotonic() - t0 < 15  # not the 50 s request timeout
