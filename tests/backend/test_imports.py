"""The API process never imports torch (nor the worker package): it validates with aicd's light modules."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from tests.backend.conftest import REDIS_URL, REPO


def test_backend_main_does_not_import_torch_or_worker() -> None:
    code = (
        "import sys, backend.main\n"
        "bad = [m for m in ('torch', 'transformers', 'worker') if m in sys.modules]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


SERVE_REQUESTS = """
import sys
from fastapi.testclient import TestClient
from backend.main import app
from tests.backend.conftest import arith_jsonl, tiny_train_config

def ok(resp, *codes):
    assert resp.status_code in (codes or (200,)), (resp.request.url, resp.status_code, resp.text)
    return resp.json() if resp.content else None

with TestClient(app) as c:
    ds = ok(c.post("/api/v1/datasets", files={"file": ("a.jsonl", arith_jsonl("train", 6))},
                   data={"name": "imports"}), 201)["id"]
    ok(c.get("/health"))
    run = ok(c.post("/api/v1/runs", json={"name": "imp-run", "dataset_id": ds, "config": tiny_train_config()}),
             202)
    ok(c.get(f"/api/v1/runs/{run['id']}/metrics"))
    ok(c.post(f"/api/v1/runs/{run['id']}/cancel"))
    ev = ok(c.post("/api/v1/evaluations", json={"dataset_id": ds, "config": {"model": "tiny:gpt2",
            "shots": [0, 1], "seeds": [0]}}), 202)
    ok(c.get(f"/api/v1/evaluations/{ev['id']}/generations"))
    ok(c.post(f"/api/v1/evaluations/{ev['id']}/cancel"))
    ann = ok(c.post("/api/v1/annotations", json={"dataset_id": ds, "config": {"base_url": "http://127.0.0.1:9/v1",
             "api_key": "k", "teacher": "t", "k": 1}}), 202)
    ok(c.post(f"/api/v1/annotations/{ann['id']}/cancel"))
    sw = ok(c.post("/api/v1/sweeps", json={"dataset_id": ds, "config": {"train": tiny_train_config(),
            "grid": {"objective": ["aicd", "nocot"]}, "eval": {"shots": [0]}}}), 202)
    ok(c.post(f"/api/v1/sweeps/{sw['id']}/cancel"))
    builtin = {"train": {**tiny_train_config(), "dataset": "arith"}, "grid": {"n_shots": [2, 4]}}  # sized here
    sw = ok(c.post("/api/v1/sweeps", json={"config": {**builtin, "eval": {"shots": [0]}}}), 202)
    ok(c.post(f"/api/v1/sweeps/{sw['id']}/cancel"))
    ok(c.post("/api/v1/preview/schedule", json={"n_shots": 3}))
    ok(c.post("/api/v1/preview/episode", json={"dataset_id": ds, "n_shots": 2}))
    ok(c.post("/api/v1/preview/prompt", json={"dataset_id": ds, "prompt_template": "{question} {answer}"}))
    ok(c.get(f"/api/v1/preview/datasets/{ds}/stats"))
    ok(c.get("/api/v1/preview/builtins"))
    ok(c.get("/api/v1/preview/configs"))
    ok(c.get("/api/v1/compare", params={"evaluation_id": [ev["id"]]}), 200, 404, 409, 422)
    ok(c.get("/api/v1/generations"))
    ok(c.get(f"/api/v1/datasets/{ds}/rationales"))
    ok(c.get("/api/v1/teacher-keys"))
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "worker"))
print(bad[:10])
"""


def test_serving_jobs_and_previews_never_imports_torch_or_worker(tmp_path: Path) -> None:
    """After creating runs, evaluations, annotation jobs and sweeps and every preview, the API process has
    still not imported torch or `worker` (jobs go to the broker by task name)."""
    prefix = f"aicd-imports-{uuid.uuid4().hex[:8]}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICD_")}
    env.update(
        {
            "AICD_HOME": str(tmp_path),
            "AICD_REDIS_URL": REDIS_URL,
            "AICD_REDIS_PREFIX": prefix,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", SERVE_REQUESTS],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
