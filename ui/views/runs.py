"""Runs: live status of training runs, sweeps and evaluations; loss curves while training; cancel / resume."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.client import ApiError
from ui.components import charts
from ui.components import common as c


def main() -> None:
    st.title("Runs")
    client = c.api()
    base = c.base()

    runs_tab, sweeps_tab, evals_tab = st.tabs(["Training runs", "Sweeps", "Evaluations"])

    def _actions(kind: str, job: dict[str, Any], key: str) -> None:
        a, b, _ = st.columns([1, 1, 5])
        if job["status"] in c.ACTIVE and a.button("⏹ Cancel", key=f"{key}_cancel_{job['id']}"):
            if c.attempt(client.job_action, kind, job["id"], "cancel", what="cancel"):
                st.toast(f"cancel requested for {kind[:-1]} {job['id']}")
                c.clear_caches()
                st.rerun()
        if job["status"] in ("failed", "cancelled", "lost") and b.button(
            "▶ Resume", key=f"{key}_resume_{job['id']}"
        ):
            if c.attempt(client.job_action, kind, job["id"], "resume", what="resume"):
                c.clear_caches()
                st.rerun()

    def _job_state(job: dict[str, Any], what: str) -> None:
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
        elif job["status"] == "queued":
            st.info(
                f"Queued: waiting for a worker (attempt {job['attempt']}).", icon=":material/hourglass_empty:"
            )

    # ------------------------------------------------------------------------------------------------ runs
    with runs_tab:
        runs = c.runs(base)
        if not runs:
            st.info(
                "No training runs yet — start one on the **Launch** page.", icon=":material/rocket_launch:"
            )
            st.page_link("views/launch.py", label="Launch", icon=":material/rocket_launch:")
        else:
            table = pd.DataFrame(
                [
                    {
                        "id": r["id"],
                        "name": r["name"],
                        "status": c.status_label(r),
                        "objective": c.OBJECTIVE_LABELS.get(
                            r["config"].get("objective"), r["config"].get("objective")
                        ),
                        "ω": r["config"].get("omega") if r["config"].get("objective") == "aicd" else None,
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
            if st.session_state.get("runs_pick") not in by_id:
                st.session_state["runs_pick"] = runs[0]["id"]
            run_id = st.selectbox(
                "Run", list(by_id), key="runs_pick", format_func=lambda i: c.run_label(by_id[i])
            )

            @st.fragment(run_every=2)
            def run_panel(run_id: int) -> None:
                try:
                    run = client.run(run_id)
                    metrics = client.metrics(run_id)
                except ApiError as exc:
                    c.show_error(exc)
                    return
                cfg = run["config"]
                st.markdown(
                    f"### {run['name']}  \n{c.status_label(run)} · "
                    f"{c.OBJECTIVE_LABELS.get(cfg.get('objective'), cfg.get('objective'))} · "
                    f"n = {cfg.get('n_shots')} · schedule {cfg.get('schedule')} (ω = {cfg.get('omega')}) · "
                    f"model `{cfg.get('model')}` · seed {cfg.get('seed')}"
                )
                _job_state(run, "run")
                total = run["total_steps"]
                st.progress(
                    c.progress_fraction(run),
                    text=f"step {run['step']}/{total}" if total else "waiting for the first step",
                )
                last = run.get("last_metrics") or {}
                m = st.columns(4)
                m[0].metric(
                    "loss", f"{last['loss']:.4f}" if isinstance(last.get("loss"), int | float) else "–"
                )
                m[1].metric(
                    "learning rate", f"{last['lr']:.2e}" if isinstance(last.get("lr"), int | float) else "–"
                )
                tps = last.get("tokens_per_s")
                m[2].metric("tokens/s", f"{tps:,.0f}" if isinstance(tps, int | float) else "–")
                m[3].metric("checkpoint", run.get("checkpoint_step") or "–")
                fig = charts.training_curves(metrics)
                if fig is not None:
                    st.plotly_chart(fig, key=f"runs_curve_{run_id}")
                elif run["status"] not in c.ACTIVE:
                    st.caption("No metrics were logged for this run.")
                _actions("runs", run, "runs")

                evals = [e for e in c.evaluations(base) if e.get("run_id") == run_id]
                if evals:
                    st.markdown("**Evaluations**")
                    for ev in evals:
                        summary = pd.DataFrame(ev.get("summary") or [])
                        label = (
                            f"evaluation #{ev['id']} · {c.status_label(ev)} · "
                            f"{ev['progress_done']}/{ev['progress_total']} generations"
                        )
                        with st.expander(label, expanded=ev["status"] in c.ACTIVE):
                            _job_state(ev, "evaluation")
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
                if run["status"] in c.ACTIVE:
                    return
                c.evaluations.clear()

            run_panel(run_id)
            run = by_id[run_id]

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

            with st.expander("Config"):
                st.json(run["config"], expanded=False)
            with st.expander("Artifacts"):
                arts = c.attempt(client.artifacts, run_id=run_id, what="artifacts") or []
                if not arts:
                    st.caption("No artifacts yet (the final model and metrics appear when the run ends).")
                for art in arts:
                    st.markdown(
                        f"- [`{art['path']}`]({client.file_url(art['id'])}) · {art['kind']} · "
                        f"{art['size_bytes'] / 1e6:.2f} MB"
                    )

    # ------------------------------------------------------------------------------------------------ sweeps
    with sweeps_tab:
        sweeps = c.sweeps(base)
        if not sweeps:
            st.info(
                "No sweeps yet — launch a comparison or a sweep on the **Launch** page.",
                icon=":material/rocket_launch:",
            )
        else:
            by_sid = {s["id"]: s for s in sweeps}
            sid = st.selectbox(
                "Sweep",
                list(by_sid),
                key="sweeps_pick",
                format_func=lambda i: f"#{i} {by_sid[i]['name']} · {c.status_label(by_sid[i])}",
            )

            @st.fragment(run_every=3)
            def sweep_panel(sweep_id: int) -> None:
                try:
                    sweep = client.sweep(sweep_id)
                    table = client.sweep_table(sweep_id)
                    members = client.runs(sweep_id=sweep_id)
                except ApiError as exc:
                    c.show_error(exc)
                    return
                _job_state(sweep, "sweep")
                total = sweep["progress_total"]
                st.progress(
                    c.progress_fraction(sweep),
                    text=f"{sweep['progress_done']}/{total} jobs" if total else "waiting for a worker",
                )
                if members:
                    st.dataframe(
                        pd.DataFrame(
                            [
                                {
                                    "run": r["name"],
                                    "status": c.status_label(r),
                                    "progress": c.progress_fraction(r),
                                }
                                for r in members
                            ]
                        ),
                        hide_index=True,
                        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
                    )
                if table["rows"]:
                    st.dataframe(pd.DataFrame(table["rows"], columns=table["columns"]), hide_index=True)
                _actions("sweeps", sweep, "sweeps")

            sweep_panel(sid)

    # ------------------------------------------------------------------------------------------------ evaluations
    with evals_tab:
        evals = c.evaluations(base)
        if not evals:
            st.info("No evaluations yet.", icon=":material/calculate:")
        else:
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
                    _job_state(ev, "evaluation")
                    _actions("evaluations", ev, "evals")


c.guarded(main)
