"""Micro-batches that waste little compute on padding, and grouping them into optimizer steps.

Episodes are right-padded to the longest one in their micro-batch, so the padding waste is set by how
different the lengths in one micro-batch are. `length_grouped` (like HF's LengthGroupedSampler) shuffles
the episodes, cuts them into large pools, sorts each pool by length, chunks it into micro-batches and
shuffles the micro-batch order: neighbours have nearly equal lengths, yet every epoch sees a different
seeded order. `naive` is a plain shuffle, kept for comparison. No packing: episodes never share a row,
so they cannot attend to each other.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

Strategy = Literal["length_grouped", "naive"]
POOL_BATCHES = 64  # micro-batches per sorting pool: larger = less padding, less randomness


def naive_batches(lengths: Sequence[int], micro_batch_size: int, *, seed: int | str = 0) -> list[list[int]]:
    """Shuffle, then chunk in order."""
    order = list(range(len(lengths)))
    random.Random(f"naive:{seed}").shuffle(order)
    return [order[i : i + micro_batch_size] for i in range(0, len(order), micro_batch_size)]


def length_grouped_batches(
    lengths: Sequence[int], micro_batch_size: int, *, seed: int | str = 0, pool_batches: int = POOL_BATCHES
) -> list[list[int]]:
    """Shuffle, sort pools of `pool_batches` micro-batches by length (longest first), chunk, shuffle batches."""
    rng = random.Random(f"grouped:{seed}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = micro_batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + micro_batch_size] for i in range(0, len(chunk), micro_batch_size))
    rng.shuffle(batches)
    return batches


def make_batches(
    lengths: Sequence[int],
    micro_batch_size: int,
    strategy: Strategy = "length_grouped",
    *,
    seed: int | str = 0,
) -> list[list[int]]:
    """Micro-batches (lists of indices into `lengths`) covering every index exactly once."""
    if micro_batch_size <= 0:
        raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")
    if strategy == "length_grouped":
        return length_grouped_batches(lengths, micro_batch_size, seed=seed)
    if strategy == "naive":
        return naive_batches(lengths, micro_batch_size, seed=seed)
    raise ValueError(f"batching must be 'length_grouped' or 'naive', got '{strategy}'")


def group_steps(micro_batches: Sequence[list[int]], accumulation: int) -> list[list[list[int]]]:
    """Consecutive groups of `accumulation` micro-batches, one group per optimizer step (the last may be short)."""
    return [list(micro_batches[i : i + accumulation]) for i in range(0, len(micro_batches), accumulation)]


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens the model actually processes: each micro-batch is as wide as its longest episode."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


def real_token_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens / processed tokens (1.0 = no padding)."""
    total = padded_tokens(lengths, batches)
    real = sum(lengths[i] for b in batches for i in b)
    return real / total if total else 1.0
