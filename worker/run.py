"""Run one job in this process: `python -m worker.run aicd.train <id> <attempt>` (embedded mode's executor)."""

from __future__ import annotations

import logging
import signal
import sys

from worker import handlers
from worker.context import SHUTDOWN


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print("usage: python -m worker.run <task> <job id> <attempt>", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(
        signal.SIGTERM, lambda *_: SHUTDOWN.set()
    )  # checkpoint and stop, like a Celery warm shutdown
    handlers.run_task(argv[0], int(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
