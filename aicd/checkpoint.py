"""Run-directory bookkeeping for training: atomic checkpoints, rotation, RNG state, metrics truncation.

A checkpoint is `run_dir/checkpoint-<step>/`: what `accelerator.save_state` writes (optimizer, scheduler,
scaler, every rank's RNG; the weights in Hugging Face format — or the LoRA adapter — unless they are sharded
by FSDP/DeepSpeed), the tokenizer, `config.yaml`, and `trainer_state.pt` (step and position in the data). It is written to a hidden temp folder and renamed into place, so a crash never leaves a half
checkpoint that `--resume` would pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"
DONE_FILE = "train_done.json"


def checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith(CHECKPOINT_PREFIX):
        return None
    tail = name.removeprefix(CHECKPOINT_PREFIX)
    return int(tail) if tail.isdigit() else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a trainer state), oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if checkpoint_step(p) is not None and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints; returns what was deleted."""
    ckpts = list_checkpoints(run_dir)
    doomed = ckpts[:-keep] if keep > 0 else ckpts
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished folder into place, replacing `target` if it exists (each rename is atomic)."""
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder next to `target`; on success it replaces `target`, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def capture_rng() -> dict[str, Any]:
    """Every RNG that training touches (dropout uses torch's), so a resumed run replays exactly."""
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def truncate_metrics(path: Path, max_step: int) -> int:
    """Keep only metrics lines with step <= max_step (rewritten atomically); returns lines kept."""
    if not path.exists():
        return 0
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= max_step:
                kept.append(line)
        except json.JSONDecodeError:  # a line cut by a crash
            continue
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)
    return len(kept)


def append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(metrics) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
