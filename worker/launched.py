"""A run asking for several GPUs (`distributed.num_processes > 1`): trained by `accelerate launch` as a child
process group (`aicd.launch.launch_command`, the command `aicd train` re-launches itself with), followed from
this worker through the run directory — metric points from metrics.jsonl, the checkpoint step from the newest
`checkpoint-<step>/` — and stopped with SIGINT on cancel (every rank checkpoints and exits, as on Ctrl-C).
If this worker is SIGKILLed, the launcher and its ranks are SIGKILLed with it (`aicd.parent_death`), so the run
the reaper marks `lost` is not still being trained when it is resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import update

from aicd.errors import AICDError
from backend.db import session_scope
from backend.models import JobStatus, Run
from worker import store
from worker.context import JobContext

POLL_S = 1.0


def train_launched(ctx: JobContext, config: Any, *, resume: bool) -> int | None:
    """Run the launcher to its end, mirroring progress into the run's row; the final step, or None when it
    was stopped (the row is then finished here). Raises AICDError (the run fails, resumable) when a rank
    fails."""
    from aicd.checkpoint import checkpoint_step, latest_checkpoint
    from aicd.config import save_config
    from aicd.launch import launch_command
    from aicd.parent_death import tied_command

    run_dir: Path = config.run_dir
    ckpt = latest_checkpoint(run_dir) if resume else None
    start = (checkpoint_step(ckpt) or 0) if ckpt else 0
    with session_scope() as s:
        store.drop_metrics_after(s, ctx.job_id, start)  # steps after the checkpoint are redone
        # a killed worker may not have stored the last steps before that checkpoint: the file has them
        stored = store.last_metric_step(s, ctx.job_id)
    follower = _Metrics(ctx.job_id, run_dir, stored)
    with tempfile.TemporaryDirectory(prefix="aicd-launch-") as tmp:
        path = Path(tmp) / "config.yaml"
        save_config(config, path)
        cmd = launch_command(config, path, resume=resume, progress=False)  # ConfigError names the field
        # tied to this thread, which waits for it: a SIGKILLed worker takes the launcher and its ranks along
        proc = subprocess.Popen(tied_command(cmd.argv), env={**os.environ, **cmd.env}, start_new_session=True)
        ctx.phase("training (launched)")
        stopping = False
        try:
            while proc.poll() is None:
                try:
                    proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    pass
                # the ranks load, build episodes and train out of sight: a live process group is this job's
                # progress for the stall watchdog (metrics lines may be minutes apart while a big model loads)
                ctx.advance(0)
                follower.poll(ctx)
                if ctx.should_stop() and not stopping:
                    os.killpg(proc.pid, signal.SIGINT)  # every rank: checkpoint after this micro-batch, exit
                    stopping = True
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    follower.poll(ctx)
    n = config.distributed.num_processes
    if proc.returncode == 0 and not stopping:
        return follower.step
    if stopping:
        ctx.finish(ctx.stopped_status(), ctx.stopped_message(), step=follower.step)
        return None
    last = latest_checkpoint(run_dir)
    where = f"last checkpoint {last.name}; resume to continue" if last else "no checkpoint was written"
    raise AICDError(f"the {n}-process run failed (exit code {proc.returncode}); {where}")


class _Metrics:
    """New lines of metrics.jsonl → metric points and the run's step (the file is rewritten on resume, so
    it is re-read whole and only steps past the last one stored are taken)."""

    def __init__(self, run_id: int, run_dir: Path, start: int):
        self.run_id, self.run_dir, self.step = run_id, run_dir, start
        self.checkpoint: int | None = None

    def poll(self, ctx: JobContext) -> None:
        from aicd.checkpoint import METRICS_FILE, checkpoint_step, latest_checkpoint, read_metrics

        try:
            lines = [
                m for m in read_metrics(self.run_dir / METRICS_FILE) if int(m.get("step", 0)) > self.step
            ]
        except ValueError:  # a line being written: next poll
            return
        if lines:
            with session_scope() as s:
                for metrics in lines:
                    store.save_metric(s, self.run_id, int(metrics["step"]), metrics)
                self.step = int(lines[-1]["step"])
                s.execute(
                    update(Run)
                    .where(Run.id == self.run_id, Run.status == JobStatus.running)
                    .values(
                        step=self.step,
                        progress_done=self.step,
                        last_metrics=store.metric_row(self.run_id, self.step, lines[-1])["values"],
                    )
                )
        ckpt = latest_checkpoint(self.run_dir)
        step = checkpoint_step(ckpt) if ckpt else None
        if step is not None and step != self.checkpoint:
            self.checkpoint = step
            ctx.update(checkpoint_step=step)
