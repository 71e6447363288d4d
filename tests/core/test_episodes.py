"""Episode sampling and config validation."""

from __future__ import annotations

import pytest

from aicd.config import TrainConfig, build_config
from aicd.data.record import Example, Rationale
from aicd.episodes import sample_episode_shots
from aicd.errors import ConfigError


def _examples(n: int) -> list[Example]:
    return [
        Example(
            id=f"q{i}",
            question=f"What is {i} + 1?",
            answer=str(i + 1),
            rationales=[
                Rationale(text=f"{i} + 1 = {i + 1}. So, the answer is {i + 1}.", source="gold"),
                Rationale(text=f"Add one to {i}. So, the answer is {i + 1}.", source="teacher"),
            ],
        )
        for i in range(n)
    ]


def test_each_question_is_final_once_per_epoch_and_context_excludes_it():
    exs = _examples(10)
    eps = sample_episode_shots(exs, 4, seed=0, epoch=0)
    assert sorted(ep[-1].question for ep in eps) == sorted(e.question for e in exs)
    for ep in eps:
        assert len(ep) == 4
        assert len({s.question for s in ep}) == 4  # distinct shots, final not repeated in context


def test_sampling_is_seeded_and_varies_by_epoch():
    exs = _examples(12)
    a = sample_episode_shots(exs, 4, seed=3, epoch=0)
    assert a == sample_episode_shots(exs, 4, seed=3, epoch=0)
    assert a != sample_episode_shots(exs, 4, seed=3, epoch=1)
    assert a != sample_episode_shots(exs, 4, seed=4, epoch=0)
    used = {s.rationale for ep in a for s in ep}
    assert any(r.startswith("Add one") for r in used) and any("+ 1 =" in r for r in used)


def test_examples_without_rationales_are_skipped_for_cot_but_used_by_nocot():
    exs = _examples(5) + [Example(id="bare", question="Q?", answer="1")]
    assert all(s.question != "Q?" for ep in sample_episode_shots(exs, 3, seed=0) for s in ep)
    nocot = sample_episode_shots(exs, 3, seed=0, objective="nocot")
    assert any(ep[-1].question == "Q?" for ep in nocot)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"objective": "dpo"}, "objective"),
        ({"schedule": "custom", "n_shots": 4, "weights": [0.1, 1.0]}, "weights"),
        ({"schedule": "custom", "weights": [0.1, -1, 0.1, 1.0]}, "weights"),
        ({"n_shots": -1}, "n_shots"),
        ({"batch_size": 6, "micro_batch_size": 4}, "batch_size"),
        ({"lr": "fast"}, "lr"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_train_config_names_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        build_config(TrainConfig, data, source="cfg.yaml")


def test_overrides_are_typed():
    cfg = build_config(
        TrainConfig,
        {"objective": "aicd"},
        [
            "lr=1e-3",
            "n_shots=2",
            "objective=condgen",
            "template.separator=\n",
            "schedule=custom",
            "weights=[0.5, 1.0]",
        ],
    )
    assert cfg.lr == 1e-3 and cfg.n_shots == 2 and cfg.objective == "condgen" and cfg.weights == [0.5, 1.0]
    with pytest.raises(ConfigError, match="key=value"):
        build_config(TrainConfig, {}, ["lr"])
