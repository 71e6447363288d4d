"""`aicd train CONFIG.yaml [--set key=value ...] [--resume]`."""

from __future__ import annotations

import signal
import threading
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
    from aicd.train import TrainCallback, train

    class StopOnCtrlC(TrainCallback):
        """First Ctrl-C: finish the micro-batch, checkpoint, exit; a second one aborts at once."""

        requested = False

        def should_stop(self) -> bool:
            return self.requested

    callback = StopOnCtrlC()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_sigint(signum: int, frame: object) -> None:
            callback.requested = True
            typer.echo("\nstopping after this micro-batch (Ctrl-C again to abort)...", err=True)
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train(cfg, callback=callback, resume=resume, progress=progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if result.stopped:
        typer.echo(f"stopped at step {result.step}/{result.total_steps}; continue with --resume")
        raise SystemExit(
            130
        )  # like an interrupted command (typer.Exit's code is lost in non-standalone mode)
    loss = result.last_metrics.get("loss")
    tail = f", last loss {loss:.4f}" if isinstance(loss, float) else ""
    typer.echo(f"trained {result.step} steps{tail}; model saved to {result.final_dir}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("train")(train_command)
