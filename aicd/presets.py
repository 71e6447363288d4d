"""Launch presets: model-appropriate training and evaluation sizes, defined once here and served by the API
(`GET /presets`) so the UI keeps no copy.

A from-scratch tiny model (`tiny:*`) needs a large learning rate (1e-3 .. 3e-4) and a step cap; the paper's value
7e-6 is for fine-tuning a pretrained 6B student for 10 epochs. Each preset is a partial `TrainConfig` (`train`)
and `EvalConfig` (`eval`): the launch form starts from it, the user may change any field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields (limit None = every question)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "smoke",
            "smoke test (tiny, ~1 min on a laptop CPU)",
            "Checks the whole pipeline end to end: a from-scratch tiny GPT-2 for 20 steps, 8 test questions at "
            "0 and 1 shots. The accuracies mean nothing.",
            train={
                "model": "tiny:gpt2",
                "n_shots": 2,
                "lr": 1e-3,
                "epochs": 1,
                "max_steps": 20,
                "batch_size": 4,
                "micro_batch_size": 4,
                "max_length": 512,
                "eval_every": 10,  # an accuracy curve of 3 points on 8 questions
                "eval_limit": 8,
                "eval_max_new_tokens": 32,
            },
            eval={"shots": [0, 1], "seeds": [0], "limit": 8, "max_new_tokens": 32},
        ),
        Preset(
            "tiny",
            "tiny-scale study",
            "A from-scratch tiny Llama trained 300 steps, an accuracy curve every 50 steps, 64 test questions "
            "at 0-3 shots x 3 seeds: trends on a CPU in tens of minutes, not the paper's numbers.",
            train={
                "model": "tiny:llama",
                "n_shots": 4,
                "lr": 3e-4,
                "epochs": 10,
                "max_steps": 300,
                "batch_size": 8,
                "micro_batch_size": 4,
                "max_length": 1024,
                "eval_every": 50,
                "eval_limit": 32,
                "eval_max_new_tokens": 64,
            },
            eval={"shots": [0, 1, 2, 3], "seeds": [0, 1, 2], "limit": 64, "max_new_tokens": 64},
        ),
        Preset(
            "paper",
            "paper",
            "The paper's setting: GPT-J 6B fine-tuned 10 epochs at lr 7e-6, global batch 16, every test question "
            "at 0-3 shots x 3 seeds. Needs a large GPU (hours per run).",
            train={
                "model": "EleutherAI/gpt-j-6b",
                "n_shots": 4,
                "lr": 7e-6,
                "epochs": 10,
                "max_steps": None,
                "batch_size": 16,
                "micro_batch_size": 2,
                "max_length": 1024,
                "eval_every": 0,
            },
            eval={"shots": [0, 1, 2, 3], "seeds": [0, 1, 2], "limit": None, "max_new_tokens": 256},
        ),
    )
}
DEFAULT_PRESET = "smoke"


def preset_dicts() -> list[dict[str, Any]]:
    """Every preset as plain JSON, smallest first."""
    return [asdict(p) for p in PRESETS.values()]
