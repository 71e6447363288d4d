"""A tiny hook through which long phases report progress and honour cancel/shutdown, without importing callers.

`aicd` never imports the backend or the worker, yet a worker must see every phase of a job (loading, episode
building, training, evaluation, annotation, export) move, and stop it within seconds. So each long phase takes
a `Progress` and calls `phase(name, total)` when it starts, `advance(n)` as it goes and `check()` at least every
few seconds; `check()` raises `Cancelled` when the caller wants the job to stop. The worker's `JobContext`
implements it (heartbeat, cancel flag, stall watchdog); `NO_PROGRESS` does nothing; `StopCheck` turns a plain
`should_stop()` callable into one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


class Cancelled(Exception):  # noqa: N818 - it is an outcome, not an error
    """Raised by `Progress.check()`: the caller asked this work to stop (cancel, shutdown, stall)."""


@runtime_checkable
class Progress(Protocol):
    """What a long phase reports to its caller. Implementations must make `check()` cheap (no I/O)."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase starts (`loading`, `episodes`, `training`, …); `total` units if known."""

    def advance(self, n: int = 1) -> None:
        """`n` more units of the current phase are done (also proves the phase is not stuck)."""

    def check(self) -> None:
        """Raise `Cancelled` if the work should stop now."""


class NoProgress:
    """The default hook: reports nowhere and never stops."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def check(self) -> None:
        pass


NO_PROGRESS: Progress = NoProgress()


class StopCheck(NoProgress):
    """A `Progress` whose `check()` raises `Cancelled` once `should_stop()` is true."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    def check(self) -> None:
        if self.should_stop():
            raise Cancelled("stopped by request")


def tracked(items: Iterable[T], progress: Progress, every: int = 1) -> Iterator[T]:
    """Yield `items`, calling `check()` before each and `advance()` after every `every` of them."""
    pending = 0
    for item in items:
        progress.check()
        yield item
        pending += 1
        if pending >= every:
            progress.advance(pending)
            pending = 0
    if pending:
        progress.advance(pending)


def checked_call(fn: Callable[[], T], progress: Progress, poll_s: float = 1.0) -> T:
    """`fn()` for a blocking call that cannot check anything itself (loading a large model): it runs in a
    daemon thread while this thread calls `progress.check()` every `poll_s`, so cancel and shutdown act within
    seconds. A cancelled call is abandoned: it finishes in the background and its result is dropped.

    A plain daemon thread rather than concurrent.futures: an executor's threads are joined at exit, so an
    abandoned multi-minute load would hold the process open after the job ended."""
    import threading

    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="checked-call", daemon=True).start()
    while not done.wait(poll_s):
        progress.check()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
