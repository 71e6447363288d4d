"""The objective registry as the UI reads it: labels, target text, per-shot weights, ω, demonstrations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from aicd.objective_registry import DEFAULT_OBJECTIVE, OMEGA_SCHEDULES, registry_dicts

router = APIRouter(prefix="/objectives", tags=["objectives"])


@router.get(
    "", summary="Every training objective and its rules, in the paper's order (aicd.objective_registry)"
)
def list_objectives() -> dict[str, Any]:
    return {
        "objectives": registry_dicts(),
        "default": DEFAULT_OBJECTIVE,
        "omega_schedules": list(OMEGA_SCHEDULES),  # the schedules whose weights are a function of ω
    }
