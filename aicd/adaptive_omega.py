"""The experimental `adaptive` ω schedule: context-shot weights recomputed every step from the student's loss.

Rule (0-based shot positions, n shots, the final shot at position n-1):

    L_i   running loss of position i: an exponential moving average, L_i ← d·L_i + (1−d)·m_i with d = EMA_DECAY,
          of m_i = the step's mean NLL per supervised token of shot i's target (Σ w·nll / Σ w over the
          step's episodes; w is constant within a shot, so this is the plain per-token mean). The first
          observation of a position sets L_i = m_i; a step without tokens at i (or with a non-finite m_i)
          leaves L_i unchanged.
    ω_i   = omega · L_i / max_{j<n-1} L_j   for i < n-1 (so the largest context weight is `omega`),
    ω_n-1 = 1.
    Until every context position has a running loss (the first step), ω is the paper schedule: omega for
    i < n-1, 1 for the last.

Positions are aligned to the end: in an episode whose earliest shots were dropped to fit max_length, its
last shot is still position n-1. The ω used at a step comes from the running losses *before* that step;
the step's own losses then update them. Episodes are built once per epoch with the paper weights; each step
rescales their tokens by ω_i / ω_paper_i (`reweight`), and the per-position NLL sums come from the same
forward pass (`batch_nll` with a `shot_onehot` batch key), so nothing is run twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from aicd.episodes import Episode

EMA_DECAY = 0.9  # weight of the past in the running per-position loss


def adaptive_weights(running: Sequence[float | None], omega: float) -> list[float]:
    """ω_1..ω_n from the running per-position losses (the module docstring's rule); n = len(running)."""
    n = len(running)
    context = list(running[: n - 1])
    if n == 1:
        return [1.0]
    if any(v is None for v in context) or max(context) <= 0:  # type: ignore[type-var]
        return [float(omega)] * (n - 1) + [1.0]
    top = max(context)  # type: ignore[type-var]
    return [float(omega) * float(v) / top for v in context] + [1.0]  # type: ignore[arg-type]


def ema_update(
    running: Sequence[float | None], means: Sequence[float | None], decay: float
) -> list[float | None]:
    """The running losses after one step whose per-position mean NLLs are `means` (None: no tokens there)."""
    out: list[float | None] = []
    for old, new in zip(running, means, strict=True):
        if new is None or not math.isfinite(new):
            out.append(old)
        else:
            out.append(new if old is None else decay * old + (1.0 - decay) * new)
    return out


def token_positions(episode: Episode, n: int) -> list[int]:
    """The shot position (0..n-1, end-aligned) of every token of `episode`; 0 where no shot target is."""
    out = [0] * len(episode.input_ids)
    offset = n - episode.n_shots
    for span in episode.spans:
        if span.kind in ("target", "eos"):
            out[span.start : span.end] = [offset + span.shot] * (span.end - span.start)
    return out


class AdaptiveOmega:
    """The running per-position losses of one training run and the ω they give (checkpointed with it)."""

    def __init__(self, n: int, omega: float, decay: float = EMA_DECAY):
        from aicd.objectives import omega_weights

        self.n, self.omega, self.decay = n, float(omega), decay
        self.base = omega_weights("paper", n, omega=omega)  # the weights episodes are built with
        self.running: list[float | None] = [None] * n
        self.used: list[float] = self.weights()  # ω of the latest step
        self.used_running: list[float | None] = list(self.running)  # the running losses that gave it
        self.step_nll: list[float | None] = [None] * n  # the latest step's per-position mean NLL

    def weights(self) -> list[float]:
        return adaptive_weights(self.running, self.omega)

    def begin_step(self) -> list[float]:
        """ω for the next step, remembered as the one used."""
        self.used, self.used_running = self.weights(), list(self.running)
        return self.used

    def reweight(self, episode: Episode) -> tuple[Episode, list[int]]:
        """`episode` with its tokens weighted by this step's ω, and its token positions."""
        positions = token_positions(episode, self.n)
        scale = [u / b for u, b in zip(self.used, self.base, strict=True)]
        weights = [w * scale[p] if w else 0.0 for w, p in zip(episode.loss_weights, positions, strict=True)]
        return replace(episode, loss_weights=weights), positions

    def one_hot(self, positions: Sequence[Sequence[int]], width: int) -> torch.Tensor:
        """[B, width, n] bool: token t of episode b belongs to shot position p (right-padded like the batch)."""
        import torch

        out = torch.zeros((len(positions), width, self.n), dtype=torch.bool)
        for row, pos in enumerate(positions):
            index = torch.tensor(pos, dtype=torch.long)
            out[row, torch.arange(len(pos)), index] = True
        return out

    def end_step(self, nll_sums: Sequence[float], weight_sums: Sequence[float]) -> None:
        """Fold one step's Σ w·nll and Σ w per position into the running losses."""
        self.step_nll = [s / w if w > 0 else None for s, w in zip(nll_sums, weight_sums, strict=True)]
        self.running = ema_update(self.running, self.step_nll, self.decay)

    def log_fields(self) -> dict[str, Any]:
        """What a metrics line records: the ω used, the running losses it came from, the step's losses."""
        return {"omega": self.used, "omega_running_nll": self.used_running, "shot_nll": self.step_nll}

    def state_dict(self) -> dict[str, Any]:
        return {"running": list(self.running), "decay": self.decay, "omega": self.omega, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("n") != self.n:
            raise ValueError(
                f"n_shots: the checkpoint's adaptive ω has {state.get('n')} positions, not {self.n}"
            )
        self.running = list(state["running"])
        self.used, self.used_running = self.weights(), list(self.running)
