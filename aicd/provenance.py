"""Which data a result rests on: per dataset its source, split and item count, and the paper-scale rule.

A built-in benchmark (gsm8k, svamp, multiarith, strategyqa) silently resolves to the packaged 200/100-item
samples when no full copy is found (`aicd.data.loaders.data_root`). That is right for the demo and the tests
and wrong for a paper-scale experiment, whose numbers would then rest on a fifth of the data: a config with
`full_data: true` fails before anything is written, and every sweep records what it actually used.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aicd.errors import DataError


def _uses_samples(dataset: str) -> bool:
    from aicd.data import loaders

    return (
        dataset in loaders.BUILTIN_LOADERS and loaders.data_root().resolve() == loaders.SAMPLES_DIR.resolve()
    )


def dataset_source(dataset: str) -> str:
    """Where `dataset` is read from, in words: packaged samples, a data root, a file, generated, or the hub."""
    from aicd.data import loaders

    if dataset in loaders.BUILTIN_LOADERS:
        root = loaders.data_root()
        kind = "packaged samples" if _uses_samples(dataset) else "full copy"
        return f"{kind} ({root})"
    if dataset in loaders.DATASETS:
        return f"registered dataset '{dataset}' (generated or plugin)"
    if Path(dataset).expanduser().exists():
        return f"file {Path(dataset).expanduser()}"
    return f"hub {dataset}"


def require_full_data(datasets: Iterable[str | None], what: str = "full_data") -> None:
    """DataError (one line) when a built-in dataset would resolve to the packaged samples."""
    for dataset in dict.fromkeys(d for d in datasets if d):
        if _uses_samples(dataset):
            raise DataError(
                f"{what}: '{dataset}' resolves to the packaged 200/100-item samples, not the full splits; point "
                "AICD_DATA_DIR at a full copy (or use a hub id), or run a tiny-scale config"
            )


def describe_dataset(
    role: str, dataset: str, split: str, limit: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """{role, dataset, split, source, items}: items is the count after `limit` (None when it cannot be read)."""
    from aicd.data.loaders import load_examples

    try:
        items: int | None = len(load_examples(dataset, split, limit=limit, seed=seed))
        source = dataset_source(dataset)
    except Exception as exc:  # a report must not fail on a dataset that moved; it says so instead
        items, source = None, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return {"role": role, "dataset": dataset, "split": split, "source": source, "items": items}


def data_markdown(data: Iterable[dict[str, Any]]) -> list[str]:
    """The "Data" section of a results.md: one line per (role, dataset, split)."""
    lines = ["## Data", "", "| role | dataset | split | items | source |", "|---|---|---|---|---|"]
    for d in data:
        items = "?" if d.get("items") is None else str(d["items"])
        lines.append(f"| {d['role']} | {d['dataset']} | {d['split']} | {items} | {d['source']} |")
    return [*lines, ""]
