"""Shot selection strategies (random / similar / diverse) for evaluation prompts and training episodes."""

from __future__ import annotations

import pytest

from aicd.config import SweepConfig, build_config
from aicd.data.record import Example, Rationale
from aicd.episodes import sample_episode_shots
from aicd.prompts import sample_shots, select_demonstrations
from aicd.shot_selection import ShotSelector
from aicd.sweep import plan_sweep

TOPICS = ["apples", "trains", "marbles", "pencils"]


def _pool() -> list[Example]:
    """4 topics x 4 questions: a question's own topic shares its rare words."""
    return [
        Example(
            id=f"{t}{i}",
            question=f"Tom has {i + 2} {t} and {t} friends give him {i + 3} {t}. How many {t} now?",
            answer=str(2 * i + 5),
            rationales=[Rationale(text=f"{i + 2} + {i + 3} = {2 * i + 5}. So, the answer is {2 * i + 5}.")],
        )
        for t in TOPICS
        for i in range(4)
    ]


def _topic(ex: Example) -> str:
    return ex.id.rstrip("0123456789")


def test_similar_picks_the_question_own_topic_and_never_the_item() -> None:
    pool = _pool()
    item = pool[5]  # trains1
    shots = select_demonstrations(pool, 3, seed=0, item=item, strategy="similar")
    assert [_topic(s) for s in shots] == ["trains"] * 3 and item not in shots
    random_topics = {
        _topic(s)
        for seed in range(5)
        for s in select_demonstrations(pool, 3, seed=seed, item=item, strategy="random")
    }
    assert len(random_topics) > 1  # what "similar" changes
    assert select_demonstrations(pool, 3, seed=4, item=item) == sample_shots(pool, 3, seed=4, item=item)


def test_diverse_spreads_over_topics_and_is_nested_across_k() -> None:
    pool = _pool()
    item = pool[0]
    shots = select_demonstrations(pool, 4, seed=1, item=item, strategy="diverse")
    assert len({_topic(s) for s in shots}) == 4, [s.id for s in shots]  # one per topic
    for strategy in ("similar", "diverse"):
        big = {s.id for s in select_demonstrations(pool, 4, seed=2, item=item, strategy=strategy)}
        small = {s.id for s in select_demonstrations(pool, 2, seed=2, item=item, strategy=strategy)}
        assert small <= big, strategy


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="shot_selection must be one of random, similar, diverse"):
        ShotSelector(["a b", "c d"]).select("a", 1, "nearest", seed=0)  # type: ignore[arg-type]


def test_training_episodes_take_similar_context_shots() -> None:
    pool = _pool()
    episodes = sample_episode_shots(pool, 3, seed=0, objective="aicd", shot_selection="similar")
    assert len(episodes) == len(pool)
    for shots in episodes:
        final_topic = shots[-1].question.split()[3]
        assert [s.question.split()[3] for s in shots[:-1]] == [final_topic] * 2
        assert len({s.question for s in shots}) == 3  # distinct, the final one not repeated
    mixed = sample_episode_shots(pool, 3, seed=0, objective="aicd")
    assert any(len({s.question.split()[3] for s in shots}) > 1 for shots in mixed)


def test_shot_selection_is_a_sweep_axis_for_training_and_evaluation(tmp_path) -> None:
    cfg = build_config(
        SweepConfig,
        {
            "name": "sel",
            "output_dir": str(tmp_path),
            "train": {"model": "tiny:gpt2", "dataset": "arith"},
            "grid": {"shot_selection": ["random", "similar", "diverse"]},
        },
        source="t",
    )
    runs = plan_sweep(cfg)
    assert [(r.train.shot_selection, r.evals[0].shot_selection) for r in runs] == [
        ("random", "random"),
        ("similar", "similar"),
        ("diverse", "diverse"),
    ]


def test_evaluate_builds_its_prompts_with_the_configured_selection() -> None:
    from aicd.config import EvalConfig
    from aicd.evaluate import evaluate

    pool = _pool()
    items = [
        Example(
            id="q",
            question="Ann has 3 marbles and marbles friends give her 4 marbles. How many marbles now?",
            answer="7",
        )
    ]
    seen: list[str] = []

    def generate_fn(prompts: list[str]) -> list[str]:
        seen.extend(prompts)
        return [" 7"] * len(prompts)

    for selection in ("similar", "random"):
        seen.clear()
        config = EvalConfig(model="none", shots=[3], seeds=[0, 1, 2], shot_selection=selection)
        evaluate(config, examples=items, shot_examples=pool, generate_fn=generate_fn, progress=False)
        shown = [q for p in seen for q in p.split("Question: ")[1:-1]]
        on_topic = all("marbles" in q for q in shown)
        assert len(shown) >= 3 and on_topic == (selection == "similar"), (
            selection,
            shown,
        )  # identical prompts run once
