"""`aicd.parent_death` with stand-in processes (no training): a parent playing the worker starts a tied
"launcher", which starts a "rank" in a session of its own as torch's launcher does; SIGKILLing the parent (or
the launcher) leaves nothing running. The real launched runs are in test_distributed.py and the backend's
test_worker_launch.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aicd.parent_death import LAUNCHER_ENV
from tests.support.processes import kill, running, wait_gone

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's (prctl)"
)

PARENT = """
import subprocess, sys
from aicd.parent_death import tied_command
subprocess.Popen(tied_command([sys.executable, *sys.argv[1:]]), start_new_session=True).wait()
"""
LAUNCHER = f"""
import os, subprocess, sys
print("launcher", os.getpid(), os.environ["{LAUNCHER_ENV}"], flush=True)
subprocess.Popen([sys.executable, *sys.argv[1:]], start_new_session=True).wait()
"""
RANK = """
import os, sys, time
import aicd.parent_death as parent_death
if sys.argv[1:] == ["--without-prctl"]:  # as where prctl is missing: the fallback polls the parent pid
    parent_death.set_parent_death_signal = lambda *a: False
parent_death.die_with_launcher()
print("rank", os.getpid(), flush=True)
time.sleep(600)
"""


def _start_tree(tmp_path: Path, *rank_args: str) -> tuple[subprocess.Popen[str], int, int]:
    """The parent process, and the pids of its launcher and of the launcher's rank once the rank is set up."""
    scripts = []
    for name, text in (("parent", PARENT), ("launcher", LAUNCHER), ("rank", RANK)):
        (tmp_path / f"{name}.py").write_text(text)
        scripts.append(str(tmp_path / f"{name}.py"))
    parent = subprocess.Popen([sys.executable, *scripts, *rank_args], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    _, launcher, recorded = parent.stdout.readline().split()
    assert recorded == launcher  # the wrapper exec'd into the launcher: same pid, handed to the ranks
    _, rank = parent.stdout.readline().split()
    return parent, int(launcher), int(rank)


def test_a_sigkilled_parent_takes_the_tied_launcher_and_its_rank_along(tmp_path):
    parent, launcher, rank = _start_tree(tmp_path)
    try:
        assert running([launcher, rank]) == [launcher, rank]
        parent.kill()
        parent.wait()
        wait_gone([launcher, rank], what="the launcher and its rank")
    finally:
        kill([parent.pid, launcher, rank])
        parent.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("rank_args", [(), ("--without-prctl",)], ids=["prctl", "polling"])
def test_a_rank_dies_with_its_sigkilled_launcher(tmp_path, rank_args):
    parent, launcher, rank = _start_tree(tmp_path, *rank_args)
    try:
        os.kill(launcher, signal.SIGKILL)
        wait_gone([rank], what="the rank")
        assert parent.wait(timeout=60) == 0  # the parent saw its launcher end, as the worker does
    finally:
        kill([parent.pid, launcher, rank])
        parent.stdout.close()  # type: ignore[union-attr]


def test_a_rank_whose_launcher_is_already_gone_stops_at_once():
    """The launcher may die between starting a rank and the rank setting its signal: the rank sees another
    parent and kills itself before training."""
    code = "from aicd.parent_death import die_with_parent; die_with_parent({}); print('trained')"
    done = subprocess.run(
        [sys.executable, "-c", code.format(os.getpid() + 1)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL and "trained" not in done.stdout


def test_the_wrapper_does_not_start_a_command_whose_parent_is_gone():
    cmd = [sys.executable, "-m", "aicd.parent_death", str(os.getpid() + 1), sys.executable, "-c", "print(1)"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "exited before" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_wrapper_without_a_parent_pid_says_how_to_call_it():
    done = subprocess.run(
        [sys.executable, "-m", "aicd.parent_death", "python"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stderr.startswith("usage: python -m aicd.parent_death")
