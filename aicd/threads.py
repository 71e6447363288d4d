"""How many CPU threads a command or job computes with, set in one place.

Torch's default (every core) is right only when nothing else runs: two jobs that each take every core of a
busy machine fight over them, and a 200-item evaluation ran 8.5× slower than with one thread each. So every
command takes `--threads` (or `AICD_THREADS`), and workers default to the cores shared evenly between the
jobs that run at once. `configure_threads` also exports the OpenMP/MKL variables so child processes
(data-loader workers, tokenizers, a worker's jobs) inherit the same limit. No torch import at module level:
the API imports this to hand the setting to its jobs.
"""

from __future__ import annotations

import os
import sys

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as taskset/cgroups set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int) -> int:
    """`threads` when 1 ≤ threads ≤ the cores available, else ValueError naming the field."""
    cores = available_cores()
    if not 1 <= threads <= cores:
        raise ValueError(f"threads must be between 1 and {cores} (the cores available here), got {threads}")
    return threads


def default_threads(concurrent_jobs: int = 1) -> int:
    """The available cores shared evenly between `concurrent_jobs` jobs (at least one each)."""
    return max(1, available_cores() // max(1, concurrent_jobs))


def rank_thread_env(processes: int) -> dict[str, str]:
    """The environment that gives each of `processes` CPU ranks its share of this command's threads
    ($AICD_THREADS, else every core): ranks that each took every core would fight over them."""
    total = int(os.environ.get("AICD_THREADS") or 0) or available_cores()
    share = str(max(1, total // max(1, processes)))
    return {name: share for name in (*THREAD_ENV_VARS, "AICD_THREADS")}


def configure_threads(threads: int) -> int:
    """Limit this process (torch intra-op threads) and its future children to `threads`; returns it."""
    check_threads(threads)
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    os.environ["AICD_THREADS"] = str(threads)
    torch = sys.modules.get("torch")  # not imported yet: it reads OMP_NUM_THREADS when it is
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


def torch_threads() -> int | None:
    """The threads torch computes with in this process (what results and metrics record); None when this
    process has not imported torch (e.g. an evaluation through an HTTP backend)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None
