"""Post-processing: hint mentions dropped, wrong answers dropped with the evaluation extractor, one ending form."""

from __future__ import annotations

import pytest

from aicd.annotate import AnnotateConfig, AnnotationRecord, normalize_ending, postprocess
from aicd.annotate.postprocess import mentions_hint
from aicd.answers import extract_answer
from aicd.data.record import Example


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("3 + 4 = 7. The answer is 7.", "7", "3 + 4 = 7. So, the answer is 7."),
        ("3 + 4 = 7. So the answer is 7", "7", "3 + 4 = 7. So, the answer is 7."),
        ("3 + 4 = 7\n#### 7", "7", "3 + 4 = 7. So, the answer is 7."),
        (
            "It costs $3.50 each. Therefore, the answer is 7. Hope this helps!",
            "7",
            "It costs $3.50 each. So, the answer is 7.",
        ),
        ("3 + 4 = 7.", "7", "3 + 4 = 7. So, the answer is 7."),
        ("The answer is 7.", "7", "So, the answer is 7."),
        ("Birds can fly. Thus, the final answer: yes", "yes", "Birds can fly. So, the answer is yes."),
    ],
)
def test_normalize_ending_gives_one_form(text: str, answer: str, expected: str) -> None:
    assert normalize_ending(text, answer) == expected


def test_normalized_rationale_still_extracts_the_same_answer() -> None:
    for text in ("x = 12, y = 3. The answer is 15", "Add 10 and 5 to get 15.\n#### 15", "10 + 5 = 15"):
        assert extract_answer(normalize_ending(text, "15"), "number") == "15"


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("As the hint says, the answer is 5.", True),
        ("The Hint tells us 5.", True),
        ("We were hinted that it is 5.", True),
        ("Using the hints given, 5.", True),
        ("Chintz curtains cost 5.", False),
        ("So, the answer is 5.", False),
        # paraphrases of the prompt's "Hint: The answer should be X" (issue 11 #9)
        ("The given answer is 1234, so 1000 + 234 = 1234.", True),
        ("We are told the answer should be 1234.", True),
        ("The answer should be 1234 because 1000 + 234 = 1234.", True),
        ("The answer provided is 1234.", True),
        ("The answer we were given is 1234.", True),
        ("As stated, the answer is 1234.", True),
        ("The answer is 1234, as stated.", True),
        ("Using the expected answer of 1234, we work backwards.", True),
        # the same words restating the question are not the hint
        ("We are given that John has 5 apples. 5 + 3 = 8. So, the answer is 8.", False),
        ("Given that each box holds 4, 3 boxes hold 12. The answer is 12.", False),
        ("He provided 5 apples to Mary, so she has 5. The answer is 5.", False),
        ("Tom told Ann he had 3 cats. So, the answer is 3.", False),
        ("The answer, given the numbers, is 7.", False),
    ],
)
def test_hint_mentions(text: str, hit: bool) -> None:
    assert mentions_hint(text) is hit


def _rec(qid: str, index: int, text: str, **kw) -> AnnotationRecord:
    cfg = AnnotateConfig(teacher="t")
    return AnnotationRecord(
        question_id=qid,
        sample_index=index,
        teacher="t",
        prompt_hash=cfg.prompt_hash,
        text=text,
        finish_reason=kw.pop("finish_reason", "stop"),
        **kw,
    )


def test_postprocess_counts_every_step_and_keeps_sample_order() -> None:
    examples = [Example(id="a", question="2+3?", answer="5"), Example(id="b", question="1+1?", answer="2")]
    records = [
        _rec("a", 2, "2 + 3 = 5. The answer is 5."),
        _rec("a", 0, "2 + 3 = 5. #### 5"),
        _rec("a", 1, "The hint says 5, so the answer is 5."),
        _rec("b", 0, "1 + 1 = 3. The answer is 3."),
        _rec("b", 1, "I am not sure."),
        _rec("b", 2, "1 + 1 = 2. The answer is", finish_reason="length"),
        _rec("b", 3, "failed", status="failed"),
        AnnotationRecord(
            question_id="a", sample_index=5, teacher="other", prompt_hash="x", text="The answer is 5."
        ),
    ]
    cfg = AnnotateConfig(teacher="t")
    out, stats = postprocess(examples, records, cfg, "number")
    assert [ex.id for ex in out] == ["a"]
    assert [r.text for r in out[0].rationales] == ["2 + 3 = 5. So, the answer is 5."] * 2
    assert [r.meta["sample_index"] for r in out[0].rationales] == [0, 2]
    assert all(r.source == "teacher" and r.model == "t" for r in out[0].rationales)
    assert stats.model_dump() == {
        "total": 6,
        "truncated": 1,
        "hint_mention": 1,
        "contradiction": 0,
        "no_answer": 1,
        "wrong_answer": 1,
        "kept": 2,
        "normalized": 2,
        "examples": 2,
        "examples_with_rationale": 1,
    }


def test_filters_can_be_switched_off() -> None:
    examples = [Example(id="b", question="1+1?", answer="2")]
    records = [
        _rec("b", 0, "1 + 1 = 3. The answer is 3."),
        _rec("b", 1, "As the hint says, the answer is 2."),
    ]
    cfg = AnnotateConfig(
        teacher="t", filter_correct=False, drop_hint_mentions=False, normalize_ending=False, keep_empty=True
    )
    out, stats = postprocess(examples, records, cfg, "number")
    assert [r.text for r in out[0].rationales] == [r.text for r in records]
    assert stats.kept == 2 and stats.wrong_answer == 0 and stats.hint_mention == 0


def test_yesno_answers_use_the_yesno_extractor() -> None:
    examples = [Example(id="s", question="Can a fish climb?", answer="no")]
    records = [
        _rec("s", 0, "Fish have no legs. So the answer is no."),
        _rec("s", 1, "Yes, they can. Answer: yes"),
    ]
    out, stats = postprocess(examples, records, AnnotateConfig(teacher="t"), "yesno")
    assert [r.text for r in out[0].rationales] == ["Fish have no legs. So, the answer is no."]
    assert stats.wrong_answer == 1


def test_without_the_answer_filter_a_rationale_with_no_answer_is_kept_as_written() -> None:
    examples = [Example(id="b", question="1+1?", answer="2")]
    records = [
        _rec("b", 0, "One and one make a pair."),  # no answer to extract
        _rec("b", 1, "1 + 1 = 3. The answer is 3."),
    ]
    cfg = AnnotateConfig(teacher="t", filter_correct=False)  # normalize_ending stays on
    out, stats = postprocess(examples, records, cfg, "number")
    assert [r.text for r in out[0].rationales] == [
        "One and one make a pair.",
        "1 + 1 = 3. So, the answer is 3.",
    ]
    assert stats.kept == 2 and stats.no_answer == 0 and stats.normalized == 1


@pytest.mark.parametrize(
    ("text", "kind", "hit"),
    [
        ("The answer is 72. Then again, 1000 + 234 = 1234, so the answer is 1234.", "number", True),
        ("#### 72\nSo, the answer is 1234.", "number", True),
        ("The answer is yes. Actually the answer is no.", "yesno", True),
        ("The answer is 72. #### 72", "number", False),
        ("The answer is $1,234.00. So, the answer is 1234.", "number", False),
        ("3 + 4 = 7. If it were 8 the answer would be 9. The answer is 7.", "number", False),
        ("3 + 4 = 7.", "number", False),
    ],
)
def test_chains_announcing_two_different_answers(text: str, kind: str, hit: bool) -> None:
    from aicd.annotate.postprocess import contradicts_itself

    assert contradicts_itself(text, kind) is hit


def test_postprocess_drops_paraphrased_hints_and_self_contradicting_chains() -> None:
    examples = [Example(id="a", question="1000 + 234?", answer="1234")]
    records = [
        _rec("a", 0, "The given answer is 1234. 1000 + 234 = 1234. The answer is 1234."),
        _rec("a", 1, "We are told the answer should be 1234. So, the answer is 1234."),
        _rec("a", 2, "The answer is 72. 1000 + 234 = 1234. So, the answer is 1234."),
        _rec("a", 3, "1000 + 234 = 1234. So, the answer is 1234."),
    ]
    out, stats = postprocess(examples, records, AnnotateConfig(teacher="t"), "number")
    assert [r.meta["sample_index"] for r in out[0].rationales] == [3]
    assert (stats.hint_mention, stats.contradiction, stats.kept) == (2, 1, 1)
    kept_all, stats = postprocess(
        examples,
        records,
        AnnotateConfig(teacher="t", drop_hint_mentions=False, drop_contradictions=False),
        "number",
    )
    assert stats.kept == 4
