"""The Runs page's live panels cost one request per tick (`GET /runs/{id}/live`, `GET /sweeps/{id}/live`), however
many resources they show: counted at the HTTP client, on a tick as `st.fragment(run_every=...)` runs it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import (
    APP,
    TINY_EVAL,
    TINY_TRAIN,
    Backend,
    Comparison,
    Seeded,
    Timers,
    job_ended,
    no_traceback,
    plotly_values,
    texts,
    wait_until,
)
from ui.components import live, plans

SIDEBAR_EVERY = 3.0  # ui/app.py's timer while a comparison launched in the session runs


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every HTTP request any httpx client of this process sends from now on."""
    requests: list[httpx.Request] = []
    real = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs):  # type: ignore[no-untyped-def]
        requests.append(request)
        return real(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", send)
    return requests


def _run_tick(url: str, run_id: int) -> None:
    """One tick of the run panel: what the Runs page's fragment runs every `run_every` seconds."""
    from ui.client import ApiClient
    from ui.components import live

    live.run_panel(ApiClient(url), run_id, 2.0)


def _sweep_tick(url: str, sweep_id: int) -> None:
    from ui.client import ApiClient
    from ui.components import live

    live.sweep_panel(ApiClient(url), sweep_id, 2.0)


def _paths(sent: list[httpx.Request], *, cached: bool = False) -> list[str]:
    """The paths requested; `cached=False` leaves out the objective registry, a cached read (5 min) that the page
    has made already when a panel ticks (a tick of a panel alone starts with an empty cache)."""
    return [r.url.path for r in sent if cached or r.url.path != "/api/v1/objectives"]


def _curve_steps(at: AppTest) -> list[int]:
    specs = [json.loads(p.proto.spec) for p in at.get("plotly_chart")]
    curve = next(s for s in specs if s["layout"]["title"]["text"] == "training loss")
    return plotly_values(curve["data"][0]["x"])


def test_run_panel_reads_run_metrics_evaluations_and_sweep_in_one_request_per_tick(
    ui_env: Backend, comparison: Comparison, sent: list[httpx.Request]
) -> None:
    run = next(r for r in comparison.runs if r["config"]["objective"] == "aicd")  # in a sweep, evaluated
    steps = [p["step"] for p in ui_env.client.metrics(run["id"])]
    assert steps and run.get("sweep_id")
    tick = AppTest.from_function(_run_tick, args=(ui_env.url, run["id"]), default_timeout=60)
    sent.clear()
    tick.run()
    no_traceback(tick)
    assert _paths(sent) == [f"/api/v1/runs/{run['id']}/live"]
    assert run["name"] in texts(tick) and _curve_steps(tick) == steps
    assert any(e.label.startswith("evaluation #") for e in tick.expander)

    sent.clear()
    tick.run()  # the next tick: nothing else, and only the points after the last one it holds
    no_traceback(tick)
    assert _paths(sent, cached=True) == [f"/api/v1/runs/{run['id']}/live"]
    assert parse_qs(sent[0].url.query.decode()) == {"metrics_after": [str(steps[-1])]}
    assert _curve_steps(tick) == steps


def test_run_panel_reads_all_points_again_after_a_resume(
    ui_env: Backend, comparison: Comparison, sent: list[httpx.Request]
) -> None:
    run = comparison.runs[0]
    steps = [p["step"] for p in ui_env.client.metrics(run["id"])]
    tick = AppTest.from_function(_run_tick, args=(ui_env.url, run["id"]), default_timeout=60)
    # points held from before a resume: past the step the run restarted from, with values since rewritten
    stale = [
        {"step": s, "loss": 99.0, "lr": None, "epoch": None, "values": {}} for s in range(1, steps[-1] + 5)
    ]
    tick.session_state[live.METRICS_HELD] = {"run": run["id"], "points": stale}
    sent.clear()
    tick.run()
    no_traceback(tick)
    assert _paths(sent) == [
        f"/api/v1/runs/{run['id']}/live",
        f"/api/v1/runs/{run['id']}/metrics",
    ]
    assert _curve_steps(tick) == steps
    assert tick.session_state[live.METRICS_HELD]["points"] == ui_env.client.metrics(run["id"])


def test_merge_metrics_appends_new_points_and_drops_stale_ones() -> None:
    held = [{"step": 1}, {"step": 2}]
    assert live.merge_metrics(held, {"step": 3}, [{"step": 3}]) == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert live.merge_metrics([], {"step": 0}, []) == []
    assert live.merge_metrics(held, {"step": 1}, []) is None  # resumed from the checkpoint at step 1


def test_sweep_panel_reads_sweep_table_and_runs_in_one_request_per_tick(
    ui_env: Backend, comparison: Comparison, sent: list[httpx.Request]
) -> None:
    sweep = comparison.sweep
    tick = AppTest.from_function(_sweep_tick, args=(ui_env.url, sweep["id"]), default_timeout=60)
    sent.clear()
    tick.run()
    no_traceback(tick)
    assert _paths(sent, cached=True) == [f"/api/v1/sweeps/{sweep['id']}/live"]
    frames = [d.value for d in tick.dataframe]
    members = next(f for f in frames if "run" in f.columns)
    assert list(members["run"]) == [r["name"] for r in comparison.runs]
    assert all("succeeded" in s for s in members["status"])
    table = ui_env.client.sweep_table(sweep["id"])
    assert table["rows"] and any(
        len(f) == len(table["rows"]) and list(f.columns) == table["columns"] for f in frames
    )


@pytest.fixture
def long_sweep(ui_env: Backend, seeded: Seeded) -> Iterator[tuple[dict, dict]]:
    """A sweep whose one run trains long enough to watch (cancelled at the end), and that run once it exists."""
    api = ui_env.client
    train = {**TINY_TRAIN, "objective": "nocot", "max_steps": 100_000}
    body = plans.sweep_body(train, ["nocot"], seeded.train["id"], TINY_EVAL, seeded.test["id"])
    sweep = api.create_sweep(body, name=f"ui-one-read-{uuid.uuid4().hex[:8]}")  # a name per test
    try:
        run = wait_until(lambda: next(iter(api.runs(sweep_id=sweep["id"])), None), 300, "the sweep's run")
        yield sweep, run
    finally:
        api.job_action("sweeps", sweep["id"], "cancel")
        wait_until(lambda: job_ended(api.sweep, sweep["id"]), 300, "the cancelled sweep")


def _runs_page(followed: dict, **params: str) -> AppTest:
    """The router on the Runs page opened from a URL with `params`, in a session that launched `followed`."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[plans.LAUNCHED_KEY] = [
        {"id": followed["id"], "name": followed["name"], "status": "running"}
    ]
    at.run()
    at.switch_page("views/runs.py")
    at.query_params.update(params)
    at.run()
    no_traceback(at)
    return at


def test_runs_page_with_a_followed_sweeps_run_makes_one_request_per_tick(
    long_sweep: tuple[dict, dict], timers: Timers, sent: list[httpx.Request]
) -> None:
    sweep, run = long_sweep
    at = _runs_page(sweep, run=str(run["id"]))
    assert at.segmented_control(key="runs_view").value == "runs"
    assert at.selectbox(key="runs_pick").value == run["id"]
    assert sorted(timers.every.values()) == [
        live.c.LIVE_EVERY,
        SIDEBAR_EVERY,
    ]  # the run panel and the sidebar
    for _ in range(2):  # each timer fires: the run panel reads, the sidebar shows what it read
        sent.clear()
        sidebar, panel = timers.tick(at)
        assert _paths(sent, cached=True) == [f"/api/v1/runs/{run['id']}/live"]
        shown = [cap.value for cap in sidebar.sidebar.caption]
        assert any(sweep["name"] in v and "trained and evaluated" in v for v in shown), shown
        assert any(run["name"] in m.value for m in panel.markdown)  # the run panel drew its run


def test_a_panel_on_something_the_sidebar_does_not_follow_reads_for_both_in_one_request(
    long_sweep: tuple[dict, dict], ui_env: Backend, seeded: Seeded, timers: Timers, sent: list[httpx.Request]
) -> None:
    """The page shows a stand-alone run while the sidebar follows a sweep: the run panel's read asks for the
    sweep too (`sweep=`), so each tick is still one request and the sidebar shows the sweep's runs."""
    sweep, _ = long_sweep
    api = ui_env.client
    alone = api.create_run(
        {**TINY_TRAIN, "objective": "nocot", "max_steps": 100_000},
        name="ui-alone",
        dataset_id=seeded.train["id"],
    )
    try:
        at = _runs_page(sweep, run=str(alone["id"]))
        assert at.selectbox(key="runs_pick").value == alone["id"]
        assert sorted(timers.every.values()) == [live.c.LIVE_EVERY, SIDEBAR_EVERY]
        for _ in range(2):
            sent.clear()
            sidebar, panel = timers.tick(at)
            assert _paths(sent, cached=True) == [f"/api/v1/runs/{alone['id']}/live"]
            assert parse_qs(sent[0].url.query.decode())["sweep"] == [str(sweep["id"])]
            shown = [cap.value for cap in sidebar.sidebar.caption]
            assert any(sweep["name"] in v and "trained and evaluated" in v for v in shown), shown
            assert any("ui-alone" in m.value for m in panel.markdown)
    finally:
        api.job_action("runs", alone["id"], "cancel")
        wait_until(lambda: job_ended(api.run, alone["id"]), 300, "the cancelled stand-alone run")


def test_the_sidebar_reads_for_itself_when_no_panel_polls(
    long_sweep: tuple[dict, dict], timers: Timers, sent: list[httpx.Request]
) -> None:
    sweep, _ = long_sweep
    at = _runs_page(sweep, view="evaluations")  # no live panel on the page: the sidebar alone polls
    assert list(timers.every.values()) == [SIDEBAR_EVERY]
    sent.clear()
    timers.tick(at)
    assert _paths(sent, cached=True) == ["/api/v1/status"]

    at = _runs_page(sweep, view="sweeps", sweep=str(sweep["id"]))  # the sweep's own panel covers it
    assert at.selectbox(key="sweeps_pick").value == sweep["id"]
    sent.clear()
    timers.tick(at)
    assert _paths(sent, cached=True) == [f"/api/v1/sweeps/{sweep['id']}/live"]
