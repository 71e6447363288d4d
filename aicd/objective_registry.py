"""The training objectives and their rules, defined once: the only place an objective name is compared.

Each objective is one weighted token NLL over an n-shot episode (`aicd.objectives`); what tells them apart is
data, not code: what follows `Answer:` in each shot (`target`), which shots carry loss weight (`weights`),
whether ω changes anything, and which demonstrations its evaluation prompts show (a student is shown shots the
way it was trained). Episodes, prompts, sweeps, plots, the API (`GET /objectives`) and through it the UI read
these records instead of keeping their own copies. Imports nothing of ours, so `aicd.config` can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

TargetKind = Literal["rationale", "answer"]
WeightRule = Literal["omega", "last", "all"]

# schedules whose weights are a function of ω (constant: all 1; custom: explicit weights)
OMEGA_SCHEDULES: tuple[str, ...] = ("paper", "linear", "exponential", "adaptive")


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: its display label and the rules every part of the workbench applies to it."""

    name: str
    label: str
    summary: str
    target: TargetKind  # text after `Answer:` in every shot of a training episode
    weights: (
        WeightRule  # omega: shot i weighted ω_i; last: only the final shot; all: every token after the first
    )
    demonstrations: TargetKind  # what the k-shot evaluation prompts of its students show
    color: str  # one colour per objective in every figure and chart
    line_style: str  # matplotlib style of its line / reference line

    @property
    def omega_free(self) -> bool:
        """Whether ω can never change this objective's loss (its weights are not per-shot ω_i)."""
        return self.weights != "omega"

    @property
    def needs_rationales(self) -> bool:
        return self.target == "rationale"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "omega_free": self.omega_free, "needs_rationales": self.needs_rationales}


REGISTRY: dict[str, ObjectiveSpec] = {
    spec.name: spec
    for spec in (
        ObjectiveSpec(
            name="aicd",
            label="AICD",
            summary="every shot's rationale supervised, the earlier ones weighted ω_i (the paper's Eq. 1)",
            target="rationale",
            weights="omega",
            demonstrations="rationale",
            color="#E4572E",
            line_style="-",
        ),
        ObjectiveSpec(
            name="condgen",
            label="CondGen",
            summary="only the final shot's rationale supervised, the earlier shots are context (ω = 0)",
            target="rationale",
            weights="last",
            demonstrations="rationale",
            color="#17BEBB",
            line_style="--",
        ),
        ObjectiveSpec(
            name="lm",
            label="LM",
            summary="plain language modelling: every token of the episode supervised, questions included",
            target="rationale",
            weights="all",
            demonstrations="rationale",
            color="#76B041",
            line_style=":",
        ),
        ObjectiveSpec(
            name="nocot",
            label="no-CoT",
            summary="answers instead of rationales, each shot's answer weighted ω_i; evaluated with answer-only "
            "demonstrations",
            target="answer",
            weights="omega",
            demonstrations="answer",
            color="#8D6A9F",
            line_style="-.",
        ),
    )
}
OBJECTIVE_NAMES: tuple[str, ...] = tuple(REGISTRY)
DEFAULT_OBJECTIVE = OBJECTIVE_NAMES[0]


def objective_spec(name: str) -> ObjectiveSpec:
    """The record of `name`; ValueError naming the known objectives otherwise."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVE_NAMES)}; got '{name}'")
    return spec


def objective_label(name: str | None) -> str:
    """Display label ("AICD", "no-CoT"); an unknown name is shown as given."""
    spec = REGISTRY.get(name or "")
    return spec.label if spec else str(name)


def objective_rank(name: str | None) -> int:
    """Position in the paper's order (AICD, CondGen, LM, no-CoT); unknown names last."""
    return OBJECTIVE_NAMES.index(name) if name in REGISTRY else len(OBJECTIVE_NAMES)


def demonstrations_for(objective: str | None) -> TargetKind:
    """What evaluation prompts show a student trained with `objective` (rationales unless it never saw any)."""
    spec = REGISTRY.get(objective or "")
    return spec.demonstrations if spec else "rationale"


def uses_omega(objective: str | None, schedule: str | None = "paper", weights: Any = None) -> bool:
    """Whether ω changes the loss of a run: not for an ω-free objective, nor for a schedule whose weights ignore
    it (constant: all 1; custom, or any explicit per-shot `weights` list)."""
    spec = REGISTRY.get(objective or DEFAULT_OBJECTIVE)
    omega_free = spec is None or spec.omega_free
    return not omega_free and schedule in OMEGA_SCHEDULES and weights is None


def shot_weight(objective: str, i: int, n: int, weights: Sequence[float]) -> float:
    """Loss weight of shot i's target (0-based, of n). For `all` the episode builder then weights every token."""
    rule = objective_spec(objective).weights
    if rule == "last":
        return 1.0 if i == n - 1 else 0.0
    return float(weights[i])


def shot_weights(objective: str, weights: Sequence[float]) -> list[float]:
    """The loss weight each shot's target gets under `objective` from a schedule's ω_1..ω_n (what the ω designer
    draws: CondGen weights only the last shot whatever the schedule says)."""
    return [shot_weight(objective, i, len(weights), weights) for i in range(len(weights))]


def answer_only_objectives() -> str:
    """The objectives that train without rationales, quoted for messages ("'nocot'")."""
    return " or ".join(f"'{n}'" for n, spec in REGISTRY.items() if not spec.needs_rationales)


def registry_dicts() -> list[dict[str, Any]]:
    """Every objective as JSON, in the paper's order (what `GET /objectives` serves)."""
    return [spec.to_dict() for spec in REGISTRY.values()]
