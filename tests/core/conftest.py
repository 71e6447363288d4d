"""Fixtures of the core tests."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def aicd_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """Run `aicd ARGS...` in this process (as the console script does) and return its exit code."""
    from aicd.cli import main

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["aicd", *args])
        try:
            main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run
