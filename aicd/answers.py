"""Answer extraction from generated chains and answer comparison.

A chain is read the way the paper's rationales end: the last `So, the answer is X` / `The answer is X`
(also `#### X`, `\\boxed{X}`) wins; without one, the last number (math) or the last yes/no word
(StrategyQA) is taken. Numbers are normalised so `$1,234.00` and `1234` compare equal as strings.
Only the first answer block is read: a completion that runs on into a hallucinated next shot
(`…\n\nQuestion: …`) is graded on what it said before that shot began.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

AnswerKind = str  # "number" | "yesno"

# A number as written in a rationale: optional sign glued to the digits (or to `$`), thousands
# separators, decimals, also without a leading digit (".5", not after a word or '.'). "5-3" is two
# numbers (the '-' follows a word character), "-3" is one.
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])(?P<sign>[-\u2212]))?(?:\$\s?)?(?P<sign2>-)?"
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?|(?<![\w.])(?P<frac>\.\d+))"
    r"(?:\s*/\s*(?P<den>\d+)(?!\d|\.\d))?"
)
# Where an explicit final answer is announced; the answer is read from the text after the marker.
_MARKER = re.compile(
    r"answer\s+(?:is|would\s+be|will\s+be)\b\s*:?|final\s+answer\s*:|answer\s*:|####|\\boxed\{",
    re.IGNORECASE,
)
# Where a completion starts a new shot of its own (the prompt template's `Question:` on a fresh line).
_NEXT_SHOT = re.compile(r"\n\s*(?:Question|Q)\s*:")
_YESNO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_YESNO_MAP = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}
_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
_WORD_NUMBER = re.compile(r"^\W*(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


def _format_decimal(value: Decimal) -> str:
    """`Decimal('1234.00')` -> "1234", `Decimal('2.50')` -> "2.5", `-0` -> "0"."""
    if value == value.to_integral_value():
        return str(int(value))
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _match_to_str(m: re.Match[str]) -> str | None:
    negative = bool(m.group("sign") or m.group("sign2"))
    dec = m.group("dec") or m.group("frac")
    try:
        value = Decimal((m.group("int") or "0").replace(",", "") + (dec or ""))
    except InvalidOperation:  # pragma: no cover - the regex only admits digits
        return None
    den = m.group("den")
    if den is not None and dec is None:
        if int(den) == 0:
            return None
        value = value / Decimal(den)
        value = value.quantize(Decimal("1e-6")) if value != value.to_integral_value() else value
    return _format_decimal(-value if negative else value)


def normalize_number(text: str | None) -> str | None:
    """The canonical form of the first number in `text`: `$1,234.` -> "1234", "2.50" -> "2.5", "12%" -> "12".

    Fractions (`1/2`) become decimals ("0.5"), as do decimals without a leading digit (".5" -> "0.5").
    None when there is no number.
    """
    m = _NUMBER.search(text) if text else None
    return _match_to_str(m) if m is not None else None


def _number_after_marker(tail: str) -> str | None:
    """The first number of the announcing sentence, or the result of an equation in it (`10 - 3 = 7`)."""
    clause = re.split(r"\.(?:\s|$)|\n", tail, maxsplit=1)[0]
    if "=" in clause:
        clause = clause.rsplit("=", 1)[1]
    m = _NUMBER.search(clause)
    if m is not None:
        return _match_to_str(m)
    w = _WORD_NUMBER.match(clause)
    return str(_WORDS[w.group(1).lower()]) if w else None


def _yesno_after_marker(tail: str) -> str | None:
    clause = tail.split("\n", 1)[0]
    m = _YESNO.search(clause)
    return _YESNO_MAP[m.group(1).lower()] if m else None


def first_answer_block(text: str) -> str:
    """`text` up to the first line that opens a new `Question:` (a shot the model made up), exclusive."""
    m = _NEXT_SHOT.search(text)
    return text[: m.start()] if m else text


def extract_answer(text: str | None, kind: AnswerKind = "number") -> str | None:
    """The answer a chain commits to, normalised ("1234", "2.5", "-3", "yes"/"no"), or None if it gives none.

    Only the first answer block counts (see `first_answer_block`). Within it, the last announced answer
    (`… the answer is X`) wins over any other number; without an announcement the last number
    (kind="number") or the last yes/no word (kind="yesno") is used.
    """
    if kind not in ("number", "yesno"):
        raise ValueError(f"answer kind must be 'number' or 'yesno', got '{kind}'")
    text = first_answer_block(text or "")
    if not text:
        return None
    after = _number_after_marker if kind == "number" else _yesno_after_marker
    for marker in reversed(list(_MARKER.finditer(text))):
        found = after(text[marker.end() :])
        if found is not None:
            return found
    if kind == "number":
        numbers = list(_NUMBER.finditer(text))
        return _match_to_str(numbers[-1]) if numbers else None
    words = _YESNO.findall(text)
    return _YESNO_MAP[words[-1].lower()] if words else None


def normalize_answer(answer: str | None, kind: AnswerKind = "number") -> str | None:
    """A gold or predicted answer in canonical form (numbers as `normalize_number`, yes/no lower-cased)."""
    if answer is None:
        return None
    if kind == "yesno":
        m = _YESNO.search(answer)
        return _YESNO_MAP[m.group(1).lower()] if m else None
    return normalize_number(answer)


def answers_match(pred: str | None, gold: str | None, kind: AnswerKind = "number") -> bool:
    """Whether a predicted answer equals the gold one; numbers compare with a small float tolerance.

    A missing prediction (None) is never correct.
    """
    p, g = normalize_answer(pred, kind), normalize_answer(gold, kind)
    if p is None or g is None:
        return False
    if kind == "yesno":
        return p == g
    return math.isclose(float(p), float(g), rel_tol=1e-6, abs_tol=1e-6)
