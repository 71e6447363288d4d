"""Stored datasets as JSONL files under <artifacts>/datasets/<id>/<name>.jsonl, for the jobs that read files.

A config may name a stored dataset as `db:<id>`; runs, evaluations and sweep plans swap it for the exported
file, so a job can be reproduced from the CLI with the same config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aicd.errors import AICDError
from aicd.progress import NO_PROGRESS, Progress, tracked
from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import Dataset
from worker import store


def artifacts() -> Path:
    root = get_settings().artifacts
    root.mkdir(parents=True, exist_ok=True)
    return root


def db_id(ref: Any) -> int | None:
    """The id in a `db:<id>` reference, else None."""
    return int(ref[3:]) if isinstance(ref, str) and ref.startswith("db:") and ref[3:].isdigit() else None


def _dataset_name(dataset_id: int) -> str:
    with session_scope() as s:
        dataset = s.get(Dataset, dataset_id)
        if dataset is None:
            raise AICDError(f"dataset {dataset_id} no longer exists")
        return dataset.name


def export_path(dataset_id: int) -> Path:
    """Where `export_dataset` writes a stored dataset (without writing it)."""
    return artifacts() / "datasets" / str(dataset_id) / f"{_dataset_name(dataset_id)}.jsonl"


def export_dataset(dataset_id: int, progress: Progress = NO_PROGRESS) -> tuple[Path, list[Any]]:
    """Write a stored dataset to its JSONL file; return the path and the examples. `progress` sees the
    `export` phase and may stop it."""
    from aicd.data.jsonl import write_examples

    progress.phase("export")
    progress.check()
    path = export_path(dataset_id)
    with session_scope() as s:
        examples = store.load_examples(s, dataset_id)
    progress.phase("export", len(examples))
    write_examples(path, tracked(examples, progress, every=500))
    return path, examples


def resolve_sweep_datasets(config: dict[str, Any], *, export: bool) -> tuple[dict[str, Any], dict[str, int]]:
    """A sweep config with its `db:<id>` references (training, grid, evaluation and demonstration data)
    replaced by exported JSONL paths (written only when `export`), and path -> dataset id, so the sweep's
    runs and evaluations keep the stored dataset they use."""
    ids: dict[str, int] = {}

    def path(ref: Any) -> Any:
        if (dataset_id := db_id(ref)) is None:
            return ref
        exported = str(export_dataset(dataset_id)[0] if export else export_path(dataset_id))
        ids[exported] = dataset_id
        return exported

    config = dict(config)
    train = dict(config.get("train") or {})
    for key in ("dataset", "eval_dataset"):
        if train.get(key):
            train[key] = path(train[key])
    config["train"] = train
    grid = dict(config.get("grid") or {})
    if "dataset" in grid:
        grid["dataset"] = [path(v) for v in grid["dataset"]]
    config["grid"] = grid
    if config.get("eval_datasets"):
        config["eval_datasets"] = [path(v) for v in config["eval_datasets"]]
    evaluation = dict(config.get("eval") or {})
    if evaluation.get("shots_dataset"):
        evaluation["shots_dataset"] = path(evaluation["shots_dataset"])
    config["eval"] = evaluation
    return config, ids


def relative(root: Path, path: str | Path) -> str:
    """`path` relative to the artifact directory when it lies inside it (how rows store paths)."""
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)
