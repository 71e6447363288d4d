"""Length-grouped micro-batches: a permutation of the data, seeded, with far less padding than naive."""

from __future__ import annotations

import random

import pytest

from aicd.batching import group_steps, make_batches, padded_tokens, real_token_fraction


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(20, int(rng.gauss(600, 180))) for _ in range(n)]


@pytest.mark.parametrize("strategy", ["length_grouped", "naive"])
def test_batches_cover_every_episode_once(strategy):
    lengths = _lengths(203)
    batches = make_batches(lengths, 8, strategy, seed=1)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(203))
    assert all(1 <= len(b) <= 8 for b in batches)
    assert sum(len(b) < 8 for b in batches) <= 1  # only one partial micro-batch


@pytest.mark.parametrize("strategy", ["length_grouped", "naive"])
def test_batches_are_seeded(strategy):
    lengths = _lengths(300)
    assert make_batches(lengths, 4, strategy, seed="0:1") == make_batches(lengths, 4, strategy, seed="0:1")
    assert make_batches(lengths, 4, strategy, seed="0:1") != make_batches(lengths, 4, strategy, seed="0:2")


def test_length_grouping_wastes_little_on_padding():
    lengths = _lengths(2000)
    grouped = real_token_fraction(lengths, make_batches(lengths, 8, "length_grouped", seed=0))
    naive = real_token_fraction(lengths, make_batches(lengths, 8, "naive", seed=0))
    assert grouped >= 0.95
    assert naive < 0.85
    assert grouped > naive


def test_length_grouped_batches_are_not_globally_sorted():
    """Batch order is shuffled, so training does not see short episodes first."""
    lengths = _lengths(2000)
    batches = make_batches(lengths, 8, "length_grouped", seed=0)
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_padding_accounting_and_steps():
    lengths = [10, 4, 6, 6]
    assert padded_tokens(lengths, [[0, 1], [2, 3]]) == 20 + 12
    assert real_token_fraction(lengths, [[0, 1], [2, 3]]) == pytest.approx(26 / 32)
    assert group_steps([[0], [1], [2], [3], [4]], 2) == [[[0], [1]], [[2], [3]], [[4]]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="micro_batch_size"):
        make_batches([1, 2], 0)
    with pytest.raises(ValueError, match="batching"):
        make_batches([1, 2], 1, "packed")  # type: ignore[arg-type]
