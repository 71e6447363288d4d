"""Turn an uploaded JSONL/CSV with arbitrary field names into Example records (id, question, answer, rationales).

The UI maps fields and previews here; the server validates the resulting JSONL again before storing anything.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd

NONE = "(none)"
ROWNUM = "(row number)"


def read_table(name: str, data: bytes) -> pd.DataFrame:
    """CSV (by extension) or JSON Lines into a table of strings; ValueError says what is wrong and where."""
    if not data.strip():
        raise ValueError("the file is empty")
    if name.lower().endswith(".csv"):
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    records = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"line {lineno}: expected a JSON object")
        records.append(obj)
    if not records:
        raise ValueError("the file has no records")
    return pd.DataFrame(records)


def guess(columns: list[str], *names: str) -> int:
    """Index of the first column named like one of `names` (case-insensitive), else 0."""
    for name in names:
        for i, col in enumerate(columns):
            if col.lower() == name:
                return i
    return 0


def _text(value: Any) -> str:
    """A cell as text; missing cells (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def to_records(df: pd.DataFrame, mapping: dict[str, str], source: str, writer: str) -> list[dict[str, Any]]:
    """Records in the Example JSONL shape; a ValueError names the first row with an empty question or answer."""
    out = []
    for i, row in enumerate(df.to_dict("records")):
        rec_id = str(i + 1) if mapping["id"] == ROWNUM else _text(row[mapping["id"]])
        if not rec_id:
            raise ValueError(f"row {i + 1}: empty id")
        question, answer = _text(row[mapping["question"]]), _text(row[mapping["answer"]])
        if not question or not answer:
            raise ValueError(f"row {i + 1}: empty {'question' if not question else 'answer'}")
        rationales = []
        col = mapping["rationale"]
        if col != NONE:
            value = row[col]
            if isinstance(value, list):  # already Example-style rationales
                for r in value:
                    rationales.append(r if isinstance(r, dict) else {"text": str(r), "source": source})
            elif _text(value):
                rationales.append({"text": _text(value), "source": source, "model": writer or None})
        out.append({"id": rec_id, "question": question, "answer": answer, "rationales": rationales})
    return out
