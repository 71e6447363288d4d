"""JobContext as the job's `aicd.progress.Progress`: cancel/shutdown through check(), and the stall watchdog."""

from __future__ import annotations

import pytest

from aicd.progress import Cancelled, Progress
from backend.models import Run


class RecordingContext:
    """A JobContext whose row writes are recorded instead of sent (the watchdog's logic, not the database)."""

    @staticmethod
    def make(monkeypatch: pytest.MonkeyPatch, stall_s: float):
        from backend.core.settings import get_settings
        from worker.context import JobContext

        monkeypatch.setenv("AICD_STALL_TIMEOUT_S", str(stall_s))
        get_settings.cache_clear()
        ctx = JobContext(Run, 1, 1)
        get_settings.cache_clear()
        ctx.finished = []
        monkeypatch.setattr(
            ctx, "finish", lambda status, error=None, **v: ctx.finished.append((status, error))
        )
        return ctx


def _age(ctx, seconds: float) -> None:
    ctx._progress_at -= seconds  # as if the phase had been quiet this long


def test_the_watchdog_fails_a_quiet_phase_once_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = RecordingContext.make(monkeypatch, 30)
    assert isinstance(ctx, Progress)
    ctx.phase("episodes", 2000)
    ctx.advance(10)
    _age(ctx, 29)
    ctx._watch_stall()
    assert ctx.finished == [] and not ctx.should_stop()
    ctx.advance(0)  # a poll from a moving loop counts as progress
    _age(ctx, 29)
    ctx._watch_stall()
    assert ctx.finished == []
    _age(ctx, 2)
    ctx._watch_stall()
    ctx._watch_stall()
    assert len(ctx.finished) == 1
    status, error = ctx.finished[0]
    assert (
        status == "failed"
        and "in phase 'episodes' at 10/2000" in error
        and "AICD_STALL_TIMEOUT_S=30" in error
    )
    with pytest.raises(Cancelled, match="no progress for"):
        ctx.check()
    assert ctx.stopped_status() == "failed" and ctx.stopped_message() == error


def test_zero_disables_the_watchdog_and_cancel_wins_over_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = RecordingContext.make(monkeypatch, 0)
    _age(ctx, 10**6)
    ctx._watch_stall()
    assert ctx.finished == []
    ctx.check()  # nothing to stop
    ctx.cancelled.set()
    with pytest.raises(Cancelled, match="cancelled by request"):
        ctx.check()
    assert ctx.stopped_status() == "cancelled"
