"""Sweep job: `aicd.sweep.run_sweep` over the grid, with progress, cancellation and the results table stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import JobStatus, Sweep
from worker import store
from worker.context import JobContext


def _callback(ctx: JobContext) -> Any:
    """A callback for run_sweep built on the core's SweepCallback when it offers one (duck-typed otherwise)."""
    import aicd.sweep as core

    base = getattr(core, "SweepCallback", object)

    class Callback(base):  # type: ignore[misc, valid-type]
        def on_progress(self, done: int, total: int, *args: Any, **kwargs: Any) -> None:
            ctx.update(progress_done=done, progress_total=total)

        def on_table(self, rows: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
            ctx.update(table_rows=[dict(r) for r in rows])

        def should_stop(self) -> bool:
            return ctx.should_stop()

    return Callback()


def sweep(ctx: JobContext) -> None:
    from aicd.sweep import run_sweep

    from aicd.config import SweepConfig

    row: Sweep = ctx.load()
    root = get_settings().artifacts
    config = SweepConfig.model_validate({**row.config, "output_dir": str(root / "sweeps")})
    result = run_sweep(config, callback=_callback(ctx), resume=True)
    rows = [dict(r) for r in result.table_rows]
    paths = [p for p in (result.csv_path, result.md_path, *(result.plots or [])) if p]
    outputs = {"csv": str(result.csv_path) if result.csv_path else None,
               "md": str(result.md_path) if result.md_path else None,
               "plots": [str(p) for p in (result.plots or [])]}
    with session_scope() as s:
        store.register_artifacts(s, root, [Path(p) for p in paths], "sweep", sweep_id=row.id)
    if getattr(result, "stopped", False):
        ctx.finish(ctx.stopped_status(), "cancelled by request" if ctx.cancelled.is_set() else None,
                   table_rows=rows, outputs=outputs)
    else:
        ctx.finish(JobStatus.succeeded, table_rows=rows, outputs=outputs)
