"""`aicd data list | show | export`: inspect the built-in datasets and convert any source to Example JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from aicd.cli.options import threads_option

data_app = typer.Typer(help="List, inspect and export datasets as Example JSONL.", no_args_is_help=True)

DataDir = typer.Option(
    None,
    "--data-dir",
    help="folder shaped like shared/datasets (default: AICD_DATA_DIR, "
    "../shared/datasets, else the packaged samples)",
)


def _load(
    name: str,
    split: str | None,
    limit: int | None,
    seed: int,
    data_dir: Path | None,
    question: str | None,
    answer: str | None,
    rationale: str | None,
    id_field: str | None,
):
    """Built-in / Example JSONL / hub via load_examples; a CSV/JSON(L) with a field mapping via load_generic."""
    from aicd.data.loaders import load_examples, load_generic

    if any(v is not None for v in (question, answer, rationale, id_field)):
        examples = load_generic(
            name,
            question=question or "question",
            answer=answer or "answer",
            rationale=rationale,
            id=id_field,
            split=None if split == "all" else split,
            seed=seed,
        )
        return examples[:limit] if limit is not None else examples
    return load_examples(name, split or "train", limit=limit, seed=seed, data_dir=data_dir)


@data_app.command("list")
def list_datasets(
    data_dir: Path | None = DataDir,
    counts: bool = typer.Option(True, "--counts/--no-counts", help="load each split to count records"),
    threads: int | None = threads_option(),
) -> None:
    """Registered datasets with answer kind, shots, split sizes and the data root used."""
    from rich.console import Console
    from rich.table import Table

    from aicd.data.loaders import DATASETS, data_root, load_examples, load_plugins

    load_plugins()
    table = Table(title=f"datasets (data root: {data_root(data_dir)})")
    for col in ("name", "answer", "shots", "train", "test", "with rationale", "description"):
        table.add_column(col)
    for name, info in sorted(DATASETS.items()):
        row = [name, info.answer_kind, str(info.n_shots)]
        if counts:
            train = load_examples(name, "train", data_dir=data_dir)
            test = load_examples(name, "test", data_dir=data_dir)
            row += [str(len(train)), str(len(test)), str(sum(bool(ex.rationales) for ex in train + test))]
        else:
            row += ["", "", ""]
        table.add_row(*row, info.description)
    Console().print(table)


@data_app.command("show")
def show(
    name: str = typer.Argument(..., help="dataset name, .jsonl/.csv path or hub id"),
    split: str = typer.Option("train", help="train | test"),
    limit: int = typer.Option(3, min=1, help="how many records to show"),
    seed: int = typer.Option(0, help="seed of drawn splits"),
    data_dir: Path | None = DataDir,
    threads: int | None = threads_option(),
) -> None:
    """Print the first records of a dataset with their rationales."""
    examples = _load(name, split, limit, seed, data_dir, None, None, None, None)
    for ex in examples:
        typer.secho(f"[{ex.id}] answer: {ex.answer}", bold=True)
        typer.echo(f"  Q: {ex.question}")
        for r in ex.rationales:
            who = r.source + (f" ({r.model})" if r.model else "")
            typer.echo(f"  - {who}: {r.text}")
    typer.echo(f"{len(examples)} record(s) shown")


@data_app.command("export")
def export(
    name: str = typer.Argument(..., help="dataset name, .jsonl/.csv/.json path or hub id"),
    out: Path = typer.Option(..., "--out", "-o", help="Example JSONL to write (atomically)"),
    split: str | None = typer.Option(
        None,
        help="train (default) | test; with a field mapping the default is the whole file, and train/test "
        "draw a seeded 70/30 split",
    ),
    limit: int | None = typer.Option(None, min=1, help="keep the first N records"),
    seed: int = typer.Option(0, help="seed of drawn splits"),
    data_dir: Path | None = DataDir,
    question: str | None = typer.Option(None, "--question-field", help="generic file: question column"),
    answer: str | None = typer.Option(None, "--answer-field", help="generic file: answer column"),
    rationale: str | None = typer.Option(None, "--rationale-field", help="generic file: rationale column"),
    id_field: str | None = typer.Option(None, "--id-field", help="generic file: id column"),
    threads: int | None = threads_option(),
) -> None:
    """Write a dataset split as Example JSONL (the format training, evaluation and annotation read)."""
    from aicd.data.jsonl import write_examples

    examples = _load(name, split, limit, seed, data_dir, question, answer, rationale, id_field)
    write_examples(out, examples)
    typer.echo(f"wrote {len(examples)} record(s) to {out}")


def register(app: typer.Typer) -> None:
    """Add `aicd data …` to the CLI."""
    app.add_typer(data_app, name="data")
