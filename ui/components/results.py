"""Results as data: one long table of accuracies from evaluations × runs, the Table-1 pivot, and its exports."""

from __future__ import annotations

from typing import Any

import pandas as pd

OBJECTIVE_LABELS = {"aicd": "AICD", "condgen": "CondGen", "lm": "LM", "nocot": "no-CoT"}
OBJECTIVE_ORDER = ["AICD", "CondGen", "LM", "no-CoT"]
COLUMNS = [
    "evaluation_id",
    "run_id",
    "run",
    "sweep_id",
    "objective",
    "omega",
    "schedule",
    "n_shots",
    "train_seed",
    "dataset",
    "shots",
    "eval_seed",
    "accuracy",
    "n",
]


def _dataset_name(ev: dict[str, Any], names: dict[int, str]) -> str:
    if ev.get("dataset_id") in names:
        return names[ev["dataset_id"]]
    ds = str((ev.get("config") or {}).get("dataset", "?"))
    if ds.startswith("db:") and ds[3:].isdigit():
        return names.get(int(ds[3:]), ds)
    return ds


def _percent(acc: Any) -> float | None:
    if acc is None:
        return None
    return 100.0 * float(acc)  # the API reports fractions


def accuracy_frame(
    evaluations: list[dict[str, Any]], runs: list[dict[str, Any]], dataset_names: dict[int, str]
) -> pd.DataFrame:
    """One row per (evaluation, shots, eval seed) with the training run's objective, ω and seed."""
    by_id = {r["id"]: r for r in runs}
    rows = []
    for ev in evaluations:
        run = by_id.get(ev.get("run_id")) or {}
        cfg = run.get("config") or {}
        for row in ev.get("rows") or []:
            rows.append(
                {
                    "evaluation_id": ev["id"],
                    "run_id": run.get("id"),
                    "run": run.get("name", "(base model)"),
                    "sweep_id": run.get("sweep_id"),
                    "objective": OBJECTIVE_LABELS.get(cfg.get("objective"), cfg.get("objective") or "base"),
                    "omega": cfg.get("omega"),
                    "schedule": cfg.get("schedule"),
                    "n_shots": cfg.get("n_shots"),
                    "train_seed": cfg.get("seed"),
                    "dataset": _dataset_name(ev, dataset_names),
                    "shots": int(row.get("shots", 0)),
                    "eval_seed": row.get("seed"),
                    "accuracy": _percent(row.get("accuracy")),
                    "n": row.get("n"),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and (sample) std of accuracy over every seed (training × evaluation) in each group."""
    if df.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n_seeds"])
    out = df.groupby(by, dropna=False)["accuracy"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _order(objectives: pd.Index) -> list[str]:
    rank = {o: i for i, o in enumerate(OBJECTIVE_ORDER)}
    return sorted(objectives, key=lambda o: (rank.get(o.split(" ")[0], len(rank)), o))


def table1(df: pd.DataFrame, shots: int) -> pd.DataFrame:
    """Objectives × datasets, cells "mean ± std" at `shots` in-context examples (the paper's Table 1)."""
    sub = df[df["shots"] == shots].copy()
    if sub.empty:
        return pd.DataFrame()
    aicd = sub["objective"] == "AICD"
    if sub.loc[aicd, "omega"].nunique() > 1:  # several ω: one row each instead of averaging them together
        sub.loc[aicd, "objective"] = [f"AICD (ω={w:g})" for w in sub.loc[aicd, "omega"]]
    summ = summarize(sub, ["objective", "dataset"])
    summ["cell"] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(summ["mean"], summ["std"], strict=True)]
    table = summ.pivot(index="objective", columns="dataset", values="cell")
    table = table.reindex(_order(table.index)).fillna("–")
    table.columns.name = None
    table.index.name = "objective"
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (hand-formatted: no tabulate dependency)."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *map(str, row.tolist())]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str = "Accuracy (%) mean ± std over seeds.") -> str:
    """A booktabs LaTeX table; ± becomes $\\pm$."""
    latex_ready = table.map(lambda v: str(v).replace("±", "$\\pm$"))
    latex_ready.columns = [str(c).replace("_", "\\_") for c in latex_ready.columns]
    latex_ready.index = [str(i).replace("_", "\\_") for i in latex_ready.index]
    latex_ready.index.name = table.index.name or ""
    return latex_ready.reset_index().to_latex(
        escape=False,
        index=False,
        caption=caption.replace("±", "$\\pm$"),
        label="tab:aicd-results",
        position="t",
        column_format="l" + "c" * len(table.columns),
    )
