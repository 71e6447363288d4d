"""Comparisons launched from this browser session: runs whose evaluation is queued as soon as each finishes.

A comparison is N training runs (one per objective) on the same data and seed; each is evaluated with the
same settings. The plan lives in the session; `advance` (called by a sidebar fragment on every page) queues
the evaluation of every finished run of a plan that has none yet, so nothing has to be clicked.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError

PLANS_KEY = "comparison_plans"


def plans() -> list[dict[str, Any]]:
    return st.session_state.setdefault(PLANS_KEY, [])


def add_plan(name: str, run_ids: list[int], eval_body: dict[str, Any]) -> None:
    plans().append({"name": name, "run_ids": run_ids, "eval": eval_body, "evaluations": {}, "errors": {}})


def advance(client: ApiClient, plan: dict[str, Any]) -> dict[str, Any]:
    """Queue evaluations for finished runs; return {run_id: (run, evaluation or None)} for display."""
    state: dict[str, Any] = {}
    for run_id in plan["run_ids"]:
        run = client.run(run_id)
        ev_id = plan["evaluations"].get(str(run_id))
        ev = None
        if ev_id is None and run["status"] == "succeeded":
            existing = client.evaluations(run_id=run_id, max_items=1)
            if existing:
                ev = existing[0]
            else:
                try:
                    ev = client.create_evaluation(
                        plan["eval"]["config"],
                        run_id=run_id,
                        dataset_id=plan["eval"].get("dataset_id"),
                        shots_dataset_id=plan["eval"].get("shots_dataset_id"),
                    )
                except ApiError as exc:
                    if exc.unreachable:
                        raise
                    plan["errors"][str(run_id)] = exc.message
            if ev is not None:
                plan["evaluations"][str(run_id)] = ev["id"]
        elif ev_id is not None:
            ev = client.evaluation(ev_id)
        state[str(run_id)] = (run, ev)
    return state


def finished(plan: dict[str, Any], state: dict[str, Any]) -> bool:
    """Every run ended, and every succeeded run's evaluation ended (or could not be queued)."""
    for run_id, (run, ev) in state.items():
        if run["status"] in ("queued", "running"):
            return False
        if (
            run["status"] == "succeeded"
            and run_id not in plan["errors"]
            and (ev is None or ev["status"] in ("queued", "running"))
        ):
            return False
    return True
