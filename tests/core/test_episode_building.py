"""Episode building is linear in the shots (issue 11 #1) and cancellable through `aicd.progress`."""

from __future__ import annotations

import pytest

from aicd.config import TemplateConfig
from aicd.data.record import Example, Rationale
from aicd.episodes import EpisodeTooLong, Shot, _assemble, _encode_shot, build_episode, sample_episode_shots
from aicd.progress import Cancelled, NoProgress


@pytest.fixture(scope="module")
def tokenizer():
    from aicd.models import load_tokenizer

    return load_tokenizer("tiny:gpt2")


class CountingTokenizer:
    """Forwards to a real tokenizer and counts the encodings asked for."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.bos_token_id, self.bos_token = inner.bos_token_id, inner.bos_token
        self.eos_token_id, self.eos_token = inner.eos_token_id, inner.eos_token

    def __call__(self, text, **kwargs):
        self.calls += 1
        return self.inner(text, **kwargs)


def _shots(n: int) -> list[Shot]:
    return [
        Shot(f"What is {i} + {i % 7}?", f"{i} + {i % 7} = {i + i % 7}.", str(i + i % 7)) for i in range(n)
    ]


def _reference(tokenizer, shots, objective, weights, max_length):
    """The obvious algorithm: assemble from each start in turn, keep the first that fits."""
    template = TemplateConfig()
    for start in range(len(shots)):
        encoded = [
            _encode_shot(tokenizer, shot, objective, template, i == 0, None)
            for i, shot in enumerate(shots[start:])
        ]
        episode = _assemble(tokenizer, encoded, objective, weights[start:])
        if max_length is None or len(episode) <= max_length:
            episode.n_dropped = start
            return episode
    raise EpisodeTooLong("too long")


@pytest.mark.parametrize("objective", ["aicd", "condgen", "lm", "nocot"])
@pytest.mark.parametrize("max_length", [None, 400, 150, 60])
def test_same_episode_as_assembling_from_each_start(tokenizer, objective, max_length):
    shots = _shots(8)
    weights = [0.1 * (i + 1) for i in range(8)]
    expected = _reference(tokenizer, shots, objective, weights, max_length)
    got = build_episode(tokenizer, shots, objective, weights, max_length=max_length)
    assert (got.input_ids, got.loss_weights, got.n_shots, got.n_dropped, got.spans) == (
        expected.input_ids,
        expected.loss_weights,
        expected.n_shots,
        expected.n_dropped,
        expected.spans,
    )


def test_tokenizer_work_grows_with_the_surviving_shots_not_the_dropped_ones(tokenizer):
    counting = CountingTokenizer(tokenizer)
    shots = _shots(400)
    episode = build_episode(counting, shots, "aicd", [1.0] * 400, max_length=120)
    assert episode.n_dropped > 390 and episode.n_shots >= 2
    # prompt (two variants) and target per surviving shot, and two more shots to see that they do not fit;
    # re-assembling once per dropped shot asked for tens of thousands
    assert counting.calls <= 3 * (episode.n_shots + 2)

    counting.calls = 0
    build_episode(
        counting, shots, "aicd", [1.0] * 400
    )  # nothing dropped: each shot encoded a bounded number of times
    assert counting.calls <= 3 * 400


def test_final_shot_alone_too_long_names_its_length(tokenizer):
    with pytest.raises(EpisodeTooLong, match=r"needs \d+ tokens, more than max_length=5"):
        build_episode(tokenizer, _shots(50), "aicd", [1.0] * 50, max_length=5)


def _examples(n: int) -> list[Example]:
    return [
        Example(
            id=f"q{i}",
            question=f"{i}?",
            answer=str(i),
            rationales=[Rationale(text=f"It is {i}.", source="gold")],
        )
        for i in range(n)
    ]


def test_huge_n_shots_builds_an_epoch_of_short_episodes(tokenizer):
    """n_shots far above the dataset size (the run that jammed a worker): every episode keeps what fits."""
    from aicd.config import TrainConfig
    from aicd.train import build_epoch

    with pytest.raises(ValueError, match="n_shots"):  # the config refuses it with the field named ...
        TrainConfig(model="tiny:gpt2", dataset="x", n_shots=10000)
    # ... and episode building itself copes with it (a library caller may skip validation)
    config = TrainConfig(model="tiny:gpt2", dataset="x", max_length=64, batch_size=8)
    config = config.model_copy(update={"n_shots": 10000})
    counting = CountingTokenizer(tokenizer)
    plan = build_epoch(_examples(300), counting, config, 0)
    assert len(plan.episodes) == 300 and all(len(ep) <= 64 for ep in plan.episodes)
    assert all(ep.n_dropped > 280 for ep in plan.episodes)
    assert counting.calls < 300 * 40  # bounded per episode by what fits, not by the 300 shots it was given


class StopAfter(NoProgress):
    def __init__(self, checks: int):
        self.left = checks
        self.phases: list[tuple[str, int | None]] = []
        self.done = 0

    def phase(self, name, total=None):
        self.phases.append((name, total))

    def advance(self, n=1):
        self.done += n

    def check(self):
        self.left -= 1
        if self.left < 0:
            raise Cancelled("stop")


def test_episode_building_reports_its_phase_and_stops_when_asked(tokenizer):
    from aicd.config import TrainConfig
    from aicd.train import build_epoch

    config = TrainConfig(model="tiny:gpt2", dataset="x", n_shots=4, max_length=64, batch_size=8)
    full = StopAfter(10**9)
    build_epoch(_examples(50), tokenizer, config, 0, progress=full)
    assert full.phases == [("episodes", 50)] and full.done == 50

    with pytest.raises(Cancelled):
        build_epoch(_examples(50), tokenizer, config, 0, progress=StopAfter(60))
    with pytest.raises(Cancelled):  # stops while sampling, too
        sample_episode_shots(_examples(50), 4, seed=0, progress=StopAfter(3))


def test_train_stops_cleanly_when_cancelled_while_building_episodes(tmp_path):
    """A cancel during the setup phases ends the run stopped (nothing written), and a cancel while the next
    epoch's episodes are built leaves a checkpoint that resumes."""
    from aicd.config import TrainConfig
    from aicd.train import TrainCallback, train

    class CancelInPhase(TrainCallback):
        def __init__(self, phase_name: str, nth: int):
            self.target, self.nth, self.seen, self.current = phase_name, nth, [], None

        def phase(self, name, total=None):
            self.current = name
            self.seen.append(name)

        def check(self):
            if self.current == self.target and self.seen.count(self.target) >= self.nth:
                raise Cancelled("cancel")

    base = dict(output_dir=str(tmp_path), model="tiny:gpt2", n_shots=2, batch_size=4, max_length=128)
    base |= dict(mixed_precision="no", epochs=2)
    early = CancelInPhase("episodes", 1)
    result = train(TrainConfig(name="early", **base), examples=_examples(8), callback=early, progress=False)
    assert result.stopped and result.step == 0 and early.seen == ["loading model", "episodes"]
    assert not (tmp_path / "early" / "metrics.jsonl").exists()

    loading = CancelInPhase("loading model", 1)
    assert train(
        TrainConfig(name="load", **base), examples=_examples(8), callback=loading, progress=False
    ).stopped

    later = CancelInPhase("episodes", 2)  # epoch 1's episodes: after the 2 steps of epoch 0
    config = TrainConfig(name="later", **base)
    result = train(config, examples=_examples(8), callback=later, progress=False)
    assert result.stopped and result.step == 2 and (config.run_dir / "checkpoint-2").is_dir()
    resumed = train(config, examples=_examples(8), resume=True, progress=False)
    assert not resumed.stopped and resumed.step == 4 and resumed.final_dir is not None
