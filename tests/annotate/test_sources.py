"""Sources without a teacher: the dataset's gold rationales and a local model rationalising with the hint."""

from __future__ import annotations

from aicd.annotate import AnnotateConfig, MemorySink, annotate
from aicd.data.record import Example
from tests.annotate.conftest import make_examples


def test_gold_source_keeps_dataset_rationales_and_skips_missing_ones() -> None:
    examples = make_examples(4, gold=True) + [Example(id="bare", question="What is 1 plus 1?", answer="2")]
    sink = MemorySink()
    report = annotate(AnnotateConfig(source="gold", k=3), examples, sink)
    assert report.ok == 4 and report.wanted == 4 and report.requests == 0
    assert {r.teacher for r in sink.records} == {"gold"} and {r.sample_index for r in sink.records} == {0}
    assert [ex.id for ex in report.examples] == ["q0000", "q0001", "q0002", "q0003"]
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


def test_self_source_filters_keep_only_correct_rationalisations() -> None:
    examples = make_examples(2)
    config = AnnotateConfig(source="self", model="tiny:gpt2", k=2, max_tokens=8)
    report = annotate(config, examples, MemorySink())
    f = report.filters
    assert (
        f.total == report.ok
        and f.kept == f.total - f.truncated - f.hint_mention - f.no_answer - f.wrong_answer
    )
    for ex in report.examples:
        assert all(r.text.endswith(f"So, the answer is {ex.answer}.") for r in ex.rationales)
