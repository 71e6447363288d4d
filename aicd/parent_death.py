"""Launched training processes die with the process that started them, even when it is SIGKILLed.

A worker (or `aicd train`) runs `accelerate launch` in a session of its own, so that only the signals it means
reach it, and the launcher starts every rank in yet another session: no signal of a dying parent reaches
them. A parent SIGKILLed by the OOM killer or a lost node would leave the launcher and its ranks training into
a run directory that the reaper has marked `lost` and that a resume then trains in a second time.

The kernel's answer is Linux's parent-death signal (prctl(2), `PR_SET_PDEATHSIG`): a process asks to get a
signal when its parent exits. It is set twice, because a SIGKILLed launcher cannot pass it on:
- the launcher: `tied_command` runs it through `python -m aicd.parent_death PARENT_PID ARGV…`, which sets it
  and then execs ARGV (execve keeps it; a `preexec_fn` would run in a forked copy of a threaded worker, which
  Python documents as unsafe), recording its own pid in `LAUNCHER_ENV` for the ranks;
- each rank (`die_with_parent`, first thing a launched `aicd train` does): its parent is the launcher.
The signal is SIGKILL: a rank whose launcher is gone writes nothing more; checkpoints are written to a temp
folder and renamed, so a resume continues from the last whole one. Where prctl is missing (not Linux) a rank
falls back to a thread that watches its parent pid; the launcher itself is then not tied.

One caveat of the kernel's: "parent" is the *thread* that started the process. Both callers here start it from
the thread that then waits for it to exit, so that thread outlives it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

LAUNCHER_ENV = "AICD_LAUNCHER_PID"  # the launcher's pid, set by the wrapper for the ranks it starts
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_S = 1.0  # the fallback's polling period


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent exits; False where prctl is missing."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(expected_parent: int | None) -> None:
    """Be SIGKILLed when the parent exits; exit now if it already has (it died before the signal was set).

    `expected_parent` is the parent's pid as its parent saw it; None skips that check (a launcher we did not
    wrap). Without prctl a daemon thread polls the parent pid instead."""
    if not set_parent_death_signal() and expected_parent is not None:
        threading.Thread(target=_watch_parent, args=(expected_parent,), daemon=True).start()
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_launcher() -> None:
    """A rank: be SIGKILLed when the launcher that started it exits. With `LAUNCHER_ENV` set (our launcher on
    one machine, whose torch launcher starts every rank itself) a rank whose parent is not that pid is orphaned."""
    pid = os.environ.get(LAUNCHER_ENV, "")
    die_with_parent(int(pid) if pid.isdigit() else None)


def tied_command(argv: Sequence[str]) -> list[str]:
    """`argv` run so that it is SIGKILLed when this process exits (pass to `subprocess.Popen` from the thread
    that waits for it)."""
    return [sys.executable, "-m", "aicd.parent_death", str(os.getpid()), *argv]


def _watch_parent(expected_parent: int) -> None:
    while os.getppid() == expected_parent:
        time.sleep(WATCH_S)
    os.kill(os.getpid(), signal.SIGKILL)


def _exec_tied(args: Sequence[str]) -> None:
    """`python -m aicd.parent_death PARENT_PID ARGV…`: tie this process to PARENT_PID, then become ARGV."""
    if len(args) < 2 or not args[0].isdigit():
        sys.exit("usage: python -m aicd.parent_death PARENT_PID COMMAND [ARG ...]")
    set_parent_death_signal()
    if os.getppid() != int(args[0]):  # the parent died before the signal was set
        sys.exit(f"aicd.parent_death: parent {args[0]} exited before {args[1]} started; not starting it")
    os.environ[LAUNCHER_ENV] = str(os.getpid())  # exec keeps the pid: this is the launcher's
    os.execvp(args[1], list(args[1:]))


if __name__ == "__main__":
    _exec_tied(sys.argv[1:])
