"""The paper's figures from a sweep's results table (rows of `aicd.sweep.build_table`), as PNG files.

Fig. 1: AICD accuracy vs ω (error bars over seeds), with the ω-free rows (baselines, and AICD under a
schedule that ignores ω) as horizontal lines.
Fig. 2: accuracy vs number of in-context shots, one line per objective (and grid variant).
One panel per evaluation dataset. matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aicd.objective_registry import REGISTRY


def _style(objective: str) -> str:
    spec = REGISTRY.get(objective)
    return spec.line_style if spec else "--"


def _color(objective: str) -> str | None:
    spec = REGISTRY.get(objective)
    return spec.color if spec else None


def _err(row: dict[str, Any]) -> float:
    """Half-height of an error bar in %: the std over runs, 0 with one run (no spread measured)."""
    return 100 * (row.get("std") or 0.0)


def _figure(n_panels: int) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels + 0.8, 3.6), squeeze=False)
    return fig, list(axes[0])


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def _label(row: dict[str, Any], drop: Sequence[str] = ()) -> str:
    parts = [p for p in (row.get("variant") or "").split(", ") if p and p.split("=")[0] not in drop]
    return row["objective"] + (f" ({', '.join(parts)})" if parts else "")


def plot_accuracy_vs_omega(table: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Fig. 1. x: ω of the runs whose loss depends on it (schedule as label), y: accuracy % ± std; one line per
    shot count; the ω-free rows (baselines) as reference lines.

    Returns None (and writes nothing) when the table has no row with an ω.
    """
    aicd = [r for r in table if r.get("omega") is not None]
    if not aicd:
        return None
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    fig, axes = _figure(len(datasets))
    for ax, ds in zip(axes, datasets, strict=True):
        rows = [r for r in aicd if r["dataset"] == ds]
        for shots in sorted({r["shots"] for r in rows}):
            by_label: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                if r["shots"] == shots:
                    by_label.setdefault(_label(r, drop=("omega",)), []).append(r)
            for label, pts in by_label.items():
                pts.sort(key=lambda r: r["omega"])
                ax.errorbar(
                    [r["omega"] for r in pts],
                    [100 * r["mean"] for r in pts],
                    yerr=[_err(r) for r in pts],
                    marker="o",
                    capsize=3,
                    label=f"{label}, {shots}-shot",
                )
        base_shots = sorted({r["shots"] for r in table if r["dataset"] == ds})
        for r in (
            table
        ):  # ω-free rows (baselines, constant/custom AICD) as reference lines (fainter = fewer shots)
            if r["dataset"] == ds and r.get("omega") is None:
                alpha = 0.4 + 0.6 * (base_shots.index(r["shots"]) + 1) / len(base_shots)
                line = ax.axhline(
                    100 * r["mean"],
                    linestyle=_style(r["objective"]),
                    linewidth=1.2,
                    alpha=alpha,
                    color=_color(r["objective"]),
                    label=f"{_label(r)}, {r['shots']}-shot",
                )
                if _err(r) > 0:
                    ax.axhspan(
                        100 * r["mean"] - _err(r),
                        100 * r["mean"] + _err(r),
                        color=line.get_color(),
                        alpha=0.08,
                    )
        ax.set_title(ds)
        ax.set_xlabel("ω (weight of earlier rationales)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, Path(path))


def plot_accuracy_vs_shots(table: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Fig. 2. x: shots in the evaluation prompt, y: accuracy % ± std; one line per objective/variant.

    Returns None when the table is empty.
    """
    if not table:
        return None
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    fig, axes = _figure(len(datasets))
    for ax, ds in zip(axes, datasets, strict=True):
        lines: dict[str, list[dict[str, Any]]] = {}
        for r in table:
            if r["dataset"] == ds:
                lines.setdefault(_label(r), []).append(r)
        for label, pts in lines.items():
            pts.sort(key=lambda r: r["shots"])
            ax.errorbar(
                [r["shots"] for r in pts],
                [100 * r["mean"] for r in pts],
                yerr=[_err(r) for r in pts],
                marker="o",
                capsize=3,
                label=label,
                linestyle=_style(pts[0]["objective"]),
                color=_color(pts[0]["objective"]) if len(lines) <= len(REGISTRY) else None,
            )
        ax.set_title(ds)
        ax.set_xlabel("shots in the prompt")
        ax.set_ylabel("accuracy (%)")
        ax.set_xticks(sorted({r["shots"] for r in table if r["dataset"] == ds}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, Path(path))
