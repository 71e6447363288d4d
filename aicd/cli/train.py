"""`aicd train CONFIG.yaml [--set key=value ...] [--resume]`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aicd.cli.options import threads_option

if TYPE_CHECKING:
    from aicd.config import TrainConfig

# After a Ctrl-C, rank 0 is told again this often until the ranks have exited: one SIGINT can miss it (seen once
# under heavy load: the run trained on), and a repeat is harmless (its handler only sets the stop flag).
RESEND_S = 5.0


def train_command(
    config: Path = typer.Argument(..., help="YAML file of TrainConfig fields"),
    set_: list[str] = typer.Option(None, "--set", help="override a field, e.g. --set lr=1e-5 (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's newest checkpoint"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    threads: int | None = threads_option(),
) -> None:
    """Fine-tune a student on n-shot episodes (AICD or a baseline objective)."""
    from aicd.config import TrainConfig, check_training_set, load_config

    cfg = load_config(TrainConfig, config, set_ or [])  # ConfigError (named field) before anything is written
    if cfg.full_data:  # paper scale: never the packaged samples (DataError, one line, nothing written)
        from aicd.provenance import require_full_data

        require_full_data([cfg.dataset, cfg.eval_dataset], "full_data")
    check_training_set(cfg)  # n_shots <= the training set's size, before a model is loaded
    from aicd.launch import inside_launch

    if inside_launch():  # a rank: it must not outlive its launcher (which may have been SIGKILLed already)
        from aicd.parent_death import die_with_launcher

        die_with_launcher()
    elif cfg.distributed.num_processes > 1:
        _launch(cfg, resume=resume, progress=progress)
        return
    from aicd.train import TrainCallback, train

    class StopOnCtrlC(TrainCallback):
        """First Ctrl-C: finish the micro-batch, checkpoint, exit; a second one aborts at once."""

        requested = False

        def should_stop(self) -> bool:
            return self.requested

    callback = StopOnCtrlC()
    previous = None
    if threading.current_thread() is threading.main_thread():
        launched = inside_launch()

        def on_sigint(signum: int, frame: object) -> None:
            callback.requested = True
            if (
                launched
            ):  # a rank: SIGINT may come twice (its group and torchrun's shutdown); the parent aborts
                return
            typer.echo("\nstopping after this micro-batch (Ctrl-C again to abort)...", err=True)
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train(cfg, callback=callback, resume=resume, progress=progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    quiet = os.environ.get("RANK", "0") != "0"  # a launched run: rank 0 reports
    if result.stopped:
        if not quiet:
            typer.echo(f"stopped at step {result.step}/{result.total_steps}; continue with --resume")
        raise SystemExit(
            130
        )  # like an interrupted command (typer.Exit's code is lost in non-standalone mode)
    if quiet:
        return
    loss = result.last_metrics.get("loss")
    tail = f", last loss {loss:.4f}" if isinstance(loss, float) else ""
    typer.echo(f"trained {result.step} steps{tail}; model saved to {result.final_dir}")


def _launch(cfg: TrainConfig, *, resume: bool, progress: bool) -> None:
    """Re-run this command on `distributed.num_processes` processes with `accelerate launch`; one line if
    a rank fails (the ranks' own errors are above it).

    The launcher runs in its own session, so Ctrl-C reaches only this process, which hands it to rank 0
    alone: rank 0's stop flag is broadcast to every rank, they checkpoint together and exit. If this process
    is SIGKILLed, the launcher and its ranks are too (`aicd.parent_death`)."""
    import tempfile

    from aicd.checkpoint import latest_checkpoint
    from aicd.config import save_config
    from aicd.launch import launch_command
    from aicd.parent_death import tied_command

    n = cfg.distributed.num_processes
    with tempfile.TemporaryDirectory(prefix="aicd-launch-") as tmp:
        resolved = Path(tmp) / "config.yaml"  # the config with every --set applied, for all ranks
        save_config(cfg, resolved)
        cmd = launch_command(cfg, resolved, resume=resume, progress=progress)
        proc = subprocess.Popen(tied_command(cmd.argv), env={**os.environ, **cmd.env}, start_new_session=True)
        # Ctrl-C must reach this loop even when SIGINT came ignored (a shell's background job), as the
        # one-process path installs its own handler too: else rank 0 is never told and the ranks train on
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            code, interrupted = _follow(proc)
        finally:
            signal.signal(signal.SIGINT, previous)
    ckpt = latest_checkpoint(cfg.run_dir)
    if code == 0:
        return
    if interrupted:
        where = f"at {ckpt.name}" if ckpt else "before the first checkpoint"
        typer.echo(f"stopped {where}; continue with --resume")
        raise SystemExit(130)
    where = f"last checkpoint {ckpt.name}; continue with --resume" if ckpt else "no checkpoint was written"
    typer.echo(f"train: the {n}-process run failed (exit code {code}); {where}", err=True)
    raise SystemExit(1)


def _follow(proc: subprocess.Popen[bytes]) -> tuple[int, bool]:
    """Wait for the launcher; on Ctrl-C tell rank 0 (again every RESEND_S until the ranks exit), on a second
    one kill the whole group. Returns (exit code, whether the user interrupted)."""
    from aicd.launch import interrupt_rank0

    interrupted = False
    while True:
        try:
            return proc.wait(timeout=RESEND_S if interrupted else None), interrupted
        except subprocess.TimeoutExpired:  # still running after a Ctrl-C: say it to rank 0 again
            interrupt_rank0(proc.pid)
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl-C: stop everything now
                os.killpg(proc.pid, signal.SIGKILL)
                continue
            interrupted = True
            typer.echo("\nstopping after this micro-batch (Ctrl-C again to abort)...", err=True)
            interrupt_rank0(proc.pid)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("train")(train_command)
