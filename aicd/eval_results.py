"""What an evaluation produces: one record per generated chain, and the accuracy table over (shots, seed).

`EvalResult.save` writes results.json and generations.jsonl (each atomically); the summary gives mean ±
sample std (ddof=1; 0 for a single seed) of accuracy over seeds for each shot count.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class GenerationRecord:
    """One test item answered once: the prompt it saw, what it generated, and whether that was right."""

    example_id: str
    question: str
    gold: str
    shots: int
    seed: int
    shot_ids: list[str]  # demonstrations actually in the prompt (fewer than `shots` if some were dropped)
    prompt: str
    generation: str
    extracted: str | None
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]  # per (shots, seed): shots, seed, accuracy, n, n_invalid
    summary: list[dict[str, Any]]  # per shots: shots, mean, std, n_seeds
    items: list[GenerationRecord]
    stopped: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # config, answer_kind, std definition

    def to_json(self) -> dict[str, Any]:
        """Everything but the items (those go to generations.jsonl)."""
        return {
            "rows": self.rows,
            "summary": self.summary,
            "stopped": self.stopped,
            "n_items": len(self.items),
            **self.meta,
        }

    def save(self, output_dir: str | Path) -> Path:
        """Write results.json and generations.jsonl (each atomically) into `output_dir`."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(
            out / "generations.jsonl",
            "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in self.items),
        )
        _atomic_write(out / "results.json", json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load(cls, output_dir: str | Path) -> EvalResult:
        out = Path(output_dir)
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        items = []
        gen_path = out / "generations.jsonl"
        if gen_path.exists():
            with gen_path.open(encoding="utf-8") as fh:
                items = [GenerationRecord(**json.loads(line)) for line in fh if line.strip()]
        meta = {k: v for k, v in data.items() if k not in ("rows", "summary", "stopped", "n_items")}
        return cls(
            rows=data["rows"],
            summary=data["summary"],
            items=items,
            stopped=data.get("stopped", False),
            meta=meta,
        )


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; 0 with one seed) of accuracy over seeds, per shot count."""
    by_shots: dict[int, list[float]] = {}
    for row in rows:
        by_shots.setdefault(row["shots"], []).append(row["accuracy"])
    return [
        {
            "shots": k,
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "n_seeds": len(accs),
        }
        for k, accs in by_shots.items()
    ]


def format_mean_std(mean: float, std: float) -> str:
    """Accuracy as a percentage: `45.3 ± 1.2`."""
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"
