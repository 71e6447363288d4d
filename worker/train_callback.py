"""The TrainCallback through which every training a worker runs reports to its job: setup phases, progress and
the loop's stop polling go to the job's `JobContext`. It imports aicd.train (torch), so callers import this
module where they train, not at start-up."""

from __future__ import annotations

from aicd.train import TrainCallback
from worker.context import JobContext


class JobTrainCallback(TrainCallback):
    """Phases, progress and cancel of a training forwarded to `ctx`; subclasses add what they record."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def phase(self, name: str, total: int | None = None) -> None:
        self.ctx.phase(name, total)

    def advance(self, n: int = 1) -> None:
        self.ctx.advance(n)

    def check(self) -> None:
        self.ctx.check()

    def should_stop(self) -> bool:  # polled before every micro-batch: the loop is moving
        self.ctx.advance(0)
        return self.ctx.should_stop()
