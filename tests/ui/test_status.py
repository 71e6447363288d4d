"""GET /status: the one aggregated read a page polls per tick (active jobs of every kind, followed sweeps)."""

from __future__ import annotations

import pytest

from tests.ui.conftest import TINY_TRAIN, Backend, Comparison, Seeded, app_test, free_port, no_traceback
from ui.client import ApiClient


def test_status_lists_active_jobs_with_their_cancel_request(ui_env: Backend, seeded: Seeded) -> None:
    api = ui_env.client
    run = api.create_run(
        {**TINY_TRAIN, "objective": "nocot", "max_steps": 100_000},
        name="status-long",
        dataset_id=seeded.train["id"],
    )
    try:
        jobs = {(j["kind"], j["id"]): j for j in api.status()["jobs"]}
        mine = jobs[("runs", run["id"])]
        assert mine["status"] in ("queued", "running") and mine["name"] == "status-long"
        assert set(mine) >= {"cancel_requested", "step", "total_steps", "progress_done", "sweep_id"}
    finally:
        api.job_action("runs", run["id"], "cancel")
    after = {(j["kind"], j["id"]): j for j in api.status()["jobs"]}
    assert ("runs", run["id"]) not in after or after[("runs", run["id"])]["cancel_requested"]


def test_status_reports_followed_sweeps_with_their_runs(ui_env: Backend, comparison: Comparison) -> None:
    got = ui_env.client.status(sweeps=[comparison.sweep["id"], 10**9])["sweeps"]  # an unknown id is skipped
    assert [s["id"] for s in got] == [comparison.sweep["id"]]
    assert [r["id"] for r in got[0]["runs"]] == [r["id"] for r in comparison.runs]


def test_sidebar_follows_launched_comparisons_with_one_status_read(
    ui_env: Backend, comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = ApiClient.request

    def counted(self: ApiClient, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(self, method, path, **kw)

    monkeypatch.setattr(ApiClient, "request", counted)
    sweep = comparison.sweep
    at = app_test()
    at.session_state["launched_sweeps"] = [{"id": sweep["id"], "name": sweep["name"], "status": "running"}]
    calls.clear()
    at.run()
    no_traceback(at)
    shown = [c.value for c in at.sidebar.caption]
    assert any(sweep["name"] in v and "— done" in v for v in shown), shown
    assert "/api/v1/status" in calls
    assert not [p for p in calls if p.startswith(f"/api/v1/sweeps/{sweep['id']}") or p == "/api/v1/runs"]


def test_sidebar_says_the_api_is_away_and_keeps_trying(
    ui_env: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_test()
    at.session_state["launched_sweeps"] = [{"id": 1, "name": "gone", "status": "running"}]
    monkeypatch.setenv("AICD_API_URL", f"http://127.0.0.1:{free_port()}")
    at.run()
    no_traceback(at)
    assert any("Backend unreachable" in e.value for e in at.sidebar.error), [
        e.value for e in at.sidebar.error
    ]
    assert (
        at.session_state["launched_sweeps"][0]["status"] == "running"
    )  # still followed: the next tick retries
