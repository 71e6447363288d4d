"""Comparisons and evaluated runs launched from this browser session, followed in the sidebar.

The work itself runs on the server: a comparison (one training run per objective on the same data and seed,
each evaluated with the same settings) is submitted as one sweep job over the objectives, so closing the tab
or the browser changes nothing. The session only remembers which sweeps it launched, to show their progress.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

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


# -- launch defaults and estimates -------------------------------------------------------------------------


def _split_of(ds: dict[str, Any]) -> tuple[str, str]:
    """(source name, split) of a built-in import ("builtin:svamp/test"); ("", "") for an upload."""
    src = str(ds.get("source", ""))
    if src.startswith("builtin:") and "/" in src:
        name, split = src.removeprefix("builtin:").split("/", 1)
        return name, split
    return "", ""


def default_eval_dataset(datasets: list[dict[str, Any]], train: dict[str, Any] | None) -> int | None:
    """The held-out data to evaluate on by default, never the training data itself: the test split of the
    same built-in dataset, else any test split, else a dataset named like a test set, else any other one."""
    if train is None:
        return None
    others = [d for d in datasets if d["id"] != train["id"]]
    source, _ = _split_of(train)
    ranked = (
        [d for d in others if _split_of(d) == (source, "test") and source],
        [d for d in others if _split_of(d)[1] == "test"],
        [d for d in others if "test" in d["name"].lower()],
        others,
    )
    return next((group[0]["id"] for group in ranked if group), None)


def measured_tokens_per_s(runs: list[dict[str, Any]], model: str) -> tuple[float, int] | None:
    """Median training throughput (tokens/s, real tokens) of this server's finished runs of `model`, and how
    many runs it is from; None when none finished here yet."""
    rates = sorted(
        float(tps)
        for r in runs
        if r.get("status") == "succeeded"
        and (r.get("config") or {}).get("model") == model
        and isinstance(tps := (r.get("last_metrics") or {}).get("tokens_per_s"), int | float)
        and tps > 0
    )
    return (rates[len(rates) // 2], len(rates)) if rates else None


def estimate_train_seconds(
    *,
    tokens_per_s: float,
    n_runs: int,
    n_questions: int,
    batch_size: int,
    max_length: int,
    epochs: float,
    max_steps: int | None,
) -> float:
    """Upper-bound estimate of the training time of a launch: optimizer steps (the cap, else epochs × one
    episode per question / batch) × batch × max_length tokens (every episode full) / measured tokens/s."""
    steps_per_epoch = max(1, -(-n_questions // batch_size))
    steps = min(max_steps, int(epochs * steps_per_epoch)) if max_steps else int(epochs * steps_per_epoch)
    return n_runs * max(steps, 1) * batch_size * max_length / tokens_per_s


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- labels of runs shown side by side ---------------------------------------------------------------------


def short_labels(runs: list[dict[str, Any]], registry: dict[str, Any]) -> list[str]:
    """Short, unique labels for runs compared side by side: the objective, then only what differs among
    them (ω where it matters, seed, n shots, model), the run id as a last resort."""
    labels = {o["name"]: o["label"] for o in registry["objectives"]}
    cfgs = [r.get("config") or {} for r in runs]

    def differs(key: str) -> bool:
        return len({str(cfg.get(key)) for cfg in cfgs}) > 1

    out = []
    for cfg in cfgs:
        parts = [labels.get(cfg.get("objective"), str(cfg.get("objective", "?")))]
        free = omega_free(registry, cfg.get("objective"), cfg.get("schedule", "paper"), cfg.get("weights"))
        if differs("omega") and not free:
            parts.append(f"ω={cfg.get('omega'):g}" if isinstance(cfg.get("omega"), int | float) else "ω=?")
        for key, fmt in (("seed", "seed {}"), ("n_shots", "n={}"), ("model", "{}")):
            if differs(key):
                parts.append(fmt.format(cfg.get(key)))
        out.append(" ".join(parts))
    counts = {label: out.count(label) for label in out}
    return [
        f"{label} #{run['id']}" if counts[label] > 1 else label for label, run in zip(out, runs, strict=True)
    ]


def natural_key(text: Any) -> tuple[Any, ...]:
    """Question ids in numeric order (2 before 10), text parts alphabetically."""
    import re

    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(text)) if p)
