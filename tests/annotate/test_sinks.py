"""The raw JSONL store: one line per record, resume keys, torn tails after a kill, one writer at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicd.annotate import AnnotationRecord, JsonlSink, read_raw
from aicd.errors import DataError


def _rec(qid: str, index: int, status: str = "ok") -> AnnotationRecord:
    return AnnotationRecord(
        question_id=qid,
        sample_index=index,
        teacher="t",
        prompt_hash="h",
        status=status,
        text="So, the answer is 1." if status == "ok" else None,
        error=None if status == "ok" else "HTTP 500: boom",
    )


def test_records_are_on_disk_as_soon_as_written(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    sink = JsonlSink(path)
    assert not path.exists()  # nothing is created before the first record
    sink.write(_rec("a", 0))
    lines = path.read_text().splitlines()  # read while the sink is still open: flushed
    assert len(lines) == 1 and json.loads(lines[0])["question_id"] == "a"
    sink.close()


def test_existing_keys_count_ok_records_and_failures_are_retried(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    with JsonlSink(path) as sink:
        sink.write(_rec("a", 0))
        sink.write_failure(_rec("a", 1, "failed"))
        sink.write_failure(_rec("b", 0, "failed"))
        sink.write(_rec("b", 0))  # retried later and succeeded
    sink = JsonlSink(path)
    assert sink.existing_keys() == {("a", 0, "t", "h"), ("b", 0, "t", "h")}
    assert [r.key for r in sink.failed_records()] == [("a", 1, "t", "h")]
    assert sorted(r.key for r in sink.existing_records()) == [("a", 0, "t", "h"), ("b", 0, "t", "h")]
    sink.close()


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    good = _rec("a", 0).model_dump_json() + "\n"
    path.write_text(good + _rec("a", 1).model_dump_json()[:40])  # killed mid-write
    sink = JsonlSink(path)
    assert sink.existing_keys() == {("a", 0, "t", "h")}
    sink.write(_rec("a", 1))
    sink.close()
    assert [r.key for r in read_raw(path)] == [("a", 0, "t", "h"), ("a", 1, "t", "h")]
    assert path.read_text().count("\n") == 2


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text(_rec("a", 0).model_dump_json())  # killed between the record and its newline
    with JsonlSink(path) as sink:
        assert sink.existing_keys() == {("a", 0, "t", "h")}
        sink.write(_rec("a", 1))
    assert len(read_raw(path)) == 2


def test_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text(_rec("a", 0).model_dump_json() + "\n{oops\n" + _rec("a", 1).model_dump_json() + "\n")
    with pytest.raises(DataError, match=r"raw.jsonl:2"):
        JsonlSink(path).existing_keys()


def test_two_writers_on_one_store_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    first = JsonlSink(path)
    first.write(_rec("a", 0))
    second = JsonlSink(path)
    with pytest.raises(DataError, match="another annotate run"):
        second.existing_keys()
    first.close()
    assert JsonlSink(path).existing_keys() == {("a", 0, "t", "h")}


def test_overwrite_replaces_the_old_store_only_when_a_new_record_arrives(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    with JsonlSink(path) as sink:
        sink.write(_rec("old", 0))
    before = path.read_text()
    sink = JsonlSink(path, overwrite=True)
    assert sink.existing_keys() == set()
    assert path.read_text() == before  # a run that fails before its first answer keeps the old store
    sink.write(_rec("new", 0))
    sink.close()
    assert [r.question_id for r in read_raw(path)] == ["new"]
