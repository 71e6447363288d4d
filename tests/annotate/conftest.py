"""Fixtures for annotate tests: a real fake-teacher HTTP server and small datasets written to tmp files."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicd.data import write_examples
from aicd.data.record import Example, Rationale
from tests.support.fake_teacher import start_fake_teacher


def make_examples(n: int, *, gold: bool = False) -> list[Example]:
    """Arithmetic questions with unique ids; `gold` attaches a dataset-style rationale."""
    out = []
    for i in range(n):
        rationales = [Rationale(text=f"{i} + {i} = {2 * i}.\n#### {2 * i}", source="gold")] if gold else []
        out.append(
            Example(
                id=f"q{i:04d}",
                question=f"Item {i}: what is {i} plus {i}?",
                answer=str(2 * i),
                rationales=rationales,
            )
        )
    return out


@pytest.fixture
def teacher():
    """(base_url, handle) of a fresh fake teacher; options can be changed through handle.options."""
    base_url, handle = start_fake_teacher()
    try:
        yield base_url, handle
    finally:
        handle.close()


@pytest.fixture
def dataset_file(tmp_path: Path):
    def write(n: int, *, gold: bool = False) -> Path:
        path = tmp_path / f"ds-{n}.jsonl"
        write_examples(path, make_examples(n, gold=gold))
        return path

    return write
