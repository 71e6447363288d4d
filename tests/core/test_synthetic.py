"""The synthetic arithmetic generator: deterministic, correct rationales, disjoint splits, registered."""

from __future__ import annotations

import re

import pytest

from aicd.answers import extract_answer
from aicd.data.synthetic import BONUS_VERBS, ArithSpec, generate


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


# ---------------------------------------------------------------- hidden-rule ("bonus") family


def _question_value(question: str) -> int:
    """What the question alone determines: start ± n."""
    start, n = (int(x) for x in re.findall(r"\d+", question))
    verb = question.split(", ")[1].split()[0]
    return start - n if verb in BONUS_VERBS["-"] else start + n


def test_bonus_rule_is_not_recoverable_from_the_query_alone():
    from collections import Counter

    from aicd.data.synthetic import BONUS_VALUES, generate_bonus

    train, test = generate_bonus("train", 3000, seed=0), generate_bonus("test", 900, seed=0)
    # the best rule-blind predictor: the question's own value plus the most frequent bonus in training
    bonuses = Counter(int(ex.answer) - _question_value(ex.question) for ex in train)
    assert set(bonuses) == set(BONUS_VALUES)
    guess = bonuses.most_common(1)[0][0]
    blind = sum(int(ex.answer) == _question_value(ex.question) + guess for ex in test) / len(test)
    chance = 1 / len(BONUS_VALUES)
    assert blind < chance + 0.05  # ≈ 1/9: the query carries no information about the rule
    # ... while a reader of one same-group demonstration's chain gets every item right
    by_group = {ex.group: ex for ex in train}
    for ex in test:
        demo = by_group[ex.group].rationales[0].text
        bonus = int(re.match(r"bonus=(\d+)\.", demo).group(1))
        assert int(ex.answer) == _question_value(ex.question) + bonus
    # a question recurs with other bonuses (other answers): the answer is not a function of the question
    answers: dict[str, set[str]] = {}
    for ex in train:
        answers.setdefault(ex.question, set()).add(ex.answer)
    assert any(len(a) > 1 for a in answers.values())


def test_bonus_answers_are_spread_and_chains_are_correct():
    from collections import Counter

    from aicd.chains import chain_steps
    from aicd.data.synthetic import generate_bonus

    test = generate_bonus("test", 300, seed=1)
    top = Counter(ex.answer for ex in test).most_common(1)[0][1]
    assert top / len(test) < 0.1  # the majority-answer baseline is low
    assert {ex.group for ex in test} == {f"bonus{k}" for k in range(1, 10)}
    for ex in test:
        steps = chain_steps(ex.rationales[0].text)
        assert steps[0] == f"bonus={ex.group.removeprefix('bonus')}" and len(steps) == 3
        assert extract_answer(ex.rationales[0].text, "number") == ex.answer
        for a, op, b, c in (re.fullmatch(r"(\d+)([+-])(\d+)=(\d+)", s).groups() for s in steps[1:]):
            assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)
    assert [e.model_dump() for e in generate_bonus("test", 50, seed=1)] == [e.model_dump() for e in test[:50]]
    train_pairs = {(e.question, e.group) for e in generate_bonus("train", 2000, seed=1)}
    assert not {e.question for e in test} & {q for q, _ in train_pairs}


def test_group_round_trips_through_jsonl_and_is_omitted_when_unset(tmp_path):
    from aicd.data.jsonl import read_examples, write_examples
    from aicd.data.synthetic import generate_bonus

    grouped = generate_bonus("train", 3)
    plain = generate("train", 2)
    path = write_examples(tmp_path / "x.jsonl", [*grouped, *plain])
    assert read_examples(path) == [*grouped, *plain]
    lines = path.read_text().splitlines()
    assert '"group":"bonus' in lines[0] and '"group"' not in lines[-1]


def test_episodes_and_k_shot_prompts_draw_every_shot_from_the_items_group():
    from aicd.data.synthetic import generate_bonus
    from aicd.episodes import sample_episode_shots
    from aicd.prompts import sample_shots

    train = generate_bonus("train", 300, seed=2)
    group_of = {ex.question + ex.answer: ex.group for ex in train}
    for shots in sample_episode_shots(train, 4, seed=0):
        assert len(shots) == 4
        assert len({group_of[s.question + s.answer] for s in shots}) == 1  # one hidden rule per episode
    from aicd.prompts import select_demonstrations

    for item in generate_bonus("test", 30, seed=2):
        demos = sample_shots(train, 3, seed=0, item=item)
        assert len(demos) == 3 and {d.group for d in demos} == {item.group}
        for strategy in ("similar", "diverse"):  # BM25 selection stays inside the group too
            demos = select_demonstrations(train, 3, seed=0, item=item, strategy=strategy)
            assert len(demos) == 3 and {d.group for d in demos} == {item.group}, strategy
    # without groups the pool is shared, as before
    plain = generate("train", 20)
    assert len(sample_shots(plain, 3, seed=0, item=plain[0])) == 3
    assert all(len(s) == 4 for s in sample_episode_shots(plain, 4, seed=0))
