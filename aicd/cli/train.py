"""`aicd train CONFIG.yaml [--set key=value ...] [--resume]`."""

from __future__ import annotations

from pathlib import Path

import typer


def train_command(
    config: Path = typer.Argument(..., help="YAML file of TrainConfig fields"),
    set_: list[str] = typer.Option(None, "--set", help="override a field, e.g. --set lr=1e-5 (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's newest checkpoint"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Fine-tune a student on n-shot episodes (AICD or a baseline objective)."""
    from aicd.config import TrainConfig, load_config

    cfg = load_config(TrainConfig, config, set_ or [])  # ConfigError (named field) before anything is written
    from aicd.train import train

    result = train(cfg, resume=resume, progress=progress)
    if result.stopped:
        typer.echo(f"stopped at step {result.step}/{result.total_steps}; resume with --resume")
        return
    loss = result.last_metrics.get("loss")
    tail = f", last loss {loss:.4f}" if isinstance(loss, float) else ""
    typer.echo(f"trained {result.step} steps{tail}; model saved to {result.final_dir}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("train")(train_command)
