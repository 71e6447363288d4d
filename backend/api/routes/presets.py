"""Launch presets (aicd.presets) as the UI's Launch page reads them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from aicd.presets import DEFAULT_PRESET, preset_dicts

router = APIRouter(prefix="/presets", tags=["presets"])


@router.get("", summary="Launch presets (smoke test, tiny-scale study, paper): training and evaluation sizes")
def list_presets() -> dict[str, Any]:
    return {"presets": preset_dicts(), "default": DEFAULT_PRESET}
