"""Request and token rate limits (leaky buckets from `aiolimiter`) alongside the concurrency semaphore."""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter


class RateLimits:
    """Concurrency + requests/minute + tokens/minute, acquired together before each request.

    Tokens are counted up front from an estimate (prompt length / 4 + max_tokens × n), the way OpenAI's own
    limiter counts them, so the budget holds before the real usage is known.
    """

    def __init__(
        self, concurrency: int, rpm: float | None = None, tpm: float | None = None, *, period: float = 60.0
    ):
        self.semaphore = asyncio.Semaphore(concurrency)
        self.rpm = AsyncLimiter(rpm, period) if rpm else None  # `period` is shortened only by tests
        self.tpm = AsyncLimiter(tpm, period) if tpm else None

    async def acquire(self, est_tokens: int) -> None:
        """Wait for the rate budgets (the semaphore is entered separately, around the whole request)."""
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(min(float(est_tokens), self.tpm.max_rate))


def estimate_tokens(prompt: str, max_tokens: int, n: int) -> int:
    """Upper-bound estimate of the tokens a request may use (≈4 characters per prompt token)."""
    return len(prompt) // 4 + 1 + max_tokens * n
