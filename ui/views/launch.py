"""Launch: one run, a comparison of the four objectives, an ω × seed sweep, or a shipped paper config."""

from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from ui.components import common as c
from ui.components import plans

MODES = {
    "run": "One run",
    "compare": "Comparison: AICD / CondGen / LM / no-CoT",
    "sweep": "Sweep: ω values × seeds",
    "shipped": "Shipped config (Table 1 / Fig. 1 / Fig. 2)",
}


FLASH_KEY = "launch_flash"


def main() -> None:
    st.title("Launch")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
        st.page_link("views/runs.py", label="Follow it on the Runs page", icon=":material/monitoring:")
    client = c.api()
    base = c.base()
    mode = (
        st.segmented_control(
            "What to run", list(MODES), format_func=MODES.get, default="compare", key="launch_mode"
        )
        or "compare"
    )

    def _ints(text: str, field: str) -> list[int] | None:
        try:
            values = [int(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        except ValueError:
            st.error(f"{field}: expected comma-separated integers, got '{text}'", icon=":material/block:")
            return None
        if not values:
            st.error(f"{field}: give at least one value", icon=":material/block:")
            return None
        return values

    def _floats(text: str, field: str) -> list[float] | None:
        try:
            values = [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        except ValueError:
            st.error(f"{field}: expected comma-separated numbers, got '{text}'", icon=":material/block:")
            return None
        return values or None

    def _slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.\-]", "-", text.strip())[:80]

    # ------------------------------------------------------------------------------------------------ shipped
    if mode == "shipped":
        configs = c.shipped_configs(base)
        sweeps = [x for x in configs if x["kind"] == "sweep"]
        if not sweeps:
            st.info(
                "No shipped sweep configs were found under `configs/` on the server.", icon=":material/inbox:"
            )
            st.stop()
        by_name = {x["name"]: x for x in sweeps}
        name = st.selectbox("Config", list(by_name), key="launch_shipped")
        chosen = by_name[name]
        cfg = {k: v for k, v in chosen["config"].items() if k != "output_dir"}
        grid = cfg.get("grid", {})
        n_runs = 1
        for values in grid.values():
            n_runs *= len(values)
        ev = cfg.get("eval", {})
        datasets = cfg.get("eval_datasets") or [cfg.get("train", {}).get("dataset", "?")]
        st.markdown(
            f"**{n_runs} training runs** (grid: "
            + ", ".join(f"{k} ∈ {v}" for k, v in grid.items())
            + f"), each evaluated on "
            f"{', '.join(map(str, datasets))} at shots {ev.get('shots', [0])} × seeds {ev.get('seeds', [0])}."
        )
        st.code(yaml.safe_dump(cfg, sort_keys=False), language="yaml")
        sweep_name = st.text_input(
            "Sweep name", value=f"{name}-{time.strftime('%m%d-%H%M')}", key="launch_shipped_name"
        )
        if st.button("Launch sweep", key="launch_shipped_go", type="primary"):
            made = c.attempt(client.create_sweep, cfg, name=_slug(sweep_name), what="launch")
            if made:
                c.clear_caches()
                st.success(
                    f"Sweep #{made['id']} **{c.md_escape(made['name'])}** queued — follow it on the Runs page.",
                    icon=":material/check_circle:",
                )
                st.page_link("views/runs.py", label="Runs", icon=":material/monitoring:")
        st.stop()

    # ------------------------------------------------------------------------------------------------ data
    st.subheader("Data")
    a, b = st.columns(2)
    with a:
        train_ds = c.pick_dataset("Train on", "launch_train_ds", help="needs rationales (except no-CoT)")
    with b:
        eval_ds = c.pick_dataset(
            "Evaluate on",
            "launch_eval_ds",
            allow_none=(mode == "run"),
            help="questions the students answer (shots are drawn from the training data)",
        )
    assert train_ds is not None
    stats = c.dataset_stats(base, train_ds["id"])
    if stats["questions"] == 0:
        st.warning(
            f"**{c.md_escape(train_ds['name'])}** is empty: there is nothing to train on.",
            icon=":material/inbox:",
        )
        st.stop()
    if stats["rationales"] == 0:
        st.warning(
            f"**{c.md_escape(train_ds['name'])}** has no rationales yet: only the "
            + " / ".join(o["label"] for o in c.objectives().values() if not o["needs_rationales"])
            + " objective can train on it. Annotate it first for "
            + " / ".join(o["label"] for o in c.objectives().values() if o["needs_rationales"])
            + ".",
            icon=":material/edit_note:",
        )

    # ------------------------------------------------------------------------------------------------ student
    st.subheader("Student and training")
    sched = st.session_state.get("schedule_choice") or {}
    a, b, cc, d = st.columns(4)
    model = a.text_input(
        "Student model",
        sched.get("model", "tiny:gpt2"),
        key="launch_model",
        help="HF hub id, local path, or tiny:gpt2 / tiny:llama (from scratch, offline)",
    )
    n_shots = int(b.number_input("n shots per episode", 1, 16, int(sched.get("n_shots", 4)), key="launch_n"))
    schedule = cc.selectbox(
        "ω schedule",
        ["paper", "constant", "linear", "exponential", "custom"],
        index=["paper", "constant", "linear", "exponential", "custom"].index(sched.get("schedule", "paper")),
        key="launch_schedule",
    )
    omega = float(d.number_input("ω", 0.0, 1.0, float(sched.get("omega", 0.1)), 0.05, key="launch_omega"))
    weights = None
    if schedule == "custom":
        default_w = sched.get("weights") or [0.1] * (n_shots - 1) + [1.0]
        weights = _floats(
            st.text_input("custom ω per shot", ", ".join(f"{w:g}" for w in default_w), key="launch_weights"),
            "weights",
        )
    a, b, cc, d = st.columns(4)
    lr = float(a.number_input("learning rate", 0.0, 1.0, 7e-6, format="%.2e", key="launch_lr"))
    epochs = float(b.number_input("epochs", 0.1, 100.0, 10.0, key="launch_epochs"))
    max_steps = int(cc.number_input("max steps (0 = no cap)", 0, 1_000_000, 0, key="launch_max_steps"))
    seed = int(d.number_input("seed", 0, 100_000, 0, key="launch_seed"))
    a, b, cc, d = st.columns(4)
    batch = int(a.number_input("batch size (episodes)", 1, 1024, 8, key="launch_batch"))
    micro = int(b.number_input("micro batch", 1, 1024, min(4, batch), key="launch_micro"))
    max_length = int(cc.number_input("max tokens per episode", 32, 32768, 1024, key="launch_max_len"))
    eval_every = int(
        d.number_input(
            "accuracy every N steps (0 = off)",
            0,
            1_000_000,
            50,
            key="launch_eval_every",
            help="greedy accuracy on 32 evaluation questions every N steps and at the end: the Runs page's "
            "accuracy curve (without an evaluation dataset it is measured on training questions)",
        )
    )

    train_cfg: dict[str, Any] = {
        "model": model,
        "n_shots": n_shots,
        "schedule": schedule,
        "omega": omega,
        "lr": lr,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch,
        "micro_batch_size": micro,
        "max_length": max_length,
    }
    if weights is not None:
        train_cfg["weights"] = weights
    if max_steps:
        train_cfg["max_steps"] = max_steps
    if eval_every:
        train_cfg["eval_every"] = eval_every
        if eval_ds:
            train_cfg["eval_dataset"] = f"db:{eval_ds['id']}"

    # ------------------------------------------------------------------------------------------------ evaluation
    st.subheader("Evaluation")
    a, b, cc, d = st.columns(4)
    shots = _ints(
        a.text_input("shots", ", ".join(map(str, range(n_shots))), key="launch_eval_shots"), "shots"
    )
    eval_seeds = _ints(
        b.text_input("evaluation seeds", "0, 1, 2", key="launch_eval_seeds"), "evaluation seeds"
    )
    eval_limit = int(cc.number_input("questions (0 = all)", 0, 1_000_000, 0, key="launch_eval_limit"))
    max_new = int(d.number_input("max new tokens", 8, 4096, 256, key="launch_eval_max_new"))
    eval_cfg: dict[str, Any] = {"shots": shots or [0], "seeds": eval_seeds or [0], "max_new_tokens": max_new}
    if eval_limit:
        eval_cfg["limit"] = eval_limit
    n_questions = min(eval_limit or 10**9, eval_ds["n_examples"]) if eval_ds else 0

    # ------------------------------------------------------------------------------------------------ what runs
    st.subheader("What will run")
    stamp = time.strftime("%m%d-%H%M%S")
    objectives = [c.registry(base)["default"]]
    omegas: list[float] = [omega]
    train_seeds = [seed]
    if mode == "compare":
        objectives = st.multiselect(
            "Objectives",
            list(c.objectives()),
            default=list(c.objectives()),
            format_func=c.objective_label,
            key="launch_objectives",
        )
    elif mode == "sweep":
        a, b, cc = st.columns(3)
        omegas = (
            _floats(a.text_input("ω values", "0, 0.1, 0.5, 1", key="launch_sweep_omegas"), "ω values") or []
        )
        train_seeds = (
            _ints(b.text_input("training seeds", "0, 1, 2", key="launch_sweep_seeds"), "training seeds") or []
        )
        objectives = [
            cc.selectbox(
                "Objective",
                [n for n, o in c.objectives().items() if not o["omega_free"]],  # an ω sweep needs ω to matter
                format_func=c.objective_label,
                key="launch_sweep_objective",
            )
        ]
    else:
        objectives = [
            st.selectbox(
                "Objective",
                list(c.objectives()),
                format_func=c.objective_label,
                key="launch_objective",
            )
        ]
    name = _slug(st.text_input("Name", f"{train_ds['name']}-{mode}-{stamp}", key="launch_name"))

    plan_rows = plans.plan_rows(
        mode=mode,
        name=name,
        objectives=objectives,
        omegas=omegas if mode == "sweep" else [omega],
        seeds=train_seeds if mode == "sweep" else [seed],
        n_shots=n_shots,
        schedule=schedule,
        weights=weights,
        model=model,
        evaluated=eval_ds is not None,
        registry=c.registry(base),
    )
    if not plan_rows:
        st.info("Pick at least one objective / ω / seed.", icon=":material/touch_app:")
        st.stop()
    st.dataframe(pd.DataFrame(plan_rows), hide_index=True)
    generations = len(plan_rows) * len(eval_cfg["shots"]) * len(eval_cfg["seeds"]) * n_questions
    st.markdown(
        f"**{len(plan_rows)} training run(s)** on *{c.md_escape(train_ds['name'])}* "
        f"({stats['questions']} questions, {stats['rationales']} rationales), "
        + (f"at most {max_steps} steps each; " if max_steps else f"{epochs:g} epochs each; ")
        + (
            f"then evaluated on *{c.md_escape(eval_ds['name'])}*: {n_questions} questions × "
            f"shots {eval_cfg['shots']} × seeds {eval_cfg['seeds']} = **{generations:,} generations**."
            if eval_ds
            else "no evaluation."
        )
    )

    if st.button("Launch", key="launch_go", type="primary"):
        if mode == "sweep":
            assert eval_ds is not None
            grid = {"omega": omegas, "seed": train_seeds}  # k-shot demonstrations from the training data
            cfg = plans.sweep_body(train_cfg, objectives, train_ds["id"], eval_cfg, eval_ds["id"], grid)
            made = c.attempt(client.create_sweep, cfg, name=name, what="launch")
            if made:
                c.clear_caches()
                st.success(
                    f"Sweep #{made['id']} **{c.md_escape(made['name'])}** queued.",
                    icon=":material/check_circle:",
                )
        elif eval_ds:  # train then evaluate, on the server: one sweep job over the objectives
            cfg = plans.sweep_body(train_cfg, objectives, train_ds["id"], eval_cfg, eval_ds["id"])
            made = c.attempt(client.create_sweep, cfg, name=name, what="launch")
            if made:
                c.clear_caches()
                plans.remember(made)
                # rerun the whole app so the sidebar starts following it; the message survives the rerun
                st.session_state[FLASH_KEY] = (
                    f"Queued {len(plan_rows)} run(s) as sweep #{made['id']} **{c.md_escape(made['name'])}**: "
                    "each run is evaluated on the server as soon as it is trained (closing this tab does not "
                    "stop it)."
                )
                st.rerun()
        else:
            made = c.attempt(
                client.create_run,
                {**train_cfg, "objective": objectives[0]},
                name=name,
                dataset_id=train_ds["id"],
                what=f"launch {name}",
            )
            if made:
                c.clear_caches()
                st.success(
                    f"Queued run #{made['id']} **{c.md_escape(made['name'])}**.",
                    icon=":material/check_circle:",
                )
        st.page_link("views/runs.py", label="Follow it on the Runs page", icon=":material/monitoring:")

    if plans.launched():
        st.divider()
        st.subheader("Launched from this session")
        for item in plans.launched():
            st.markdown(f"**{c.md_escape(item['name'])}** · sweep #{item['id']} · {item['status']}")


c.guarded(main)
