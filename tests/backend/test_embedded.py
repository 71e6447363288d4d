"""Embedded mode: one `uvicorn backend.main:app` with no Redis and no database server (SQLite under AICD_HOME)
runs a tiny training run and its evaluation through the in-process executor."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.backend.conftest import REPO, TERMINAL, arith_jsonl, tiny_train_config

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(client: httpx.Client, url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.3)
    raise AssertionError(f"{url} did not finish")


@contextmanager
def _embedded_api(tmp_path: Path, **extra: str) -> Iterator[httpx.Client]:
    """`uvicorn backend.main:app` alone (the laptop command of backend/README.md), on SQLite under tmp_path/home."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICD_")}
    env.update(
        {
            "AICD_HOME": str(tmp_path / "home"),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **extra,
        }
    )
    cmd = ["uvicorn", "backend.main:app", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", *cmd], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(200):
                try:
                    health = client.get("/health").json()
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert health == {"status": "ok", "mode": "embedded", "database": "sqlite", "broker": "embedded"}
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_laptop_mode_runs_jobs_without_services(tmp_path: Path) -> None:
    with _embedded_api(tmp_path) as client:
        ds = client.post(
            "/api/v1/datasets",
            files={"file": ("a.jsonl", arith_jsonl("train", 12))},
            data={"name": "laptop"},
        ).json()["id"]
        run = client.post(
            "/api/v1/runs",
            json={"name": "laptop-run", "dataset_id": ds, "config": tiny_train_config(max_steps=4)},
        ).json()
        assert run["status"] == "queued"
        run = _wait(client, f"/api/v1/runs/{run['id']}")
        assert run["status"] == "succeeded", (tmp_path / "api.log").read_text()[-3000:]
        pts = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["items"]
        assert [p["step"] for p in pts] == [1, 2, 3, 4]
        ev = client.post(
            "/api/v1/evaluations",
            json={
                "run_id": run["id"],
                "dataset_id": ds,
                "config": {"shots": [0], "seeds": [0], "limit": 4, "max_new_tokens": 8},
            },
        ).json()
        ev = _wait(client, f"/api/v1/evaluations/{ev['id']}")
        assert ev["status"] == "succeeded" and ev["rows"][0]["n"] == 4
        gens = client.get(f"/api/v1/evaluations/{ev['id']}/generations").json()["items"]
        assert len(gens) == 4
    assert (tmp_path / "home" / "aicd.db").is_file()
    assert (tmp_path / "home" / "artifacts" / "runs" / "laptop-run" / "final").is_dir()


def test_embedded_workers_run_a_sweeps_children_at_once(tmp_path: Path) -> None:
    """AICD_EMBEDDED_WORKERS=2: two runs of a sweep train at the same time; the evaluations their worker
    processes queue are found in the database and run, and the sweep ends with its table."""
    with _embedded_api(tmp_path, AICD_EMBEDDED_WORKERS="2") as client:
        ds = client.post(
            "/api/v1/datasets", files={"file": ("s.jsonl", arith_jsonl("train", 12))}, data={"name": "es"}
        ).json()["id"]
        sweep = client.post(
            "/api/v1/sweeps",
            json={
                "name": "embedded-sweep",
                "dataset_id": ds,
                "eval_dataset_ids": [ds],
                "config": {
                    "train": tiny_train_config(max_steps=12),
                    "grid": {"objective": ["aicd", "nocot"]},
                    "eval": {"shots": [0], "seeds": [0], "limit": 3, "max_new_tokens": 4},
                },
            },
        ).json()
        sweep = _wait(client, f"/api/v1/sweeps/{sweep['id']}")
        assert sweep["status"] == "succeeded", (sweep, (tmp_path / "api.log").read_text()[-3000:])
        a, b = client.get("/api/v1/runs", params={"sweep_id": sweep["id"]}).json()["items"]
        start = [datetime.fromisoformat(r["started_at"]) for r in (a, b)]
        end = [datetime.fromisoformat(r["finished_at"]) for r in (a, b)]
        assert start[0] < end[1] and start[1] < end[0], (a, b)  # overlapping, from the database's stamps
        rows = client.get(f"/api/v1/sweeps/{sweep['id']}/table").json()["rows"]
        assert {r["objective"] for r in rows} == {"aicd", "nocot"}


def test_embedded_slots_default_to_one_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.core.settings import Settings
    from backend.jobs import embedded_slots

    monkeypatch.delenv("AICD_EMBEDDED_WORKERS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert embedded_slots(Settings()) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible: one on the CPU
    assert embedded_slots(Settings()) == 1
    monkeypatch.setenv("AICD_EMBEDDED_WORKERS", "2")  # an explicit setting wins
    assert embedded_slots(Settings()) == 2
