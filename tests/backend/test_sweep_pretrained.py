"""A server sweep whose runs start from a `pretrained:` base builds (or reuses) the cached base in its planning
job, before any child trains, so a shipped tiny config launched from the UI fine-tunes the demo's base."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from backend.core.settings import get_settings
from tests.backend.conftest import tiny_train_config
from tests.backend.test_sweep_children import EVAL, _datasets


def test_planning_builds_the_pretrained_base_and_children_train_from_it(client: TestClient) -> None:
    from aicd.pretrain import preset_config, weights_hash
    from worker import handlers

    train_id, test_id = _datasets(client, "pre")
    config = {**tiny_train_config(max_steps=1), "model": "pretrained:demo-quick"}
    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": "pre",
            "dataset_id": train_id,
            "eval_dataset_ids": [test_id],
            "config": {"train": config, "grid": {"objective": ["aicd"]}, "eval": EVAL},
        },
    )
    assert resp.status_code == 202, resp.text
    sweep_id = resp.json()["id"]
    handlers.sweep_job(sweep_id, 1)  # what the worker does with the sweep's message
    sweeps = get_settings().artifacts / "sweeps"
    base = preset_config(sweeps, "demo-quick").run_dir / "final"
    [used] = json.loads((sweeps / "pre" / "base.json").read_text())
    assert used["path"] == str(base) and used["weights_hash"] == weights_hash(base)
    [run] = client.get("/api/v1/runs", params={"sweep_id": sweep_id}).json()["items"]
    assert run["config"]["model"] == str(base)
    handlers.train_run(run["id"], run["attempt"])
    done = client.get(f"/api/v1/runs/{run['id']}").json()
    assert done["status"] == "succeeded", done
