"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Subprocesses the tests start (celery, alembic, uvicorn, streamlit, aicd) come from this interpreter's
# environment even when it was not activated (CI runs `.venv/bin/python -m pytest`).
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def tiny_model_and_tokenizer():
    """A 2-layer GPT-2 with the byte-level ByT5 tokenizer: no download needed."""
    from aicd.models import load_model_and_tokenizer

    return load_model_and_tokenizer("tiny:gpt2", seed=0)
