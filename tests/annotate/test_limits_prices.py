"""Rate limits really space requests out; cost comes from the API's usage and an editable price table."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from aicd.annotate import AnnotateConfig, MemorySink, ModelPrice, annotate
from aicd.annotate.limits import RateLimits
from aicd.annotate.prices import cost_usd, load_prices, price_for
from aicd.errors import ConfigError
from tests.annotate.conftest import make_examples


def _elapsed(limits: RateLimits, n: int, tokens: int) -> float:
    async def run() -> float:
        t0 = time.monotonic()
        for _ in range(n):
            await limits.acquire(tokens)
        return time.monotonic() - t0

    return asyncio.run(run())


def test_requests_per_period_are_limited() -> None:
    # 5 requests per 0.5 s: the bucket holds 5, the other 10 must wait for it to drain (≥ 1 s in all)
    assert _elapsed(RateLimits(4, rpm=5, period=0.5), 15, 1) >= 0.9


def test_tokens_per_period_are_limited_and_big_requests_do_not_deadlock() -> None:
    assert _elapsed(RateLimits(4, tpm=100, period=0.5), 6, 50) >= 0.9  # 300 tokens at 100 per 0.5 s
    assert _elapsed(RateLimits(4, tpm=100, period=0.2), 2, 10_000) >= 0.1  # clamped to the bucket size


def test_price_lookup_by_exact_name_then_longest_prefix() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini") != price_for("gpt-4o")
    assert price_for("my-local-llama") is None
    assert cost_usd("my-local-llama", 10, 10) is None
    assert cost_usd("x", 1_000_000, 2_000_000, {"x": ModelPrice(input=1.0, output=3.0)}) == pytest.approx(7.0)


def test_price_file_is_validated_with_the_model_named(tmp_path: Path) -> None:
    good = tmp_path / "prices.yaml"
    good.write_text("gpt-3.5-turbo: {input: 2.0, output: 4.0}\n")
    assert load_prices(good) == {"gpt-3.5-turbo": ModelPrice(input=2.0, output=4.0)}
    bad = tmp_path / "bad.yaml"
    bad.write_text("my-model: {input: -1, output: 4.0}\n")
    with pytest.raises(ConfigError, match="my-model.*input"):
        load_prices(bad)


def test_report_cost_comes_from_usage_and_the_price_table(teacher) -> None:
    base_url, server = teacher
    sink = MemorySink()
    config = AnnotateConfig(
        base_url=base_url,
        teacher="gpt-3.5-turbo",
        api_key="k",
        prices={"gpt-3.5-turbo": ModelPrice(input=1000.0, output=2000.0)},
    )
    report = annotate(config, make_examples(5), sink)
    assert report.prompt_tokens > 0 and report.completion_tokens > 0
    expected = (report.prompt_tokens * 1000.0 + report.completion_tokens * 2000.0) / 1e6
    assert report.cost_usd == pytest.approx(expected)
    assert sum(r.cost_usd for r in sink.records) == pytest.approx(expected)
    assert sum(r.usage.prompt_tokens for r in sink.records) == report.prompt_tokens
