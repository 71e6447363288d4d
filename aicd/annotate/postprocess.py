"""Turn raw rationale samples into training rationales: drop hint mentions, keep correct ones, one ending form.

Every step is counted so the user sees how much each filter removed. The answer is read with the evaluation's
own extractor (`aicd.answers`), so "correct" means the same thing in training data and in evaluation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from aicd.annotate.config import AnnotateConfig
from aicd.annotate.records import AnnotationRecord
from aicd.answers import answers_match, extract_answer, first_answer_block, normalize_answer
from aicd.data.record import Example, Rationale

_GIVEN = r"(?:given|provided|supplied|stated|suggested|expected)"
HINT_RE = re.compile(
    "|".join(
        [
            r"\bhint(?:s|ed)?\b",  # "the hint says…", "as hinted"
            rf"\b{_GIVEN}\s+(?:final\s+)?answer\b",  # "the given answer is 1234"
            rf"\banswer\b[^.\n]{{0,30}}?\b{_GIVEN}\b(?!\s+(?:that|by|the|a|an)\b)",  # "the answer we are given"
            r"\b(?:told|informed)\b[^.\n]{0,30}?\banswer\b",  # "we are told the answer…"
            r"\banswer\s+(?:should|must)\s+be\b",  # the prompt's own words: "The answer should be X"
            r"\bas\s+(?:stated|given|provided|told)\b[^.\n]{0,40}?\banswer\b",  # "as stated, the answer is"
            r"\banswer\b[^.\n]{0,40}?\bas\s+(?:stated|given|provided|told)\b",  # "the answer is 9, as stated"
        ]
    ),
    re.IGNORECASE,
)
"""A rationale that talks about the hint, or paraphrases it ("the given answer is…", "we are told the answer
should be…"), teaches the student to expect one. Words like "given" count only next to "answer": "we are given
that John has 5 apples" restates the question, not the hint."""

_ANNOUNCEMENT = re.compile(r"answer\s+is\b|final\s+answer\s*:|####|\\boxed\{", re.IGNORECASE)
"""Where a chain commits to a final answer (not "the answer would be", which may be a hypothesis)."""

_ANSWER_MARKER = re.compile(
    r"answer\s+(?:is|would\s+be|will\s+be)\b|final\s+answer\s*:|answer\s*:|####|\\boxed\{", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


class FilterStats(BaseModel):
    """How many raw samples each step saw and removed."""

    total: int = 0
    truncated: int = 0  # finish_reason == "length": the rationale was cut off
    hint_mention: int = 0
    contradiction: int = 0  # chains that announce two different final answers
    no_answer: int = 0
    wrong_answer: int = 0
    kept: int = 0
    normalized: int = 0  # kept rationales whose ending was rewritten
    examples: int = 0
    examples_with_rationale: int = 0


def mentions_hint(text: str) -> bool:
    return HINT_RE.search(text) is not None


def announced_answers(text: str, kind: str) -> list[str]:
    """Every final answer the chain announces ("the answer is X", "#### X", "\\boxed{X}"), in order."""
    text = first_answer_block(text)
    starts = [m.start() for m in _ANNOUNCEMENT.finditer(text)]
    found = []
    for start, end in zip(starts, [*starts[1:], len(text)][: len(starts)], strict=True):
        answer = extract_answer(text[start:end], kind)
        if answer is not None:
            found.append(answer)
    return found


def contradicts_itself(text: str, kind: str) -> bool:
    """Whether the chain announces two different final answers ("The answer is 72. … the answer is 1234.")."""
    answers = announced_answers(text, kind)
    return any(not answers_match(a, answers[0], kind) for a in answers[1:])


def normalize_ending(text: str, answer: str) -> str:
    """End the rationale with exactly `So, the answer is {answer}.`

    The sentence holding the last answer statement ("The answer is X", "#### X", "\\boxed{X}") and anything
    after it is replaced; a rationale without one keeps its text and gets the sentence appended.
    """
    body = text.strip()
    markers = list(_ANSWER_MARKER.finditer(body))
    if markers:
        cut = markers[-1].start()
        boundaries = [m.end() for m in _SENTENCE_END.finditer(body, 0, cut)]
        body = body[: boundaries[-1]] if boundaries else ""
    body = body.rstrip()
    ending = f"So, the answer is {answer}."
    if not body:
        return ending
    if body[-1] not in ".!?:":
        body += "."
    return f"{body} {ending}"


def infer_answer_kind(examples: Iterable[Example]) -> str:
    """yes/no when every gold answer is yes or no, else number (used when answer_kind is "auto")."""
    answers = [ex.answer.strip().lower() for ex in examples]
    return "yesno" if answers and all(a in ("yes", "no") for a in answers) else "number"


def postprocess(
    examples: list[Example], records: Iterable[AnnotationRecord], config: AnnotateConfig, kind: str
) -> tuple[list[Example], FilterStats]:
    """Examples carrying their kept rationales (of this writer and prompt), and the per-step counts."""
    stats = FilterStats()
    by_question: dict[str, dict[int, AnnotationRecord]] = defaultdict(dict)
    for rec in records:
        if rec.status != "ok" or rec.teacher != config.writer or rec.prompt_hash != config.prompt_hash:
            continue
        by_question[rec.question_id].setdefault(rec.sample_index, rec)
    out: list[Example] = []
    for ex in examples:
        stats.examples += 1
        kept: list[Rationale] = []
        for index in sorted(by_question.get(ex.id, {})):
            rec = by_question[ex.id][index]
            stats.total += 1
            text = (rec.text or "").strip()
            if config.drop_truncated and rec.finish_reason == "length":
                stats.truncated += 1
                continue
            if config.drop_hint_mentions and mentions_hint(text):
                stats.hint_mention += 1
                continue
            if config.drop_contradictions and contradicts_itself(text, kind):
                stats.contradiction += 1
                continue
            predicted = extract_answer(text, kind)
            if predicted is None:
                if config.filter_correct:
                    stats.no_answer += 1
                    continue
                # not filtering on the answer: kept as written (there is no answer to end it with)
            elif config.filter_correct and not answers_match(predicted, ex.answer, kind):
                stats.wrong_answer += 1
                continue
            if config.normalize_ending and predicted is not None:
                correct = answers_match(predicted, ex.answer, kind)
                final = (normalize_answer(ex.answer, kind) or ex.answer) if correct else predicted
                new_text = normalize_ending(text, final)
                if new_text != text:
                    stats.normalized += 1
                text = new_text
            stats.kept += 1
            meta = {"sample_index": rec.sample_index, "prompt_hash": rec.prompt_hash}
            if rec.finish_reason:
                meta["finish_reason"] = rec.finish_reason
            kept.append(Rationale(text=text, source=rec.source, model=rec.teacher, meta=meta))
        if kept:
            stats.examples_with_rationale += 1
        if kept or config.keep_empty:
            out.append(ex.model_copy(update={"rationales": kept}))
    return out, stats
