"""Results as data: one long table of accuracies from evaluations × runs, the Table-1 pivot, and its exports.

Cells are computed by the server (`POST /results/aggregate`, aicd/results.py), the same rule as a sweep's
`results.md`: each run averaged over its evaluation seeds, then mean ± std over training runs, n = runs.
Objective labels, order and which objectives ignore ω come from the served registry (`common.registry`).
Each row carries the settings of its run (and evaluation) that change what is measured (`settings`, a JSON
object): runs that differ in any of them — model, n, ω, lr, steps, data, ... — are never averaged into one cell
unless the reader asks for it; their rows get a label naming what differs ("AICD (lr=0.001)").
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from ui.client import ApiClient
from ui.components import plans

COLUMNS = [
    "evaluation_id",
    "run_id",
    "run",
    "sweep_id",
    "objective",
    "omega",
    "uses_omega",
    "schedule",
    "n_shots",
    "train_seed",
    "dataset",
    "shots",
    "eval_seed",
    "accuracy",
    "fraction",
    "n",
    "split",
    "settings",
]

# training fields that do not change what a run learns (or that other columns already carry)
IGNORED_TRAIN_FIELDS = frozenset(
    {
        "name",
        "output_dir",
        "seed",
        "objective",
        "save_every",
        "keep_checkpoints",
        "log_every",
        "micro_batch_size",
    }
)
OMEGA_FIELDS = ("omega", "schedule", "weights")
EVAL_FIELDS = ("limit", "max_new_tokens", "shots_dataset", "split", "shots_split")  # evaluation settings
SHORT_NAMES = {"omega": "ω", "n_shots": "n", "dataset": "train data", "max_steps": "steps"}


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


def _show(value: Any, names: dict[int, str]) -> str:
    if isinstance(value, str) and value.startswith("db:") and value[3:].isdigit():
        return names.get(int(value[3:]), value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def run_settings(
    run: dict[str, Any], ev: dict[str, Any], names: dict[int, str], registry: dict[str, Any]
) -> dict[str, str]:
    """What distinguishes this (run, evaluation) besides its objective and seeds, as display strings."""
    cfg = run.get("config") or {}
    out: dict[str, str] = {}
    if run:
        # what does not change the loss does not tell runs apart (the server's rule, see plans.omega_free)
        ignored = set(IGNORED_TRAIN_FIELDS)
        if plans.objective_omega_free(registry, cfg.get("objective")):
            ignored |= set(OMEGA_FIELDS)
        elif plans.omega_free(
            registry, cfg.get("objective"), cfg.get("schedule", "paper"), cfg.get("weights")
        ):
            ignored.add("omega")
        for key, value in cfg.items():
            if key in ignored or value is None:
                continue
            out[key] = _show(value, names)
        if run.get("dataset_id") is not None:
            out["dataset"] = names.get(run["dataset_id"], f"#{run['dataset_id']}")
    else:  # a base model evaluated directly
        out["model"] = _show((ev.get("config") or {}).get("model"), names)
    evcfg = ev.get("config") or {}
    for key in EVAL_FIELDS:
        if evcfg.get(key) is not None:
            out[f"eval {key}"] = _show(evcfg[key], names)
    return out


def accuracy_frame(
    evaluations: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    dataset_names: dict[int, str],
    registry: dict[str, Any],
) -> pd.DataFrame:
    """One row per (evaluation, shots, eval seed) with the training run's objective (its label), ω, seed and
    settings; `accuracy` in %, `fraction` as the API reports it (what the aggregator averages)."""
    by_id = {r["id"]: r for r in runs}
    labels = {o["name"]: o["label"] for o in registry["objectives"]}
    rows = []
    for ev in evaluations:
        run = by_id.get(ev.get("run_id")) or {}
        cfg = run.get("config") or {}
        settings = json.dumps(run_settings(run, ev, dataset_names, registry), sort_keys=True)
        for row in ev.get("rows") or []:
            rows.append(
                {
                    "evaluation_id": ev["id"],
                    "run_id": run.get("id"),
                    "run": run.get("name", "(base model)"),
                    "sweep_id": run.get("sweep_id"),
                    "objective": labels.get(cfg.get("objective"), cfg.get("objective") or "base"),
                    "omega": cfg.get("omega"),
                    "uses_omega": bool(run)
                    and not plans.omega_free(
                        registry, cfg.get("objective"), cfg.get("schedule", "paper"), cfg.get("weights")
                    ),
                    "schedule": cfg.get("schedule"),
                    "n_shots": cfg.get("n_shots"),
                    "train_seed": cfg.get("seed"),
                    "dataset": _dataset_name(ev, dataset_names),
                    "shots": int(row.get("shots", 0)),
                    "eval_seed": row.get("seed"),
                    "accuracy": _percent(row.get("accuracy")),
                    "fraction": row.get("accuracy"),
                    "n": row.get("n"),
                    "split": (ev.get("config") or {}).get("split", "test"),
                    "settings": settings,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def data_used(df: pd.DataFrame) -> str:
    """What the shown cells rest on, per evaluated dataset: its split and the items scored (a range when
    evaluations differ), e.g. "svamp-test (test split, 300 items)"."""
    parts = []
    for (dataset, split), sub in df.groupby(["dataset", "split"], dropna=False, sort=True):
        counts = sorted({int(n) for n in sub["n"].dropna()})
        items = (
            "? items"
            if not counts
            else f"{counts[0]}" + (f"–{counts[-1]}" if len(counts) > 1 else "") + " items"
        )
        parts.append(f"{dataset} ({split} split, {items})")
    return "Data: " + "; ".join(parts) if parts else ""


def resolution(df: pd.DataFrame) -> str:
    """How coarse an accuracy is: one question is 100/N points (16 questions: 6.25-point steps)."""
    parts = []
    for dataset, sub in df.groupby("dataset", sort=True):
        counts = sorted({int(n) for n in sub["n"].dropna() if n})
        if counts:
            parts.append(f"{dataset}: one question = {100 / counts[0]:.3g} points")
    return ("Resolution per evaluation: " + "; ".join(parts) + ".") if parts else ""


def numeric_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The CSV export: objective, dataset and numeric mean / std / n (training runs) / n_values (accuracies
    averaged), std empty when n = 1 (no spread to report)."""
    out = cells.rename(columns={"label": "objective"})[
        ["objective", "dataset", "mean", "std", "n", "n_values"]
    ]
    out = out.assign(std=out["std"].where(out["n"] > 1))
    return out.round({"mean": 4, "std": 4})


def _settings(df: pd.DataFrame) -> list[dict[str, str]]:
    if "settings" not in df:
        return [{} for _ in range(len(df))]
    return [json.loads(s) if isinstance(s, str) and s else {} for s in df["settings"]]


def varying_fields(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per objective, the settings whose values differ between its rows (what averaging would mix up)."""
    out: dict[str, list[str]] = {}
    parsed = _settings(df)
    for objective in df["objective"].unique() if len(df) else []:
        rows = [p for p, o in zip(parsed, df["objective"], strict=True) if o == objective]
        keys = sorted({k for p in rows for k in p})
        differ = [k for k in keys if len({p.get(k) for p in rows}) > 1]
        if differ:
            out[objective] = differ
    return out


def with_labels(df: pd.DataFrame, split: list[str] | None = None) -> pd.DataFrame:
    """`df` with a `label` column: the objective, plus the settings that differ within it (restricted to
    `split` when given): "AICD (ω=0.1)", "LM (lr=0.001, steps=2)"."""
    out = df.copy()
    varying = varying_fields(df)
    labels = []
    for objective, settings in zip(df["objective"], _settings(df), strict=True):
        keys = [k for k in varying.get(objective, []) if split is None or k in split]
        parts = [f"{SHORT_NAMES.get(k, k)}={settings.get(k, '–')}" for k in keys]
        labels.append(f"{objective} ({', '.join(parts)})" if parts else objective)
    out["label"] = labels
    return out


SUMMARY_COLUMNS = ["mean", "std", "n", "n_values", "text"]


def _plain(value: Any) -> Any:
    """A frame value as JSON: NaN → None, numpy scalars → Python numbers."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def summarize(df: pd.DataFrame, by: list[str], client: ApiClient) -> pd.DataFrame:
    """Per group of `by`: the server's cell (aicd.results) — mean and std in %, n training runs, n_values
    accuracies, and `text` exactly as results.md prints it. std is NaN for a single run (no spread)."""
    if df.empty:
        return pd.DataFrame(columns=[*by, *SUMMARY_COLUMNS])
    run = [
        f"run {r}" if r == r and r is not None else f"evaluation {e}"  # a base model: each evaluation alone
        for r, e in zip(df["run_id"], df["evaluation_id"], strict=True)
    ]
    observations = [
        {**{k: _plain(v) for k, v in zip(by, values, strict=True)}, "run": name, "accuracy": _plain(frac)}
        for values, name, frac in zip(df[by].itertuples(index=False), run, df["fraction"], strict=True)
    ]
    cells = client.aggregate_results(observations, by)["rows"]
    out = pd.DataFrame(cells, columns=[*by, *SUMMARY_COLUMNS])
    out["mean"] = 100.0 * out["mean"].astype(float)
    out["std"] = 100.0 * pd.to_numeric(out["std"], errors="coerce")
    return out


def _order(labels: pd.Index, registry: dict[str, Any]) -> list[str]:
    rank = {o["label"]: i for i, o in enumerate(registry["objectives"])}
    return sorted(labels, key=lambda o: (rank.get(o.split(" ")[0], len(rank)), o))


def table1(df: pd.DataFrame, shots: int, client: ApiClient, registry: dict[str, Any]) -> pd.DataFrame:
    """Rows (objectives, split by differing settings) × datasets, cells "mean ± std" at `shots` in-context
    examples (the paper's Table 1), as the server formats them. Uses `df["label"]` when present, else labels
    every differing setting."""
    sub = df[df["shots"] == shots].copy()
    if sub.empty:
        return pd.DataFrame()
    if "label" not in sub:
        sub = with_labels(sub)
    summ = summarize(sub, ["label", "dataset"], client)
    table = summ.pivot(index="label", columns="dataset", values="text")
    table = table.reindex(_order(table.index, registry)).fillna("–")
    table.columns.name = None
    table.index.name = "objective"
    return table


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (hand-formatted: no tabulate dependency); `|` in cells is escaped."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = [
        "| " + " | ".join(map(_md_cell, header)) + " |",
        "|" + "|".join(["---"] * len(header)) + "|",
    ]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join(map(_md_cell, [idx, *row.tolist()])) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "ω": r"$\omega$",
    "–": "--",
    "—": "---",
    "×": r"$\times$",
    "∅": r"$\emptyset$",
}
_LATEX_RE = re.compile("|".join(map(re.escape, _LATEX_SPECIAL)))


def latex_escape(text: Any) -> str:
    """Plain text as LaTeX source: the special characters escaped, ± ω × as math (one pass, so the
    backslashes it writes are never escaped again)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs LaTeX table that compiles: caption, headers, row labels and cells are escaped."""
    latex_ready = table.map(latex_escape)
    latex_ready.columns = [latex_escape(c) for c in latex_ready.columns]
    latex_ready.index = [latex_escape(i) for i in latex_ready.index]
    latex_ready.index.name = latex_escape(table.index.name or "")
    return latex_ready.reset_index().to_latex(
        escape=False,
        index=False,
        caption=latex_escape(caption),
        label="tab:aicd-results",
        position="t",
        column_format="l" + "c" * len(table.columns),
    )
