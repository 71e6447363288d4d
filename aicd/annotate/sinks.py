"""Where records go as they arrive: the `RationaleSink` protocol, a JSONL file sink and a callback sink.

The CLI uses `JsonlSink` (append + flush per record, so a crash or SIGKILL loses at most the line being
written); the worker passes a DB-backed sink with the same three methods.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from pydantic import ValidationError

from aicd.annotate.records import AnnotationRecord, RecordKey
from aicd.errors import DataError


@runtime_checkable
class RationaleSink(Protocol):
    """Stores records as they arrive. `existing_keys` are the keys already stored with status "ok": annotate()
    never asks for those again. Failed records are stored too, and asked for again on the next run.

    A sink may also offer `existing_records() -> Iterable[AnnotationRecord]` (ok records already stored) so that
    post-processing covers earlier runs as well; without it only this run's records are post-processed.
    """

    def existing_keys(self) -> set[RecordKey]: ...

    def write(self, record: AnnotationRecord) -> None: ...

    def write_failure(self, record: AnnotationRecord) -> None: ...


class CallbackSink:
    """A sink made of callables, e.g. for the worker or tests."""

    def __init__(
        self,
        on_record: Callable[[AnnotationRecord], None],
        on_failure: Callable[[AnnotationRecord], None] | None = None,
        existing: Iterable[AnnotationRecord] = (),
    ):
        self._on_record = on_record
        self._on_failure = on_failure
        self._existing = [r for r in existing if r.status == "ok"]

    def existing_keys(self) -> set[RecordKey]:
        return {r.key for r in self._existing}

    def existing_records(self) -> list[AnnotationRecord]:
        return list(self._existing)

    def write(self, record: AnnotationRecord) -> None:
        self._on_record(record)

    def write_failure(self, record: AnnotationRecord) -> None:
        if self._on_failure is not None:
            self._on_failure(record)


class MemorySink:
    """Keeps records in lists; handy for library use and tests."""

    def __init__(self) -> None:
        self.records: list[AnnotationRecord] = []
        self.failures: list[AnnotationRecord] = []

    def existing_keys(self) -> set[RecordKey]:
        return {r.key for r in self.records}

    def existing_records(self) -> list[AnnotationRecord]:
        return list(self.records)

    def write(self, record: AnnotationRecord) -> None:
        self.records.append(record)

    def write_failure(self, record: AnnotationRecord) -> None:
        self.failures.append(record)


def read_raw(path: str | Path, *, repair: bool = False) -> list[AnnotationRecord]:
    """All records of a raw JSONL store, in file order.

    A torn last line (the process was killed mid-write) is ignored, and with `repair=True` cut off so later
    appends start on a fresh line. A bad line elsewhere raises DataError naming file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    records: list[AnnotationRecord] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        is_tail = lineno == len(lines)  # no newline after it: possibly torn
        try:
            records.append(AnnotationRecord.model_validate(json.loads(raw)))
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            if is_tail:
                if repair:
                    with path.open("r+b") as fh:
                        fh.truncate(len(data) - len(raw))
                break
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "record"
                raise DataError(f"{path}:{lineno}: field '{field}': {first['msg']}") from None
            raise DataError(f"{path}:{lineno}: invalid JSON record") from None
        else:
            if is_tail and repair:
                with path.open("ab") as fh:
                    fh.write(b"\n")
    return records


def latest_by_key(records: Iterable[AnnotationRecord]) -> dict[RecordKey, AnnotationRecord]:
    """The record that counts for each key: an ok record wins over failures; otherwise the last failure."""
    out: dict[RecordKey, AnnotationRecord] = {}
    for rec in records:
        prev = out.get(rec.key)
        if prev is None or prev.status != "ok":
            out[rec.key] = rec
    return out


class JsonlSink:
    """Append-only JSONL store of records: one line per record, flushed (optionally fsynced) at once.

    The file is opened lazily on the first write, so a run that fails before any answer leaves no file behind,
    and it is locked while open, so two runs cannot append to the same store.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.overwrite = overwrite  # start over, but only replace the old file when the first record arrives
        self._fh: IO[str] | None = None
        self._existing: list[AnnotationRecord] | None = None

    def _load(self) -> list[AnnotationRecord]:
        if self._existing is None:
            if self.overwrite:
                self._existing = []
                return self._existing
            if self.path.exists():
                self._open()  # lock before reading, so a second run fails before it asks for anything
            self._existing = read_raw(self.path, repair=True)
        return self._existing

    def existing_keys(self) -> set[RecordKey]:
        return {k for k, r in latest_by_key(self._load()).items() if r.status == "ok"}

    def existing_records(self) -> list[AnnotationRecord]:
        return [r for r in latest_by_key(self._load()).values() if r.status == "ok"]

    def failed_records(self) -> list[AnnotationRecord]:
        """Keys whose latest state is a failure (nothing ok stored for them)."""
        return [r for r in latest_by_key(self._load()).values() if r.status == "failed"]

    def _open(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a", encoding="utf-8")  # truncated below, once locked, when overwriting
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise DataError(f"{self.path}: another annotate run is writing this file") from None
            if self.overwrite:
                fh.truncate(0)
            self._fh = fh
        return self._fh

    def _append(self, record: AnnotationRecord) -> None:
        existing = self._load()
        fh = self._open()
        fh.write(record.model_dump_json() + "\n")
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())
        existing.append(record)

    def write(self, record: AnnotationRecord) -> None:
        self._append(record)

    def write_failure(self, record: AnnotationRecord) -> None:
        self._append(record)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
