"""Options every `aicd` command shares."""

from __future__ import annotations

import typer

from aicd.threads import configure_threads


def _apply_threads(value: int | None) -> int | None:
    """Set the thread limit while the command line is parsed: before the command imports torch."""
    if value is None:
        return None
    try:
        return configure_threads(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def threads_option() -> int | None:
    """`--threads N` (or $AICD_THREADS): CPU threads for torch and the processes the command starts."""
    return typer.Option(
        None,
        "--threads",
        envvar="AICD_THREADS",
        callback=_apply_threads,
        help="CPU threads for torch and child processes (default: $AICD_THREADS, else every core); "
        "on a shared machine use cores ÷ jobs running at once",
    )
