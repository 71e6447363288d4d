"""`aicd sweep CONFIG.yaml [--set key=value ...] [--resume] [--dry-run] [--parallel N]`, `aicd sweep-report DIR ... --out DIR`
and `aicd demo [--out DIR] [--quick]`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from aicd.cli.options import threads_option
from aicd.config import check_training_set
from aicd.demo import FULL, QUICK  # light: no torch at import time
from aicd.errors import ConfigError
from aicd.sweep import PlannedRun, SweepCallback


def sweep_command(
    config: Path = typer.Argument(..., help="YAML file of SweepConfig fields (train, eval, grid, ...)"),
    set_: list[str] = typer.Option(
        None, "--set", help="override a field: model=..., grid.seed=[0,1], eval.shots=[0,4] (repeatable)"
    ),
    resume: bool = typer.Option(False, "--resume", help="skip finished runs and resume unfinished ones"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only list the runs the grid expands to"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    parallel: int = typer.Option(
        1,
        "--parallel",
        min=1,
        help="runs trained at once, each in its own local process (one GPU each when several are visible); "
        "default 1: in order, in this process",
    ),
    threads: int | None = threads_option(),
) -> None:
    """Train and evaluate a grid of runs; write results.csv/.md (Table 1) and the figures."""
    from aicd.sweep import load_sweep_config, plan_sweep, sweep_dir

    cfg = load_sweep_config(config, set_ or [])
    runs = plan_sweep(cfg)  # every run's config is validated before anything is written
    _check_training_sets(runs)
    typer.echo(f"sweep {cfg.name}: {len(runs)} run(s) -> {sweep_dir(cfg)}")
    if dry_run:
        for run in runs:
            datasets = ", ".join(e.dataset for e in run.evals)
            shots = run.evals[0].shots if run.evals else []
            typer.echo(f"  {run.name}: train {run.train.dataset}, eval {datasets} at shots {shots}")
        return
    from aicd.sweep import run_sweep

    result = run_sweep(cfg, callback=_EchoCallback(), resume=resume, progress=progress, parallel=parallel)
    typer.echo(result.md_path.read_text(encoding="utf-8"))
    outputs = [result.csv_path, result.md_path, *result.plots]
    typer.echo("wrote " + ", ".join(str(p) for p in outputs))
    if result.stopped:
        typer.echo("stopped early; continue with --resume")


def _check_training_sets(runs: list[PlannedRun]) -> None:
    """n_shots of every run against its training set, so a grid value too large for the data stops the sweep
    before its first run trains (one line naming the run and the field)."""
    for run in runs:
        if not run.trained:
            continue
        try:
            check_training_set(run.train, "grid.n_shots" if "n_shots" in run.params else "train.n_shots")
        except ConfigError as exc:
            raise ConfigError(f"sweep run '{run.name}': {exc}") from None


class _EchoCallback(SweepCallback):
    """One line per run so a long sweep shows where it is."""

    total = 0

    def on_plan(self, runs: list[PlannedRun]) -> None:
        self.total = len(runs)

    def on_run_start(self, index: int, run: PlannedRun) -> None:
        typer.echo(f"[{index + 1}/{self.total}] {run.name}")

    def on_run_end(self, index: int, run: PlannedRun, status: str) -> None:
        if status == "skipped":
            typer.echo(f"[{index + 1}/{self.total}] {run.name}: already done, skipped")


def demo_command(
    out: Path = typer.Option(
        Path("runs/demo"), "--out", help="output folder (data, base model, runs, report)"
    ),
    quick: bool = typer.Option(False, "--quick", help="a much smaller run that only checks the pipeline"),
    resume: bool = typer.Option(False, "--resume", help="reuse finished runs in --out"),
    threads: int | None = threads_option(),
    steps: int = typer.Option(
        None,
        "--steps",
        min=1,
        help=f"optimizer steps per objective (default {FULL['max_steps']}; quick {QUICK['max_steps']})",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
) -> None:
    """Offline demo: AICD vs condgen, lm and nocot on a hidden-rule task, pretrained tiny student, 0-3 shots."""
    import time

    from aicd.demo import run_demo

    start = time.perf_counter()
    result = run_demo(
        out,
        quick=quick,
        resume=resume,
        threads=threads or 1,  # default 1: the tiny student gains nothing from a second thread (demo.md)
        callback=_EchoCallback(),
        steps=steps,
        progress=progress,
    )
    typer.echo(result.report)
    typer.echo(f"demo took {time.perf_counter() - start:.0f} s (load average {os.getloadavg()[0]:.1f})")
    sweep = result.sweep
    paths = [result.report_path, sweep.csv_path, sweep.md_path, *sweep.plots]
    typer.echo("wrote " + ", ".join(str(p) for p in paths))
    if result.stopped:
        typer.echo("stopped early; continue with --resume")


def report_command(
    sweeps: list[Path] = typer.Argument(
        ..., metavar="SWEEP", help="sweep folders (or their results.csv), e.g. runs/table1-*"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the merged results.csv/.md and figures"),
    title: str = typer.Option("Table 1", "--title", help="heading of the Markdown table"),
    threads: int | None = threads_option(),
) -> None:
    """Merge several sweeps' results (e.g. the four table1-<dataset> sweeps) into one Table 1."""
    from aicd.sweep import write_merged_report

    result = write_merged_report(sweeps, out, title=title)
    typer.echo(result.md_path.read_text(encoding="utf-8"))
    typer.echo("wrote " + ", ".join(str(p) for p in [result.csv_path, result.md_path, *result.plots]))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("sweep")(sweep_command)
    app.command("sweep-report")(report_command)
    app.command("demo")(demo_command)
