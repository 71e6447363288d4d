"""JSONL storage of `Example` records, validated line by line and written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aicd.data.record import MAX_JSON_DEPTH, Example
from aicd.errors import DataError

MAX_LINE_DEPTH = MAX_JSON_DEPTH + 4
"""Deepest nesting of one record line: a record, its rationales list, a rationale, then its `meta`."""


def _depth_exceeds(obj: Any, limit: int) -> bool:
    """Whether `obj` nests deeper than `limit` (iterative: no recursion on hostile input)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def describe_record_error(err: ValidationError) -> str:
    """The first problem of a record, naming its field (for `file:line: …` messages)."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "record"
    if first["type"] == "missing":
        return f"missing field '{field}'"
    return f"field '{field}': {first['msg'].removeprefix('Value error, ')}"


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; DataError names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            if not line:
                continue
            too_deep = f"{path}:{lineno}: JSON nested deeper than {MAX_LINE_DEPTH} levels"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            except RecursionError:  # thousands of levels: the parser itself gives up
                raise DataError(too_deep) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            if _depth_exceeds(obj, MAX_LINE_DEPTH):
                raise DataError(too_deep)
            yield lineno, obj


def iter_examples(path: str | Path) -> Iterator[Example]:
    """Yield records; a bad line raises DataError naming the file, line and field."""
    for lineno, obj in iter_json_objects(path):
        try:
            yield Example.model_validate(obj)
        except ValidationError as exc:
            raise DataError(f"{path}:{lineno}: {describe_record_error(exc)}") from None


def read_examples(path: str | Path) -> list[Example]:
    """Read a whole file; all-or-nothing so a bad line never yields a partial dataset."""
    return list(iter_examples(path))


def write_examples(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(ex.model_dump_json(exclude_defaults=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
