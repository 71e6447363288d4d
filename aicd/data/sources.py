"""Parsers from the raw public formats of GSM8K, SVAMP, MultiArith and StrategyQA to `Example` records.

Each parser takes one raw record (a dict as found in the upstream file) and returns an `Example` whose
answer is normalised (numbers via `format_number`, booleans as "yes"/"no") and whose gold / teacher
rationales all end the same way, "So, the answer is N.", so that answer extraction and the student's
learned stopping behaviour do not depend on where a rationale came from. `where` names the file and
record for error messages ("SVAMP.json record 12").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from aicd.data.record import Example, Rationale, format_number
from aicd.errors import DataError

LLM_ADAPTERS_MODEL = "gpt-3.5-turbo (LLM-Adapters)"
ANSWER_ENDING = "So, the answer is {answer}."

_CALCULATOR = re.compile(r"<<[^<>]*>>")
# The last "…the answer is X" clause of a rationale, with a connective in front ("so", "Therefore,").
_ANSWER_CLAUSE = re.compile(
    r"(?:[,;]?\s*\b(?:so|thus|therefore|hence)\b,?\s*)?\bthe (?:final )?answer is\b(?!.*\bthe (?:final )?answer is\b).*$",
    re.IGNORECASE | re.DOTALL,
)
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


def field(obj: Mapping[str, Any], name: str, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """`obj[name]`, or DataError naming the record and field when it is missing or of the wrong type."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if name not in obj or obj[name] is None or obj[name] == "":
        raise DataError(f"{where}: missing field '{name}'")
    value = obj[name]
    if kind is not None and (
        not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind))
    ):
        expected = " or ".join(t.__name__ for t in _tuple(kind))
        raise DataError(f"{where}: field '{name}' should be {expected}, got {type(value).__name__}")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def normalize_number(value: Any, where: str = "answer", name: str = "answer") -> str:
    """1,080 / "$3" / 51.0 / "51" → "1080" / "3" / "51" / "51" (DataError naming the field otherwise)."""
    if isinstance(value, bool):
        raise DataError(f"{where}: field '{name}' should be a number, got a boolean")
    if isinstance(value, float) and not math.isfinite(
        value
    ):  # a JSON NaN/Infinity or an empty CSV cell read as NaN
        raise DataError(f"{where}: field '{name}' must be a finite number, got {value}")
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").removeprefix("$").rstrip(".").strip()
        if _NUMBER.match(text):
            number = float(text)
            return format_number(int(number) if number.is_integer() and "e" not in text.lower() else number)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise DataError(f"{where}: field '{name}' is not a number: {shown}")


def normalize_yesno(value: Any, where: str = "answer", name: str = "answer") -> str:
    """True / "True" / "yes" → "yes"; False / "false" / "no" → "no"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.strip().lower() in {"yes", "true", "no", "false"}:
        return "yes" if value.strip().lower() in {"yes", "true"} else "no"
    raise DataError(f"{where}: field '{name}' is not yes/no or a boolean: {value!r}")


def strip_calculator(text: str) -> str:
    """Drop GSM8K's `<<48/2=24>>` calculator annotations, keeping the visible result."""
    return _CALCULATOR.sub("", text)


def normalize_ending(text: str, answer: str) -> str:
    """Replace a final "…the answer is X." clause by "So, the answer is <answer>." (appended if absent)."""
    body = _ANSWER_CLAUSE.sub("", text.strip()).rstrip()
    body = re.sub(r"[\s,;:]+$", "", body)
    if body and body[-1] not in ".!?":
        body += "."
    ending = ANSWER_ENDING.format(answer=answer)
    return f"{body} {ending}" if body else ending


def _join_sentences(parts: list[str]) -> str:
    """One paragraph from steps/facts, so a rationale never contains the blank line that separates shots."""
    out = []
    for part in parts:
        part = " ".join(part.split())
        if not part:
            continue
        out.append(part if part[-1] in ".!?:;" else part + ".")
    return " ".join(out)


def gsm8k_example(obj: Mapping[str, Any], id: str, where: str) -> Example:
    """GSM8K: the answer follows `####`; the solution before it (calculator marks stripped) is gold."""
    question = field(obj, "question", where, str).strip()
    solution = field(obj, "answer", where, str)
    if "####" not in solution:
        raise DataError(f"{where}: field 'answer' has no '#### <number>' line")
    steps, final = solution.rsplit("####", 1)
    answer = normalize_number(final, where)
    text = _join_sentences(strip_calculator(steps).splitlines())
    rationale = Rationale(text=normalize_ending(text, answer), source="gold", meta={"origin": "gsm8k"})
    return Example(id=id, question=question, answer=answer, rationales=[rationale])


def svamp_question(obj: Mapping[str, Any], where: str) -> str:
    """SVAMP's Body and Question joined as the LLM-Adapters copy does (a period added if Body lacks one)."""
    body = field(obj, "Body", where, str).strip()
    question = field(obj, "Question", where, str).strip()
    if body and body[-1] not in ".!?":
        body += "."
    return f"{body} {question}".strip()


def svamp_example(obj: Mapping[str, Any], where: str) -> Example:
    """SVAMP: question = Body + Question, answer = Answer, id = svamp/<ID>."""
    raw_id = field(obj, "ID", where, (str, int))
    answer = normalize_number(field(obj, "Answer", where, (int, float, str)), where, "Answer")
    return Example(id=f"svamp/{raw_id}", question=svamp_question(obj, where), answer=answer)


def multiarith_example(obj: Mapping[str, Any], where: str) -> Example:
    """MultiArith: question = sQuestion (stripped), answer = lSolutions[0], id = multiarith/<iIndex>."""
    index = field(obj, "iIndex", where, int)
    question = field(obj, "sQuestion", where, str).strip()
    solutions = field(obj, "lSolutions", where, list)
    if not solutions:
        raise DataError(f"{where}: field 'lSolutions' is empty")
    answer = normalize_number(solutions[0], where, "lSolutions")
    return Example(id=f"multiarith/{index}", question=question, answer=answer)


def strategyqa_example(obj: Mapping[str, Any], where: str) -> Example:
    """StrategyQA: bool answer → yes/no; the annotated facts, joined, are the gold rationale."""
    qid = field(obj, "qid", where, str)
    question = field(obj, "question", where, str).strip()
    answer = normalize_yesno(field(obj, "answer", where, (bool, str)), where)
    facts = field(obj, "facts", where, list)
    rationales = []
    text = _join_sentences([str(f) for f in facts])
    if text:
        rationales.append(
            Rationale(text=normalize_ending(text, answer), source="gold", meta={"origin": "strategyqa facts"})
        )
    return Example(id=f"strategyqa/{qid}", question=question, answer=answer, rationales=rationales)


def llm_adapters_rationale(obj: Mapping[str, Any], answer: str, where: str) -> Rationale | None:
    """The GPT-3.5 CoT of LLM-Adapters as a teacher rationale, or None when its prediction is wrong.

    The raw text starts "\\nA: " (once with a stray question tail before it) and ends "The answer is N.";
    both are normalised so every rationale ends "So, the answer is N.".
    """
    cot = field(obj, "chain-of-thought", where, str)
    pred = field(obj, "pred", where, (int, float, str))
    try:
        if normalize_number(pred, where, "pred") != answer:
            return None
    except DataError:
        return None
    if "A:" in cot:
        cot = cot.split("A:", 1)[1]
    text = " ".join(cot.split())
    if not text:
        return None
    return Rationale(
        text=normalize_ending(text, answer),
        source="teacher",
        model=LLM_ADAPTERS_MODEL,
        meta={"origin": "AGI-Edgerunners/LLM-Adapters"},
    )
