"""Example JSONL I/O: round trip, bad input names file:line and field, writes are all-or-nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicd.data.jsonl import iter_examples, read_examples, write_examples
from aicd.data.record import Example, Rationale
from aicd.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "data"
GOOD = {"id": "a", "question": "What is 2 + 3?", "answer": "5"}


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines))
    return path


def test_round_trip_keeps_every_field(tmp_path):
    examples = [
        Example(
            id="q1",
            question="Is ice cold?",
            answer=True,
            rationales=[Rationale(text="Ice is frozen water. So, the answer is yes.", source="gold")],
        ),
        Example(
            id="q2",
            question="10 / 4?",
            answer=2.5,
            rationales=[
                Rationale(
                    text="10 / 4 = 2.5. So, the answer is 2.5.",
                    source="teacher",
                    model="m",
                    meta={"sample": 1, "temperature": 0.7},
                )
            ],
        ),
    ]
    path = write_examples(tmp_path / "sub" / "out.jsonl", examples)
    loaded = read_examples(path)
    assert [e.model_dump() for e in loaded] == [e.model_dump() for e in examples]
    assert loaded[0].answer == "yes" and loaded[1].answer == "2.5"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_fixture_file_and_blank_lines(tmp_path):
    assert [e.id for e in read_examples(FIXTURES / "examples.jsonl")] == ["ex-1", "ex-2"]
    path = _write(tmp_path / "blank.jsonl", ["", json.dumps(GOOD), "   ", json.dumps({**GOOD, "id": "b"})])
    assert [e.id for e in read_examples(path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "b", "question": ', r":2: invalid JSON"),
        (json.dumps({"id": "b", "answer": "1"}), r":2: missing field 'question'"),
        (json.dumps({"id": "b", "question": "q"}), r":2: missing field 'answer'"),
        (json.dumps({**GOOD, "id": "b", "answer": ["1"]}), r":2: field 'answer'"),
        (json.dumps({**GOOD, "id": "b", "rationales": "text"}), r":2: field 'rationales'"),
        (
            json.dumps({**GOOD, "id": "b", "rationales": [{"text": "t", "source": "oracle"}]}),
            r":2: field 'rationales\.0\.source'",
        ),
        (json.dumps({**GOOD, "id": "b", "question": ""}), r":2: field 'question'"),
        (json.dumps({**GOOD, "id": "b", "extra": 1}), r":2: field 'extra'"),
        ("[1, 2]", r":2: expected a JSON object"),
        (b'{"id": "b", "question": "caf\xe9?", "answer": "1"}', r":2: not valid UTF-8"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, bad_line, message):
    path = _write(tmp_path / "bad.jsonl", [json.dumps(GOOD), bad_line, json.dumps({**GOOD, "id": "c"})])
    with pytest.raises(DataError, match=r"bad\.jsonl" + message):
        read_examples(path)
    seen = []
    with pytest.raises(DataError):
        for ex in iter_examples(path):
            seen.append(ex.id)
    assert seen == ["a"]  # streaming stops at the bad line


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "absent.jsonl")


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = write_examples(tmp_path / "out.jsonl", [Example(**GOOD)])
    before = path.read_bytes()

    def broken():
        yield Example(**{**GOOD, "id": "new"})
        raise DataError("source broke halfway")

    with pytest.raises(DataError, match="halfway"):
        write_examples(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]

    with pytest.raises(DataError):
        write_examples(tmp_path / "fresh.jsonl", broken())
    assert not (tmp_path / "fresh.jsonl").exists()
