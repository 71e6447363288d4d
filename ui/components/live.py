"""The live panels of the Runs page (one training run, one sweep) and its artifact downloads.

Each panel body is what an `st.fragment(run_every=...)` tick runs on its own, outside the page's guard, so it
catches every ApiError itself (`fragment_guard`) and says what went wrong instead of raising. It returns the
`run_every` it would choose now (None once everything it shows has ended), so the page can stop polling.
A tick makes one request (`GET /runs/{id}/live`, `GET /sweeps/{id}/live`, `GET /annotations/{id}/live`): one
viewer costs one read per panel per tick, however many resources the panel shows. The sidebar follows the sweeps
launched in this session; each panel read asks for them too (`sidebar_sweeps`) and keeps what it read
(`publish`), so while a panel polls the sidebar reads nothing itself (`followed_sweeps`): one request per tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ui.client import ApiClient, ApiError
from ui.components import charts, plans
from ui.components import common as c

INLINE_MAX = 5 * 1024 * 1024  # artifacts up to this size are fetched with the page (cached) ...
DOWNLOAD_MAX = 512 * 1024 * 1024  # ... larger ones only when their button is clicked; beyond this, not at all


def follow(key: str, every: float | None, panel: Callable[[float | None], float | None]) -> None:
    """Draw `panel(every)` in a fragment re-run every `every` seconds (None: once); when what it shows ends or
    wakes up (it returns another timer), rerun the page once (`settle_when_ended`) under `key`."""

    @st.fragment(run_every=every)
    def tick() -> None:
        c.settle_when_ended(key, every, panel(every))

    tick()


def actions(client: ApiClient, kind: str, job: dict[str, Any], key: str) -> None:
    """Cancel (queued/running) and Resume (failed/cancelled/lost) buttons; the page reruns after either."""
    a, b, _ = st.columns([1, 1, 5])
    if c.display_status(job) == "cancelling":  # asked already: nothing to click until the server confirms
        a.button(
            "Cancelling…", key=f"{key}_cancelling_{job['id']}", disabled=True, icon=":material/hourglass_top:"
        )
    elif job["status"] in c.ACTIVE and a.button(
        "Cancel", key=f"{key}_cancel_{job['id']}", icon=":material/stop_circle:"
    ):
        if c.attempt(client.job_action, kind, job["id"], "cancel", what="cancel"):
            st.toast(f"cancel requested for {kind[:-1]} {job['id']}")
            c.clear_caches()
            st.rerun()
    if job["status"] in ("failed", "cancelled", "lost") and b.button(
        "Resume", key=f"{key}_resume_{job['id']}", icon=":material/play_arrow:"
    ):
        if c.attempt(client.job_action, kind, job["id"], "resume", what="resume"):
            c.clear_caches()
            st.rerun()


def job_state(job: dict[str, Any], what: str) -> None:
    if job["status"] == "failed":
        st.error(f"This {what} failed: {job.get('error') or 'no reason given'}", icon=":material/error:")
    elif job["status"] == "lost":
        st.warning(f"{job.get('error') or 'The worker stopped responding.'}", icon=":material/warning:")
    elif job["status"] == "cancelled":
        reason = f" ({job['error']})" if job.get("error") else ""
        st.info(
            f"This {what} was cancelled{reason}; resume continues where it stopped.",
            icon=":material/stop_circle:",
        )
    elif c.display_status(job) == "cancelling":
        st.info(
            f"Cancelling: the worker stops this {what} at its next check and keeps its checkpoint.",
            icon=":material/hourglass_top:",
        )
    elif job["status"] == "queued":
        st.info(
            f"Queued: waiting for a worker (attempt {job['attempt']}).", icon=":material/hourglass_empty:"
        )


def run_poll(
    run: dict[str, Any], evaluations: list[dict[str, Any]], sweep: dict[str, Any] | None
) -> float | None:
    """Fast while the run or one of its evaluations is active; slowly while its sweep may still evaluate it."""
    return c.poll_every(run, *evaluations, waiting=bool(sweep and sweep.get("status") in c.ACTIVE))


def run_panel(client: ApiClient, run_id: int, every: float | None = None) -> float | None:
    """Status, progress, loss curve, cancel/resume and the evaluations of one run (read fresh each tick).
    When the backend fails, says so and keeps the current timer `every` (the next tick tries again)."""
    with c.fragment_guard():
        return _run_panel(client, run_id)
    return every


METRICS_HELD = "runs_live_metrics"  # session key: the metric points of the run on show, kept between ticks


def merge_metrics(
    held: list[dict[str, Any]], run: dict[str, Any], new: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The points `held` from earlier ticks followed by this tick's `new` ones (those after the last held), or
    None when the held ones are stale: a resumed run restarts at its checkpoint (its `step` falls below the last
    point held) and rewrites the points after it, so they must be read again from the start."""
    if held and run["step"] < held[-1]["step"]:
        return None
    return held + new


def read_run(client: ApiClient, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """This tick's live view of a run (one request) and all its metric points: only the new points travel.
    Further reads only to catch up once: a run first shown with more points than one page, or just resumed."""
    held = st.session_state.get(METRICS_HELD) or {}
    points = held.get("points", []) if held.get("run") == run_id else []
    view = client.run_live(
        run_id, metrics_after=points[-1]["step"] if points else None, sweeps=sidebar_sweeps()
    )
    merged = merge_metrics(points, view["run"], view["metrics"]["items"])
    if merged is None:
        merged = client.metrics(run_id)
    elif view["metrics"].get("next_cursor"):
        merged += client.metrics(run_id, after=int(view["metrics"]["next_cursor"]))
    st.session_state[METRICS_HELD] = {"run": run_id, "points": merged}
    return view, merged


def _run_panel(client: ApiClient, run_id: int) -> float | None:
    view, metrics = read_run(client, run_id)
    run, evals, sweep = view["run"], view["evaluations"], view["sweep"]
    publish({sweep["id"]: sweep} if sweep else {}, [run], view["followed"])
    cfg = run["config"]
    st.markdown(
        f"### {c.md_escape(run['name'])}  \n{c.status_label(run)} · "
        f"{c.objective_label(cfg.get('objective'))} · "
        f"n = {cfg.get('n_shots')} · schedule {cfg.get('schedule')} (ω = {cfg.get('omega')}) · "
        f"model `{cfg.get('model')}` · seed {cfg.get('seed')}"
    )
    job_state(run, "run")
    total = run["total_steps"]
    st.progress(
        c.progress_fraction(run),
        text=f"step {run['step']}/{total}" if total else "waiting for the first step",
    )
    last = run.get("last_metrics") or {}
    m = st.columns(4)
    m[0].metric("loss", f"{last['loss']:.4f}" if isinstance(last.get("loss"), int | float) else "–")
    m[1].metric("learning rate", f"{last['lr']:.2e}" if isinstance(last.get("lr"), int | float) else "–")
    tps = last.get("tokens_per_s")
    m[2].metric("tokens/s", f"{tps:,.0f}" if isinstance(tps, int | float) else "–")
    m[3].metric("checkpoint", run.get("checkpoint_step") or "–")
    fig = charts.training_curves(metrics)
    acc = charts.accuracy_curve(metrics)
    if fig is not None and acc is not None:
        left, right = st.columns(2)
        left.plotly_chart(fig, key=f"runs_curve_{run_id}")
        right.plotly_chart(acc, key=f"runs_accuracy_{run_id}")
    elif fig is not None:
        st.plotly_chart(fig, key=f"runs_curve_{run_id}")
    elif run["status"] not in c.ACTIVE:
        st.caption("No metrics were logged for this run.")
    actions(client, "runs", run, "runs")

    if evals:
        st.markdown("**Evaluations**")
        for ev in evals:
            summary = pd.DataFrame(ev.get("summary") or [])
            label = (
                f"evaluation #{ev['id']} · {c.status_label(ev)} · "
                f"{ev['progress_done']}/{ev['progress_total']} generations"
            )
            with st.expander(label, expanded=ev["status"] in c.ACTIVE):
                job_state(ev, "evaluation")
                if not summary.empty:
                    summary = summary.assign(
                        dataset=str(ev.get("dataset_id")),
                        objective=run["name"],
                        mean=summary["mean"] * 100,
                        std=summary["std"] * 100,
                    )
                    st.plotly_chart(
                        charts.accuracy_by_shots(summary, title="accuracy (%) by shots"),
                        key=f"runs_eval_{ev['id']}",
                    )
    every = run_poll(run, evals, sweep)
    c.live_caption(every)
    return every


def sweep_panel(client: ApiClient, sweep_id: int, every: float | None = None) -> float | None:
    """Progress, member runs, the results table so far and cancel/resume of one sweep (`every` as above)."""
    with c.fragment_guard():
        return _sweep_panel(client, sweep_id)
    return every


def _sweep_panel(client: ApiClient, sweep_id: int) -> float | None:
    view = client.sweep_live(sweep_id, sweeps=sidebar_sweeps())
    sweep, table, members = view["sweep"], view["table"], view["runs"]
    publish({sweep["id"]: {**sweep, "runs": members}}, members, view["followed"])
    job_state(sweep, "sweep")
    total = sweep["progress_total"]
    st.progress(
        c.progress_fraction(sweep),
        text=f"{sweep['progress_done']}/{total} jobs" if total else "waiting for a worker",
    )
    if members:
        st.dataframe(
            pd.DataFrame(
                [
                    {"run": r["name"], "status": c.status_label(r), "progress": c.progress_fraction(r)}
                    for r in members
                ]
            ),
            hide_index=True,
            column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        )
    if table["rows"]:
        st.dataframe(pd.DataFrame(table["rows"], columns=table["columns"]), hide_index=True)
    actions(client, "sweeps", sweep, "sweeps")
    every = c.poll_every(sweep)
    c.live_caption(every)
    return every


# -- what the panel read, for the sidebar ----------------------------------------------------------------------

SEEN = "live_seen"  # session key: the sweeps and runs the page's live panel read at its last tick, and when
# ... current while this young: a panel polling every 2 s, allowing one late tick
SEEN_FRESH = 2 * c.LIVE_EVERY
FOLLOWED = "live_followed"  # session key: the sidebar's last state of each sweep it follows (with its runs)


def sidebar_sweeps() -> list[int]:
    """The sweeps the sidebar follows now (launched in this session, not ended): every panel read asks for them."""
    return [i["id"] for i in plans.launched() if i["status"] not in plans.ENDED]


def publish(
    sweeps: dict[int, dict[str, Any]], runs: list[dict[str, Any]], followed: Sequence[dict[str, Any]] = ()
) -> None:
    """Keep the job states this tick read: `sweeps` by id (with their `runs` when the panel read them all) and
    the `followed` sweeps the read brought for the sidebar (always with their runs)."""
    sweeps = {**sweeps, **{s["id"]: s for s in followed}}
    st.session_state[SEEN] = {"at": time.monotonic(), "sweeps": sweeps, "runs": {r["id"]: r for r in runs}}


def seen_now() -> dict[str, Any] | None:
    """What the page's panel read, while it still polls (else None: an ended or closed panel reads no more)."""
    seen = st.session_state.get(SEEN)
    return seen if seen and time.monotonic() - seen["at"] <= SEEN_FRESH else None


def followed_sweeps(client: ApiClient, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The sweeps `ids` with their `runs`, for the sidebar: from the page panel's last read when it covers all of
    them (no request: the page already pays one per tick), else one `GET /status`. A run panel reads its sweep's
    state and one run; the sweep's other runs keep the state the sidebar read last."""
    held: dict[int, dict[str, Any]] = st.session_state.setdefault(FOLLOWED, {})
    seen = seen_now()
    if seen is None or any(i not in seen["sweeps"] for i in ids):
        got = {s["id"]: s for s in client.status(sweeps=ids)["sweeps"]}
        held.update(got)
        return got
    for i in ids:
        sweep = seen["sweeps"][i]
        runs = sweep.get("runs")
        if runs is None:
            runs = [seen["runs"].get(r["id"], r) for r in held.get(i, {}).get("runs", [])]
        held[i] = {**sweep, "runs": runs}
    return {i: held[i] for i in ids}


# -- artifacts ----------------------------------------------------------------------------------------------


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def artifact_bytes(base_url: str, artifact_id: int) -> bytes:
    return c.api().download(artifact_id)


def _deferred(client: ApiClient, artifact_id: int) -> Callable[[], bytes]:
    def fetch() -> bytes:  # runs when the button is clicked (Streamlit calls it on another thread)
        try:
            return client.download(artifact_id)
        except ApiError as exc:
            return f"download of artifact {artifact_id} failed: {exc.message}\n".encode()

    return fetch


def artifact_downloads(client: ApiClient, artifacts: list[dict[str, Any]], key: str) -> None:
    """One download button per artifact, served through this UI (the browser never needs to reach the API,
    and the API token stays on the server side of the UI)."""
    for art in artifacts:
        size = int(art.get("size_bytes") or 0)
        name = str(art["path"]).rstrip("/").rsplit("/", 1)[-1] or f"artifact-{art['id']}"
        label = f"{art['path']} · {art['kind']} · {size / 1e6:.2f} MB"
        if size > DOWNLOAD_MAX:
            st.caption(
                f"`{art['path']}` ({size / 1e9:.2f} GB) is too large to download through the UI "
                f"(limit {DOWNLOAD_MAX / 1e6:.0f} MB): fetch it with `GET /api/v1/artifacts/{art['id']}/download` "
                "or from the server's artifact directory."
            )
            continue
        if size <= INLINE_MAX:
            try:
                data: bytes | Callable[[], bytes] = artifact_bytes(client.base_url, int(art["id"]))
            except ApiError as exc:
                c.show_error(exc, f"artifact {art['path']}")
                continue
        else:
            data = _deferred(client, int(art["id"]))
        st.download_button(
            label,
            data,
            file_name=name,
            mime="application/octet-stream",
            key=f"{key}_art_{art['id']}",
            on_click="ignore",
            icon=":material/download:",
        )
