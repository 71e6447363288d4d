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
FLASH_LINK_KEY = "launch_flash_link"  # the Runs page URL of what the flash message is about

# form field key -> (preset part, field, how a None shows in the form)
PRESET_FIELDS = {
    "launch_model": ("train", "model", None),
    "launch_n": ("train", "n_shots", None),
    "launch_lr": ("train", "lr", None),
    "launch_epochs": ("train", "epochs", None),
    "launch_max_steps": ("train", "max_steps", 0),
    "launch_batch": ("train", "batch_size", None),
    "launch_micro": ("train", "micro_batch_size", None),
    "launch_max_len": ("train", "max_length", None),
    "launch_eval_every": ("train", "eval_every", 0),
    "launch_eval_shots": ("eval", "shots", None),
    "launch_eval_seeds": ("eval", "seeds", None),
    "launch_eval_limit": ("eval", "limit", 0),
    "launch_eval_max_new": ("eval", "max_new_tokens", None),
}
FORM_ONLY = {f for part, f, _ in PRESET_FIELDS.values() if part == "train"}


def apply_preset(preset: dict[str, Any], only_missing: bool = False) -> None:
    """Set every form field the preset defines (when the preset changes, once per session, and for fields
    Streamlit dropped while another mode hid them: `only_missing`)."""
    for key, (part, name, none) in PRESET_FIELDS.items():
        if name not in preset[part] or (only_missing and key in st.session_state):
            continue
        value = preset[part][name]
        value = none if value is None else value
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key in ("launch_lr", "launch_epochs"):
            value = float(value)  # a float widget refuses an int value
        st.session_state[key] = value
    st.session_state["launch_preset_applied"] = preset["name"]


def preset_extras(preset: dict[str, Any]) -> dict[str, Any]:
    """The preset's training fields the form does not show (e.g. eval_limit of the accuracy curve)."""
    return {k: v for k, v in preset["train"].items() if k not in FORM_ONLY and v is not None}


def follow_link(query: dict[str, str] | None) -> None:
    """A link to the Runs page opened on what was just launched (its view and id in the URL)."""
    st.page_link(
        "views/runs.py", label="Follow it on the Runs page", icon=":material/monitoring:", query_params=query
    )


def main() -> None:
    st.title("Launch")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
        follow_link(st.session_state.pop(FLASH_LINK_KEY, None))
    client = c.api()
    base = c.base()
    mode = (
        st.segmented_control(
            "What to run", list(MODES), format_func=MODES.get, default="compare", key="launch_mode"
        )
        or "compare"
    )

    errors: dict[str, str] = {}  # field label -> one readable sentence; Launch stays disabled while any

    def _ints(text: str, field: str) -> list[int] | None:
        try:
            values = [int(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        except ValueError:
            errors[field] = f"{field}: write whole numbers separated by commas (e.g. 0, 1, 2), not '{text}'."
            return None
        if not values:
            errors[field] = f"{field}: give at least one whole number."
            return None
        if any(v < 0 for v in values):
            errors[field] = f"{field}: numbers cannot be negative."
            return None
        return values

    def _floats(text: str, field: str) -> list[float] | None:
        try:
            values = [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        except ValueError:
            errors[field] = f"{field}: write numbers separated by commas (e.g. 0, 0.5, 1), not '{text}'."
            return None
        if not values:
            errors[field] = f"{field}: give at least one number."
            return None
        return values

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
        dropped = chosen.get("cli_only") or []
        if dropped:  # steps a server sweep refuses: run it with the CLI, or launch it here without them
            st.warning(f"{chosen.get('note')}.", icon=":material/terminal:")
            server_ok = st.checkbox(
                f"Launch here without {', '.join(dropped)} (those rows need `aicd sweep`)",
                key=f"launch_shipped_drop_{name}",
            )
            cfg = {k: v for k, v in cfg.items() if k not in dropped}
        else:
            server_ok = True
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
        if st.button("Launch sweep", key="launch_shipped_go", type="primary", disabled=not server_ok):
            made = c.attempt(client.create_sweep, cfg, name=_slug(sweep_name), what="launch")
            if made:
                c.clear_caches()
                st.success(
                    f"Sweep #{made['id']} **{c.md_escape(made['name'])}** queued — follow it on the Runs page.",
                    icon=":material/check_circle:",
                )
                follow_link({"view": "sweeps", "sweep": str(made["id"])})
        st.stop()

    # ------------------------------------------------------------------------------------------------ preset
    served = c.presets(base)
    by_preset = {p["name"]: p for p in served["presets"]}
    preset_name = st.selectbox(
        "Preset",
        list(by_preset),
        index=list(by_preset).index(served["default"]),
        format_func=lambda n: by_preset[n]["label"],
        key="launch_preset",
        help="sets the model, learning rate, steps and evaluation size below; change any of them after",
    )
    preset = by_preset[preset_name]
    apply_preset(preset, only_missing=st.session_state.get("launch_preset_applied") == preset_name)
    st.caption(preset["description"])

    # ------------------------------------------------------------------------------------------------ data
    st.subheader("Data")
    all_datasets = c.datasets(base)
    train_pick = st.session_state.get("launch_train_ds")
    train_now = next(
        (d for d in all_datasets if d["id"] == train_pick), all_datasets[0] if all_datasets else None
    )
    held_out = plans.default_eval_dataset(all_datasets, train_now)
    if (
        st.session_state.get("launch_eval_auto_for") != (train_now or {}).get("id")
        and st.session_state.get("launch_eval_ds") == st.session_state.get("launch_eval_auto", "unset")
        or "launch_eval_ds" not in st.session_state
    ) and held_out is not None:  # follow the training data until the user picks an evaluation set
        st.session_state["launch_eval_ds"] = held_out
        st.session_state["launch_eval_auto"] = held_out
    st.session_state["launch_eval_auto_for"] = (train_now or {}).get("id")
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
    if eval_ds is not None and eval_ds["id"] == train_ds["id"]:
        errors["Evaluate on"] = (
            "Evaluate on: pick held-out questions (a test split or another dataset), not the training data."
        )
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
    if sched and st.session_state.get("launch_from_schedule") is not sched:  # the designer's choice, once
        st.session_state["launch_model"] = sched.get("model") or st.session_state["launch_model"]
        st.session_state["launch_n"] = int(sched.get("n_shots") or st.session_state["launch_n"])
        st.session_state["launch_from_schedule"] = sched
    model = a.text_input(
        "Student model",
        key="launch_model",
        help="HF hub id, local path, or tiny:gpt2 / tiny:llama (from scratch, offline)",
    )
    n_shots = int(b.number_input("n shots per episode", 1, 16, key="launch_n"))
    schedule = cc.selectbox(
        "ω schedule",
        ["paper", "constant", "linear", "exponential", "custom", "adaptive"],
        index=["paper", "constant", "linear", "exponential", "custom", "adaptive"].index(
            sched.get("schedule", "paper")
        ),
        key="launch_schedule",
    )
    omega = float(d.number_input("ω", 0.0, 1.0, float(sched.get("omega", 0.1)), 0.05, key="launch_omega"))
    weights = None
    if schedule == "custom":
        default_w = sched.get("weights") or [0.1] * (n_shots - 1) + [1.0]
        if len(default_w) != n_shots:
            default_w = [0.1] * (n_shots - 1) + [1.0]
        if (
            st.session_state.get("launch_weights_n") != n_shots or "launch_weights" not in st.session_state
        ):  # n changed: start again from n weights
            st.session_state["launch_weights"] = ", ".join(f"{w:g}" for w in default_w)
            st.session_state["launch_weights_n"] = n_shots
        weights = _floats(st.text_input("custom ω per shot", key="launch_weights"), "custom ω per shot")
        if weights is not None and len(weights) != n_shots:
            errors["custom ω per shot"] = (
                f"custom ω per shot: give one weight per shot, {n_shots} in all (got {len(weights)})."
            )
    a, b, cc, d = st.columns(4)
    lr = float(a.number_input("learning rate", 0.0, 1.0, format="%.2e", key="launch_lr"))
    if lr <= 0:
        errors["learning rate"] = "learning rate: must be above 0."
    epochs = float(b.number_input("epochs", 0.1, 100.0, key="launch_epochs"))
    max_steps = int(cc.number_input("max steps (0 = no cap)", 0, 1_000_000, key="launch_max_steps"))
    seed = int(d.number_input("seed", 0, 100_000, 0, key="launch_seed"))
    a, b, cc, d = st.columns(4)
    batch = int(a.number_input("batch size (episodes)", 1, 1024, key="launch_batch"))
    micro = int(b.number_input("micro batch", 1, 1024, key="launch_micro"))
    if batch % micro:
        errors["micro batch"] = f"micro batch: must divide the batch size {batch} (e.g. {min(batch, 4)})."
    max_length = int(cc.number_input("max tokens per episode", 32, 32768, key="launch_max_len"))
    eval_every = int(
        d.number_input(
            "accuracy every N steps (0 = off)",
            0,
            1_000_000,
            key="launch_eval_every",
            help="greedy accuracy on 32 evaluation questions every N steps and at the end: the Runs page's "
            "accuracy curve (without an evaluation dataset it is measured on training questions)",
        )
    )

    if not model.strip():
        errors["Student model"] = "Student model: give a hub id, a local path or tiny:gpt2 / tiny:llama."
    train_cfg: dict[str, Any] = {
        **preset_extras(preset),
        "model": model.strip(),
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
    shots = _ints(a.text_input("shots", key="launch_eval_shots"), "shots")
    eval_seeds = _ints(b.text_input("evaluation seeds", key="launch_eval_seeds"), "evaluation seeds")
    eval_limit = int(cc.number_input("questions (0 = all)", 0, 1_000_000, key="launch_eval_limit"))
    max_new = int(d.number_input("max new tokens", 8, 4096, key="launch_eval_max_new"))
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
        if any(not 0 <= w <= 1 for w in omegas):
            errors["ω values"] = "ω values: each must lie between 0 and 1."
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
    auto = f"{train_ds['name']}-{mode}-{preset_name}"  # the default name follows the choices ...
    if st.session_state.get("launch_name_auto_base") != auto:
        if st.session_state.get("launch_name") in (None, st.session_state.get("launch_name_auto")):
            st.session_state["launch_name"] = f"{auto}-{stamp}"
            st.session_state["launch_name_auto"] = st.session_state["launch_name"]
        st.session_state["launch_name_auto_base"] = auto
    raw_name = st.text_input("Name", key="launch_name")
    name = _slug(raw_name)
    if not name.strip("."):
        errors["Name"] = "Name: give a name of letters, digits, '_', '-' or '.' (not only dots)."

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

    measured = plans.measured_tokens_per_s(c.runs(base), model.strip())
    if measured:
        seconds = plans.estimate_train_seconds(
            tokens_per_s=measured[0],
            n_runs=len(plan_rows),
            n_questions=stats["questions"],
            batch_size=batch,
            max_length=max_length,
            epochs=epochs,
            max_steps=max_steps or None,
        )
        st.caption(
            f"Estimated training time: at most ~{plans.duration_text(seconds)} one run after another "
            f"(every episode {max_length} tokens at {measured[0]:,.0f} tokens/s, the median of {measured[1]} "
            f"finished `{c.md_escape(model.strip())}` run(s) on this server; evaluation not included). "
            "An estimate, not a promise."
        )
    else:
        st.caption(
            f"No time estimate yet: no `{c.md_escape(model.strip())}` run has finished on this server "
            "(the estimate uses measured tokens/s)."
        )
    for message in errors.values():
        st.error(message, icon=":material/block:")

    if st.button("Launch", key="launch_go", type="primary", disabled=bool(errors)):
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
                st.session_state[FLASH_LINK_KEY] = {"view": "sweeps", "sweep": str(made["id"])}
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
        if made:
            follow_link({"view": "runs", "run": str(made["id"])})

    if plans.launched():
        st.divider()
        st.subheader("Launched from this session")
        for item in plans.launched():
            st.markdown(f"**{c.md_escape(item['name'])}** · sweep #{item['id']} · {item['status']}")


c.guarded(main)
