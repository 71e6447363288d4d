"""ω schedule designer: pick n and a schedule, see ω per shot and one real episode shaded by its loss weights."""

from __future__ import annotations

import streamlit as st

from ui.client import ApiError
from ui.components import charts
from ui.components import common as c
from ui.components import episode as ep

SCHEDULES = {
    "paper": "paper — ω for earlier shots, 1 for the last",
    "constant": "constant — 1 for every shot",
    "linear": "linear — from ω up to 1",
    "exponential": "exponential — ω^((n−i)/(n−1)) up to 1",
    "custom": "custom — one slider per shot",
}


def main() -> None:
    st.title("ω schedule designer")
    st.caption(
        "AICD trains on n-shot episodes with L = −Σᵢ ωᵢ · log p(yᵢ | x₁, y₁, …, xᵢ). The paper uses ω = 0.1 for the "
        "earlier shots and 1 for the last (n = 4 for math, 6 for commonsense)."
    )
    client = c.api()

    left, right = st.columns([1, 2])
    with left:
        n = st.slider("n (shots per episode)", 1, 12, 4, key="sched_n")
        schedule = st.selectbox("Schedule", list(SCHEDULES), format_func=SCHEDULES.get, key="sched_name")
        omega = 0.1
        weights = None
        if schedule in ("paper", "linear", "exponential"):
            omega = st.slider(
                "ω", 0.0 if schedule != "exponential" else 0.01, 1.0, 0.1, 0.01, key="sched_omega"
            )
        if schedule == "custom":
            st.caption("ω per shot")
            weights = [
                st.slider(f"ω{i + 1}", 0.0, 1.0, 1.0 if i == n - 1 else 0.1, 0.05, key=f"sched_w_{i}")
                for i in range(n)
            ]
        objective = st.selectbox(
            "Objective",
            list(c.objectives()),
            key="sched_objective",
            format_func=c.objective_label,
            help="; ".join(f"{o['label']}: {o['summary']}" for o in c.objectives().values()),
        )

    body = {"n_shots": n, "schedule": schedule, "omega": omega, "weights": weights, "objective": objective}
    with right:
        try:
            shown = client.preview_schedule(body)
        except ApiError as exc:
            c.show_error(exc, "schedule")
            st.stop()
        label = c.objective_label(objective)
        st.plotly_chart(
            charts.omega_bars(shown["loss_weights"], f"{label}: loss weight per shot ({schedule} schedule)"),
            key="sched_bars",
        )
        if shown["loss_weights"] != shown["weights"]:
            st.caption(
                f"{label} does not follow the schedule (ω per shot would be "
                f"{', '.join(f'{w:g}' for w in shown['weights'])}): {c.objectives()[objective]['summary']}"
            )

    st.session_state["schedule_choice"] = {
        **body,
        "model": st.session_state.get("sched_model", "tiny:gpt2"),  # the student picked below
    }
    if st.button("Use this schedule in Launch ▶", key="sched_use"):
        st.switch_page("views/launch.py")

    st.subheader("One real episode")
    ds = c.pick_dataset(
        "Episode from dataset",
        "sched_dataset",
        help="a random episode of this dataset, as the trainer would build it",
    )
    assert ds is not None
    a, b, cc = st.columns([1, 1, 2])
    seed = int(a.number_input("sampling seed", 0, 10_000, 0, key="sched_seed"))
    index = int(b.number_input("episode #", 0, 100_000, 0, key="sched_index"))
    model = cc.text_input(
        "Student (whose tokenizer splits the episode)",
        "tiny:gpt2",
        key="sched_model",
        help="hub id or local checkpoint whose tokenizer files are on the server; tiny:<arch> = bytes",
    )
    try:
        preview = client.preview_episode(
            {
                **body,
                "dataset_id": ds["id"],
                "seed": seed,
                "index": index,
                "model": model,
            }
        )
    except ApiError as exc:
        if exc.status == 422:
            st.warning(f"No episode to show for **{ds['name']}**: {exc.message}", icon=":material/inbox:")
        else:
            c.show_error(exc, "episode")
        st.stop()

    st.html(ep.STYLE + ep.legend_html(preview["weights"]))
    st.html(ep.episode_html(preview["spans"]))
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("tokens", preview["n_tokens"])
    m2.metric("tokens with loss", preview["weighted_tokens"])
    m3.metric("Σ weights", f"{preview['total_weight']:.1f}")
    m4.metric("shots (dropped)", f"{preview['n_shots']} ({preview['n_dropped']})")
    st.caption(f"Tokenizer: {preview['tokenizer']}; hover a span for its shot, kind and ω.")
    st.plotly_chart(charts.shot_mass(ep.weight_by_shot(preview["spans"])), key="sched_mass")


c.guarded(main)
