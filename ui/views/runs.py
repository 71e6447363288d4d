"""Runs: live status of training runs, sweeps and evaluations; loss curves while training; cancel / resume."""

from __future__ import annotations

from collections.abc import Container

import pandas as pd
import streamlit as st

from ui.client import ApiClient
from ui.components import common as c
from ui.components import live, overlay, plans, tracking

VIEWS = {"runs": "Training runs", "sweeps": "Sweeps", "evaluations": "Evaluations"}


def default_view(params: Container[str]) -> str:
    """The section a URL without `?view=` opens: a shared `?sweep=ID` link its sweep, anything else the runs (links
    of the tabbed page carried `run=` and `sweep=` both, and opened on the runs)."""
    return "sweeps" if "sweep" in params and "run" not in params else "runs"


def pick_view() -> str:
    """One section at a time (kept in `?view=`): only the section on show renders, so only its live panel polls
    (tabs would render, and poll, all three)."""
    c.from_url("view", "runs_view", list(VIEWS), default_view(st.query_params))
    view = st.segmented_control(
        "Show",
        list(VIEWS),
        key="runs_view",
        required=True,
        format_func=VIEWS.get,
        label_visibility="collapsed",
    )
    c.to_url("view", view)
    return view


def main() -> None:
    st.title("Runs")
    client = c.api()
    base = c.base()
    section = {"runs": runs_section, "sweeps": sweeps_section, "evaluations": evaluations_section}
    section[pick_view()](client, base)


# ------------------------------------------------------------------------------------------------ runs
def runs_section(client: ApiClient, base: str) -> None:
    registry = c.registry(base)
    runs = c.fresh_listing(c.runs, base, "run")
    if not runs:
        st.info("No training runs yet — start one on the **Launch** page.", icon=":material/rocket_launch:")
        st.page_link("views/launch.py", label="Launch", icon=":material/rocket_launch:")
        return
    table = pd.DataFrame(
        [
            {
                "id": r["id"],
                "name": r["name"],
                "status": c.status_label(r),
                "objective": c.objective_label(r["config"].get("objective")),
                "ω": None
                if plans.omega_free(
                    registry,
                    r["config"].get("objective"),
                    r["config"].get("schedule", "paper"),
                    r["config"].get("weights"),
                )
                else r["config"].get("omega"),
                "n": r["config"].get("n_shots"),
                "seed": r["config"].get("seed"),
                "model": r["config"].get("model"),
                "progress": c.progress_fraction(r),
                "step": f"{r['step']}/{r['total_steps']}",
                "loss": (r.get("last_metrics") or {}).get("loss"),
                "sweep": r.get("sweep_id"),
            }
            for r in runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        height=min(320, 40 + 35 * len(runs)),
        column_config={
            "progress": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")
        },
    )
    by_id = {r["id"]: r for r in runs}
    # the last choice kept outside the widget too: a rerun from inside the live fragment (after Cancel)
    # can drop the selectbox's own state, and the page must stay on the run the user was looking at
    kept = st.session_state.get("runs_selected")
    c.from_url("run", "runs_pick", list(by_id), kept if kept in by_id else c.default_run(runs))
    run_id = st.selectbox("Run", list(by_id), key="runs_pick", format_func=lambda i: c.run_label(by_id[i]))
    c.to_url("run", run_id)
    st.session_state["runs_selected"] = run_id

    run = by_id[run_id]
    sweep = next((x for x in c.sweeps(base) if x["id"] == run.get("sweep_id")), None)
    every = live.run_poll(run, c.run_evaluations(base, run_id), sweep)

    live.follow(f"run-{run_id}", every, lambda every: live.run_panel(client, run_id, every))

    with st.expander("Evaluate this run"):
        if run["status"] != "succeeded" and not run.get("checkpoint_step"):
            st.caption("Available once the run has a checkpoint.")
        else:
            ds = c.pick_dataset("Evaluate on", "runs_eval_ds")
            shots_ds = c.pick_dataset(
                "Shots from",
                "runs_eval_shots_ds",
                allow_none=True,
                help="demonstrations for k-shot prompts (default: the run's data)",
            )
            a, b, cc = st.columns(3)
            shots = a.text_input("shots", "0,1,2,3", key="runs_eval_shots")
            seeds = b.text_input("seeds", "0,1,2", key="runs_eval_seeds")
            limit = int(cc.number_input("questions (0 = all)", 0, 100_000, 0, key="runs_eval_limit"))
            try:
                cfg = {
                    "shots": [int(x) for x in shots.split(",") if x.strip()],
                    "seeds": [int(x) for x in seeds.split(",") if x.strip()],
                }
            except ValueError:
                st.error("shots and seeds are comma-separated integers", icon=":material/block:")
                cfg = None
            if limit:
                cfg = {**(cfg or {}), "limit": limit} if cfg else None
            if st.button("Evaluate", key="runs_eval_go", disabled=cfg is None) and cfg and ds:
                shots_id = (shots_ds or {}).get("id") or run.get("dataset_id")
                made = c.attempt(
                    client.create_evaluation,
                    cfg,
                    run_id=run_id,
                    dataset_id=ds["id"],
                    shots_dataset_id=shots_id,
                    what="evaluate",
                )
                if made:
                    c.clear_caches()
                    st.success(f"Evaluation #{made['id']} queued.", icon=":material/check_circle:")

    tracking.mlflow_link(run)
    with st.expander("Overlay runs: loss and accuracy curves, hyper-parameters", expanded=False):
        overlay.overlay(base, runs, run)
    with st.expander("Config"):
        st.json(run["config"], expanded=False)
    with st.expander("Artifacts"):
        arts = c.attempt(client.artifacts, run_id=run_id, what="artifacts") or []
        for ev in c.run_evaluations(base, run_id)[:5]:  # its evaluations' results and generations
            arts += c.attempt(client.artifacts, evaluation_id=ev["id"], what="artifacts") or []
        if not arts:
            st.caption(
                "No artifacts yet (the final model, the metrics and each evaluation's generations "
                "appear when they are done)."
            )
        live.artifact_downloads(client, arts, "runs")


# ------------------------------------------------------------------------------------------------ sweeps
def sweeps_section(client: ApiClient, base: str) -> None:
    sweeps = c.fresh_listing(c.sweeps, base, "sweep")
    if not sweeps:
        st.info(
            "No sweeps yet — launch a comparison or a sweep on the **Launch** page.",
            icon=":material/rocket_launch:",
        )
        return
    by_sid = {s["id"]: s for s in sweeps}
    running_sweeps = [s for s in sweeps if s["status"] == "running"]
    kept_sweep = st.session_state.get("sweeps_selected")
    c.from_url(
        "sweep",
        "sweeps_pick",
        list(by_sid),
        kept_sweep if kept_sweep in by_sid else (running_sweeps or sweeps)[0]["id"],
    )
    sid = st.selectbox(
        "Sweep",
        list(by_sid),
        key="sweeps_pick",
        format_func=lambda i: f"#{i} {by_sid[i]['name']} · {c.status_label(by_sid[i])}",
    )

    c.to_url("sweep", sid)
    st.session_state["sweeps_selected"] = sid
    sweep_every = c.poll_every(by_sid[sid])

    live.follow(f"sweep-{sid}", sweep_every, lambda every: live.sweep_panel(client, sid, every))
    with st.expander("Sweep artifacts (results table, figures)"):
        arts = c.attempt(client.artifacts, sweep_id=sid, what="artifacts") or []
        if not arts:
            st.caption("Nothing yet: the results table and figures are written as runs finish.")
        live.artifact_downloads(client, arts, "sweeps")


# ------------------------------------------------------------------------------------------------ evaluations
def evaluations_section(client: ApiClient, base: str) -> None:
    evals = c.evaluations(base)
    if not evals:
        st.info("No evaluations yet.", icon=":material/calculate:")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": e["id"],
                    "run": e.get("run_id"),
                    "status": c.status_label(e),
                    "progress": c.progress_fraction(e),
                    "dataset": e.get("dataset_id") or e["config"].get("dataset"),
                    "shots": ",".join(map(str, e["config"].get("shots", []))),
                    "seeds": ",".join(map(str, e["config"].get("seeds", []))),
                    "error": e.get("error"),
                }
                for e in evals
            ]
        ),
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )
    active = [e for e in evals if e["status"] in ("failed", "cancelled", "lost", "queued", "running")]
    for ev in active[:10]:
        with st.container(border=True):
            st.markdown(f"evaluation #{ev['id']} · {c.status_label(ev)}")
            live.job_state(ev, "evaluation")
            live.actions(client, "evaluations", ev, "evals")


c.guarded(main)
