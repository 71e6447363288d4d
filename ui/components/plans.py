"""Comparisons and evaluated runs launched from this browser session, followed in the sidebar.

The work itself runs on the server: a comparison (one training run per objective on the same data and seed,
each evaluated with the same settings) is submitted as one sweep job over the objectives, so closing the tab
or the browser changes nothing. The session only remembers which sweeps it launched, to show their progress.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.client import ApiClient

LAUNCHED_KEY = "launched_sweeps"
ENDED = ("succeeded", "failed", "cancelled", "lost")

# The server's sweep planner (aicd/sweep.py, by the rules of aicd/objective_registry.py) trains a run whose loss
# ignores ω once, however many ω values the grid lists: objectives that do not weight shots by ω, and schedules
# whose weights are not a function of ω (constant; custom, or any explicit per-shot list). `registry` is what
# `GET /objectives` serves (`common.registry`); the summary of what will run and the Results page's grouping
# read it, so the UI keeps no copy of which objective ignores ω.


def objective_omega_free(registry: dict[str, Any], objective: str | None) -> bool:
    """Whether the objective's loss never depends on ω (an unknown name: it might, so False)."""
    spec = next((o for o in registry["objectives"] if o["name"] == objective), None)
    return bool(spec and spec["omega_free"])


def omega_free(
    registry: dict[str, Any], objective: str | None, schedule: str | None = "paper", weights: Any = None
) -> bool:
    """Whether ω changes nothing for a run with this objective, schedule and explicit weights."""
    return (
        objective_omega_free(registry, objective)
        or schedule not in registry["omega_schedules"]
        or weights is not None
    )


def plan_rows(
    *,
    mode: str,
    name: str,
    objectives: list[str],
    omegas: list[float],
    seeds: list[int],
    n_shots: int,
    schedule: str,
    model: str,
    registry: dict[str, Any],
    weights: list[float] | None = None,
    evaluated: bool = True,
) -> list[dict[str, Any]]:
    """The training runs a launch creates, one row each: objectives × ω values × seeds, with ω collapsed for
    ω-free runs exactly as the server does (so a constant-schedule "sweep" over 4 ω × 3 seeds is 3 runs)."""
    labels = {o["name"]: o["label"] for o in registry["objectives"]}
    rows: list[dict[str, Any]] = []
    for obj in objectives:
        free = omega_free(registry, obj, schedule, weights)
        values: list[float | None] = [None] if free else list(dict.fromkeys(omegas))
        for w in values:
            for s in dict.fromkeys(seeds):
                if mode == "sweep":
                    run = f"{name}: {obj}" + (f", ω={w:g}" if w is not None else "") + f", seed {s}"
                elif mode == "compare" or evaluated:
                    run = f"{name}.{obj}"
                else:
                    run = name
                rows.append(
                    {
                        "run": run,
                        "objective": labels.get(obj, obj),
                        "ω": w,
                        "seed": s,
                        "n": n_shots,
                        "schedule": "–" if objective_omega_free(registry, obj) else schedule,
                        "model": model,
                    }
                )
    return rows


def launched() -> list[dict[str, Any]]:
    return st.session_state.setdefault(LAUNCHED_KEY, [])


def remember(sweep: dict[str, Any]) -> None:
    launched().append({"id": sweep["id"], "name": sweep["name"], "status": sweep["status"]})


def sweep_body(
    train_cfg: dict[str, Any],
    objectives: list[str],
    train_dataset_id: int,
    eval_cfg: dict[str, Any],
    eval_dataset_id: int,
    grid: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """A sweep config that trains one run per objective (× the other `grid` values) and evaluates each on
    `eval_dataset_id`, drawing the k-shot demonstrations from the training data (as a stand-alone evaluation
    of each run would), never from the evaluated questions themselves."""
    return {
        "train": {**train_cfg, "dataset": f"db:{train_dataset_id}", "objective": objectives[0]},
        "eval": {**eval_cfg, "shots_dataset": f"db:{train_dataset_id}"},
        "eval_datasets": [f"db:{eval_dataset_id}"],
        "grid": {"objective": list(objectives), **(grid or {})},
    }


def refresh(client: ApiClient, item: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sweep and its runs as the server sees them now; remembers the status so ended ones stop polling."""
    sweep = client.sweep(item["id"])
    item["status"] = sweep["status"]
    return sweep, client.runs(sweep_id=item["id"])
