"""A dead, hung or dying teacher stops the run with one message, soon, and the run resumes (issue 11 #9)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aicd.annotate import AnnotateConfig, JsonlSink, MemorySink, TeacherError, annotate
from tests.annotate.conftest import make_examples


def _config(base_url: str, **kw) -> AnnotateConfig:
    opts = {
        "base_url": base_url,
        "teacher": "fake-teacher",
        "api_key": "sk-test-key",
        "k": 1,
        "concurrency": 16,
        "timeout": 0.5,
        "backoff_initial": 0.02,
        "backoff_max": 0.1,
        "max_retries": 6,
    }
    return AnnotateConfig(**{**opts, **kw})


def test_a_teacher_that_hangs_on_every_request_is_reported_after_one_timeout(teacher, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.hang_rate = 1.0
    server.options.hang_s = 30.0
    path = tmp_path / "raw.jsonl"
    t0 = time.monotonic()
    with pytest.raises(TeacherError) as err, JsonlSink(path) as sink:
        annotate(_config(base_url), make_examples(40), sink)
    message = str(err.value)
    assert (
        base_url in message
        and "the first 8 requests all failed" in message
        and "request timed out" in message
    )
    # retrying every sample (40 × 7 attempts × 0.5 s / 16 in flight) took ~9 s before; one round of timeouts now
    assert len(server.requests) <= 16
    assert time.monotonic() - t0 < 9

    server.options.hang_rate = 0.0  # the teacher is back: the same run resumes and completes
    with JsonlSink(path) as sink:
        report = annotate(_config(base_url), make_examples(40), sink)
    assert report.ok == 40 and report.failed == 0


def test_a_teacher_that_answers_500_to_everything_stops_after_the_first_8_requests(teacher) -> None:
    base_url, server = teacher
    server.options.fail_rate = 1.0
    server.options.fail_kinds = ("500",)
    with pytest.raises(TeacherError, match=r"first 8 requests all failed \(last: HTTP 500"):
        annotate(_config(base_url, concurrency=1), make_examples(20), MemorySink())
    assert len(server.requests) == 8


def test_a_teacher_that_dies_mid_run_stops_after_8_samples_in_a_row_fail(teacher) -> None:
    base_url, server = teacher
    server.options.fail_questions = tuple(f"Item {i}:" for i in range(5, 60))
    sink = MemorySink()
    with pytest.raises(TeacherError, match=r"8 samples in a row failed after every retry \(last: HTTP 500"):
        annotate(_config(base_url, concurrency=1, max_retries=1), make_examples(60), sink)
    assert len(sink.records) == 5 and len(sink.failures) == 8


def test_rate_limits_at_the_start_do_not_open_the_breaker(teacher) -> None:
    base_url, server = teacher
    server.options.fail_first = 12
    server.options.fail_kinds = ("429",)
    server.options.retry_after = 0.01
    report = annotate(_config(base_url, concurrency=4), make_examples(10), MemorySink())
    assert report.ok == 10 and server.faults() == {"429": 12}


def test_the_breaker_can_be_switched_off_and_retry_time_is_bounded(teacher) -> None:
    base_url, server = teacher
    server.options.hang_rate = 1.0
    server.options.hang_s = 30.0
    t0 = time.monotonic()
    report = annotate(
        _config(base_url, timeout=0.3, max_retries=1000, max_retry_time=1.0, breaker_after=0),
        make_examples(2),
        MemorySink(),
    )
    assert report.failed == 2 and time.monotonic() - t0 < 5  # 1000 retries were allowed; 1 s of them was


def test_a_stop_does_not_wait_for_hung_requests(teacher) -> None:
    from aicd.annotate.runner import STOP_GRACE_S

    base_url, server = teacher
    server.options.hang_rate = 1.0
    server.options.hang_s = 30.0
    t0 = time.monotonic()
    report = annotate(
        _config(base_url, timeout=25.0, breaker_after=0),
        make_examples(40),
        MemorySink(),
        should_stop=lambda: time.monotonic() > t0 + 0.5,
    )
    assert report.stopped and report.failed == 0
    assert time.monotonic() - t0 < STOP_GRACE_S + 5  # not the 25 s request timeout
