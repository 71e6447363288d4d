"""A circuit breaker for one annotation run: stop asking an endpoint that is down, hung or misconfigured.

Retries are right for a flaky teacher and wrong for a dead one: a server that hangs on every request cost
`timeout × (max_retries + 1)` per sample before this existed (hours for a few hundred questions, with nothing
reported). The breaker opens when the first `threshold` requests of a run all failed (nothing has ever got
through), or when `threshold` samples in a row failed after all their retries (it died mid-run). 429s do not
count as request failures (the server is up and asks us to slow down), but a sample that still gets 429 after
every retry does. The caller turns an open breaker into one `TeacherError` naming the endpoint and the failure;
what was stored stays stored, so the run resumes where it stopped.
"""

from __future__ import annotations


class CircuitBreaker:
    """Counts failures; `request_failed` / `sample_failed` return the reason once the breaker opens."""

    def __init__(self, threshold: int):
        self.threshold = threshold  # 0: never opens
        self.any_success = False
        self.failed_requests = 0  # before the first success
        self.failed_samples_in_row = 0
        self.reason: str | None = None

    def request_ok(self) -> None:
        self.any_success = True

    def request_failed(self, error: str, *, rate_limited: bool = False) -> str | None:
        if self.threshold and not self.any_success and not rate_limited:
            self.failed_requests += 1
            if self.failed_requests >= self.threshold and self.reason is None:
                self.reason = f"the first {self.failed_requests} requests all failed (last: {error})"
        return self.reason

    def sample_ok(self) -> None:
        self.failed_samples_in_row = 0

    def sample_failed(self, error: str) -> str | None:
        if self.threshold:
            self.failed_samples_in_row += 1
            if self.failed_samples_in_row >= self.threshold and self.reason is None:
                self.reason = (
                    f"{self.failed_samples_in_row} samples in a row failed after every retry (last: {error})"
                )
        return self.reason
