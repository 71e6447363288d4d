"""One rule for every results table: how accuracies of runs × evaluation seeds become "mean ± std (n)".

A cell groups the accuracies of one setting (objective, variant, dataset, shots, …). Each training run counts
once: its accuracy is first averaged over its evaluation seeds (demonstration draws), then the cell's mean is
the mean of those run means, its std the sample std across runs (None with a single run: one run measures no
spread between trainings), and n the number of runs. Pooling every training × evaluation seed instead would
count a run evaluated over 3 seeds three times and mix two kinds of noise in one "±"; the sweep table
(`results.md`), the CLI, the exports and the UI (through `POST /results/aggregate`) all call `aggregate`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aicd.objective_registry import OBJECTIVE_NAMES, objective_rank

STAR = "star"
"""The row of students fine-tuned on their own rationalised chains (STaR; `SweepConfig.star`)."""
VANILLA = "vanilla"
"""The row of the student evaluated before fine-tuning (the paper's name; `SweepConfig.untuned`)."""
BASELINE_ROWS: tuple[str, ...] = (STAR, VANILLA)
"""Table rows that are not an objective of `aicd.objective_registry`, in table order after the objectives."""

CAPTION = (
    "Accuracy (%): each training run's accuracy averaged over its evaluation seeds (demonstration draws), then "
    "mean ± sample std over training runs; n = training runs (± only when n > 1)."
)


def aggregate(
    observations: Iterable[Mapping[str, Any]],
    by: Sequence[str],
    *,
    run_key: str = "run",
    value_key: str = "accuracy",
) -> list[dict[str, Any]]:
    """One row per distinct `by` values (first-seen order): those values plus mean, std, n, n_values.

    `observations` are flat records holding every `by` field, `run_key` (which training run) and `value_key`
    (an accuracy as a fraction or a percentage — returned on the same scale); a missing value is skipped.
    """
    groups: dict[tuple[Any, ...], dict[Any, list[float]]] = {}
    for obs in observations:
        value = obs.get(value_key)
        if value is None:
            continue
        key = tuple(obs.get(k) for k in by)
        groups.setdefault(key, {}).setdefault(obs.get(run_key), []).append(float(value))
    rows = []
    for key, per_run in groups.items():
        run_means = [statistics.fmean(v) for v in per_run.values()]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "mean": statistics.fmean(run_means),
                "std": statistics.stdev(run_means) if len(run_means) > 1 else None,
                "n": len(run_means),
                "n_values": sum(len(v) for v in per_run.values()),
            }
        )
    return rows


def format_cell(mean: float | None, std: float | None, n: int, *, scale: float = 100.0) -> str:
    """The text of a table cell: "61.3 ± 2.0" over several runs, "61.3" for one run, "–" for none."""
    if mean is None or n == 0:
        return "–"
    text = f"{scale * mean:.1f}"
    return f"{text} ± {scale * std:.1f}" if n > 1 and std is not None else text


def row_rank(row: str | None) -> int:
    """Position of a table row: the objectives in the paper's order, then STaR, then vanilla; unknown last."""
    if row in BASELINE_ROWS:
        return len(OBJECTIVE_NAMES) + BASELINE_ROWS.index(row)
    rank = objective_rank(row)
    return rank if rank < len(OBJECTIVE_NAMES) else len(OBJECTIVE_NAMES) + len(BASELINE_ROWS)
