"""The synthetic arithmetic generator: deterministic, correct rationales, disjoint splits, registered."""

from __future__ import annotations

import re

import pytest

from aicd.answers import extract_answer
from aicd.data.synthetic import ArithSpec, generate


def _evaluate_question(question: str) -> int:
    """Recompute the answer from the question text alone (start value, then +/- per clause)."""
    head, *clauses = re.split(r", | and ", question.split(". ")[0])
    value = int(re.search(r"\d+", head).group())
    for clause in clauses:
        n = int(re.search(r"\d+", clause).group())
        value += -n if clause.split()[0] in {"loses", "sells", "gives", "uses", "drops"} else n
    return value


def test_same_seed_same_examples_and_prefix_property():
    a = generate("train", 50, seed=3)
    b = generate("train", 50, seed=3)
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    assert [e.question for e in generate("train", 20, seed=3)] == [e.question for e in a[:20]]
    assert [e.question for e in generate("train", 50, seed=4)] != [e.question for e in a]


def test_answers_and_every_rationale_are_correct():
    spec = ArithSpec(min_steps=2, max_steps=4, k=3)
    for ex in generate("train", 300, seed=1, spec=spec):
        assert int(ex.answer) == _evaluate_question(ex.question), ex.question
        assert len(ex.rationales) == 3
        assert len({r.text for r in ex.rationales}) == 3  # paraphrases, not copies
        for r in ex.rationales:
            assert r.text.endswith(f"So, the answer is {ex.answer}.")
            assert extract_answer(r.text, "number") == ex.answer
            # every intermediate step is arithmetically right
            for a, op, b, c in re.findall(r"(\d+) ?([+-]) ?(\d+) ?= ?(\d+)", r.text):
                assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)


def test_steps_and_value_range_follow_the_spec():
    spec = ArithSpec(min_steps=2, max_steps=3, max_operand=5, max_value=9, k=1)
    examples = generate("train", 200, seed=0, spec=spec)
    steps = {len(re.findall(r"=", ex.rationales[0].text)) for ex in examples}
    assert steps == {2, 3}
    values = [int(v) for ex in examples for v in re.findall(r"\d+", ex.rationales[0].text)]
    assert min(values) >= 0 and max(values) <= 9
    assert all(len(ex.rationales) == 1 for ex in examples)


def test_train_and_test_questions_are_disjoint():
    train = {e.question for e in generate("train", 2000, seed=0)}
    test = generate("test", 300, seed=0)
    assert len({e.question for e in test}) == 300
    assert not train & {e.question for e in test}


def test_registered_as_arith_dataset():
    from aicd.data.loaders import DATASETS, answer_kind_of, load_examples

    examples = load_examples("arith", "test", limit=5)
    assert [e.id for e in examples] == [f"arith/test/{i}" for i in range(5)]
    assert DATASETS["arith"].n_shots == 4 and answer_kind_of("arith") == "number"
    assert load_examples("arith", "dev", limit=5) == examples


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="split"):
        generate("nonsense", 3)


def test_fixed_width_layout_puts_every_number_at_the_same_offset():
    spec = ArithSpec(min_steps=3, max_steps=3, max_value=9, k=1, fixed_width=True)
    examples = generate("train", 300, seed=0, spec=spec)
    assert len({len(ex.question) for ex in examples}) == 1
    offsets = {tuple(i for i, ch in enumerate(ex.question) if ch.isdigit()) for ex in examples}
    assert len(offsets) == 1 and len(next(iter(offsets))) == 4
    for ex in examples:
        assert int(ex.answer) == _evaluate_question(ex.question) and 0 <= int(ex.answer) <= 9
    with pytest.raises(ValueError, match="max_value"):
        ArithSpec(fixed_width=True, max_value=19)
