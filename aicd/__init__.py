"""AICD: Autoregressive In-Context Distillation of chain-of-thought into small students.

Heavy dependencies (torch, transformers) load only when a name that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Shot": "aicd.episodes",
    "Episode": "aicd.episodes",
    "build_episode": "aicd.episodes",
    "sample_episode_shots": "aicd.episodes",
    "episode_loss": "aicd.objectives",
    "omega_weights": "aicd.objectives",
    "extract_answer": "aicd.answers",
    "Example": "aicd.data.record",
    "Rationale": "aicd.data.record",
    "TrainConfig": "aicd.config",
    "EvalConfig": "aicd.config",
    "SweepConfig": "aicd.config",
    "load_model_and_tokenizer": "aicd.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'aicd' has no attribute '{name}'")
