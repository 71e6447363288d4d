"""Sources without a teacher: the dataset's gold rationales and a local model rationalising with the hint."""

from __future__ import annotations

from typing import Any

import pytest

from aicd.annotate import AnnotateConfig, MemorySink, annotate
from aicd.data.record import Example, Rationale
from aicd.errors import DataError
from tests.annotate.conftest import make_examples


def test_gold_source_keeps_dataset_rationales_and_skips_missing_ones() -> None:
    examples = make_examples(4, gold=True) + [Example(id="bare", question="What is 1 plus 1?", answer="2")]
    sink = MemorySink()
    report = annotate(AnnotateConfig(source="gold", k=3), examples, sink)
    assert report.ok == 4 and report.wanted == 4 and report.requests == 0
    assert {r.teacher for r in sink.records} == {"gold"} and {r.sample_index for r in sink.records} == {0}
    assert [ex.id for ex in report.examples] == ["q0000", "q0001", "q0002", "q0003"]
    assert report.no_gold == 1 and "1 question skipped: no gold rationale" in report.summary()
    assert all(
        r.source == "gold" and r.text.endswith(f"So, the answer is {ex.answer}.")
        for ex in report.examples
        for r in ex.rationales
    )


def test_self_source_samples_k_with_the_hint_and_resumes() -> None:
    examples = make_examples(3)
    config = AnnotateConfig(
        source="self",
        model="tiny:gpt2",
        k=2,
        temperature=1.0,
        max_tokens=12,
        batch_size=4,
        filter_correct=False,
        normalize_ending=False,
        keep_empty=True,
    )
    sink = MemorySink()
    report = annotate(config, examples, sink)
    assert report.ok + report.failed == 6
    assert {(r.question_id, r.sample_index) for r in sink.records + sink.failures} == {
        (ex.id, i) for ex in examples for i in range(2)
    }
    assert all(
        r.source == "self" and r.teacher == "tiny:gpt2" and r.usage.prompt_tokens > 0 for r in sink.records
    )
    assert all(0 < r.usage.completion_tokens <= 12 for r in sink.records)
    # the two samples of a question differ (sampling at temperature 1, not greedy)
    texts = {(r.question_id, r.sample_index): r.text for r in sink.records}
    assert any(texts.get((ex.id, 0)) != texts.get((ex.id, 1)) for ex in examples)
    again = annotate(config, examples, sink)
    assert again.wanted == report.failed and again.already_stored == report.ok


def test_gold_source_never_stores_teacher_rationales_as_gold() -> None:
    """SVAMP/MultiArith ship teacher-written rationales (source="teacher"): they are not the dataset's gold."""
    teacher_written = Rationale(text="2 + 3 = 5. The answer is 5.", source="teacher", model="gpt-3.5-turbo")
    examples = make_examples(2, gold=True) + [
        Example(id="svamp1", question="What is 2 plus 3?", answer="5", rationales=[teacher_written]),
        Example(
            id="mixed",
            question="What is 1 plus 1?",
            answer="2",
            rationales=[
                teacher_written.model_copy(update={"text": "1 + 1 = 2."}),
                Rationale(text="1+1=2.", source="gold"),
            ],
        ),
    ]
    sink = MemorySink()
    report = annotate(AnnotateConfig(source="gold", k=2), examples, sink)
    assert sorted((r.question_id, r.sample_index, r.text) for r in sink.records) == [
        ("mixed", 0, "1+1=2."),
        ("q0000", 0, "0 + 0 = 0.\n#### 0"),
        ("q0001", 0, "1 + 1 = 2.\n#### 2"),
    ]
    assert report.ok == 3 and report.no_gold == 1 and report.failed == 0


def test_gold_source_on_a_dataset_without_gold_rationales_says_so() -> None:
    teacher_written = Rationale(text="2 + 3 = 5. The answer is 5.", source="teacher")
    examples = [
        Example(id=f"s{i}", question="What is 2 plus 3?", answer="5", rationales=[teacher_written])
        for i in range(3)
    ]
    sink = MemorySink()
    with pytest.raises(DataError, match=r"none of the 3 questions has a gold rationale \(.*source=teacher\)"):
        annotate(AnnotateConfig(source="gold"), examples, sink)
    with pytest.raises(
        DataError, match="none of the 1 questions has a gold rationale; annotate with a teacher"
    ):
        annotate(AnnotateConfig(source="gold"), [Example(id="bare", question="1 plus 1?", answer="2")], sink)
    assert not sink.records and not sink.failures


def test_self_source_keeps_the_correct_rationalisation_and_drops_the_wrong_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local model's generation is replaced: sample 0 of each question reaches the gold answer, sample 1
    does not. What the self source does with them (prompting with the hint, filtering, normalising) is real."""
    import aicd.annotate.selfgen as selfgen
    import aicd.models

    seen: list[str] = []

    def fake_sample(
        model: Any, tokenizer: Any, prompts: list[str], **kw: Any
    ) -> list[tuple[str, str, int, int]]:
        assert kw["temperature"] == 0.7 and kw["max_new_tokens"] == 40
        out = []
        for prompt in prompts:
            seen.append(prompt)
            answer = prompt.split("The answer should be ")[1].split(".")[0]
            if (len(seen) - 1) % 2 == 0:  # sample 0: right
                text = f"We add the two numbers and get {answer}. The answer is {answer}"
            else:  # sample 1: wrong
                text = f"We add the two numbers and get {int(answer) + 1}. The answer is {int(answer) + 1}."
            out.append((text, "stop", len(prompt) // 4, 12))
        return out

    monkeypatch.setattr(aicd.models, "load_model_and_tokenizer", lambda name, seed=0: (object(), object()))
    monkeypatch.setattr(selfgen, "sample_continuations", fake_sample)
    examples = make_examples(3)
    config = AnnotateConfig(
        source="self", model="tiny:gpt2", k=2, temperature=0.7, max_tokens=40, batch_size=4
    )
    sink = MemorySink()
    report = annotate(config, examples, sink)

    assert len(seen) == 6 and all("The answer should be" in p for p in seen)
    assert seen[::2] == [config.render(ex.question, ex.answer) for ex in examples]
    assert report.ok == 6 and len(sink.records) == 6 and {r.source for r in sink.records} == {"self"}
    f = report.filters
    assert (f.total, f.wrong_answer, f.kept, f.normalized) == (6, 3, 3, 3)
    assert [ex.id for ex in report.examples] == [ex.id for ex in examples]
    for ex in report.examples:
        assert [r.text for r in ex.rationales] == [
            f"We add the two numbers and get {ex.answer}. So, the answer is {ex.answer}."
        ]
        assert ex.rationales[0].meta["sample_index"] == 0 and ex.rationales[0].source == "self"
