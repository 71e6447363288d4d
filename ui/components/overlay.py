"""The Runs page's overlay: several runs' loss and accuracy curves in one chart (a sweep in one click), with
smoothing and a log axis, and their hyper-parameters side by side with the differing ones highlighted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.components import charts
from ui.components import common as c

KEY = "runs_overlay"


@st.cache_data(ttl=5, show_spinner=False)
def run_metrics(base_url: str, run_id: int) -> list[dict[str, Any]]:
    return c.api().metrics(run_id)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v if not isinstance(v, list) else str(v)
    return out


def hyperparameters(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run, one column per config field (nested ones dotted), differing columns first."""
    table = pd.DataFrame([{"run": r["name"], **_flat(r.get("config") or {})} for r in runs]).set_index("run")
    table = table.drop(columns=[col for col in ("name", "output_dir") if col in table])
    differ = charts.differing_columns(table)
    return table[differ + [col for col in table.columns if col not in differ]]


def overlay(base: str, runs: list[dict[str, Any]], current: dict[str, Any]) -> None:
    by_id = {r["id"]: r for r in runs}
    st.session_state.setdefault(KEY, [current["id"]])
    st.session_state[KEY] = [i for i in st.session_state[KEY] if i in by_id]
    sweep_id = current.get("sweep_id")
    if sweep_id and st.button(
        f"All runs of sweep #{sweep_id}", key="runs_overlay_sweep", icon=":material/stacks:"
    ):
        st.session_state[KEY] = sorted(i for i, r in by_id.items() if r.get("sweep_id") == sweep_id)
    chosen = st.multiselect("Runs", list(by_id), key=KEY, format_func=lambda i: c.run_label(by_id[i]))
    if not chosen:
        st.caption("Pick runs to overlay.")
        return
    a, b = st.columns(2)
    smoothing = a.slider("smoothing", 0.0, 0.99, 0.6, 0.01, key="runs_overlay_smooth")
    log_y = b.toggle("log loss axis", key="runs_overlay_log")
    picked = [by_id[i] for i in chosen]
    metrics = {r["id"]: run_metrics(base, r["id"]) for r in picked}
    units = {charts.loss_unit(r.get("config") or {}) for r in picked}
    loss = {
        f"#{r['id']} {r['name']}": [
            (m["step"], m["loss"]) for m in metrics[r["id"]] if isinstance(m.get("loss"), int | float)
        ]
        for r in picked
    }
    acc = {
        f"#{r['id']} {r['name']}": [
            (m["step"], 100 * v)
            for m in metrics[r["id"]]
            if isinstance(v := (m.get("values") or {}).get("eval_accuracy"), int | float)
        ]
        for r in picked
    }
    unit = units.pop() if len(units) == 1 else "mixed units: per episode (sum) and per token"
    left, right = st.columns(2)
    left.plotly_chart(
        charts.overlay_curves(
            loss, title=f"training loss, {unit}", y_title=f"loss ({unit})", smoothing=smoothing, log_y=log_y
        ),
        key="runs_overlay_loss",
    )
    if any(acc.values()):
        right.plotly_chart(
            charts.overlay_curves(
                acc, title="accuracy during training", y_title="accuracy (%)", smoothing=smoothing
            ),
            key="runs_overlay_acc",
        )
    else:
        right.caption(
            "No accuracy was measured during training for these runs (accuracy every N steps was off)."
        )
    if "per episode" in unit:
        st.caption(
            "The loss per episode is Eq. 1 summed over the episode's weighted target tokens (it falls from "
            "hundreds); runs with reduction = token log the loss per weighted token."
        )
    table = hyperparameters(picked)
    differ = charts.differing_columns(table)
    st.markdown(f"**Hyper-parameters** — {len(differ)} differing column(s) highlighted")
    shown: Any = table.astype(str)
    if differ:  # (a Styler over no column would highlight everything)
        shown = shown.style.set_properties(subset=differ, **{"background-color": "rgba(255, 196, 0, 0.25)"})
    st.dataframe(shown, key="runs_overlay_params")
