"""How a job's state reads in the UI: `cancelling` from the cancel request until the server confirms, the same for
a stand-alone run, a run inside a sweep, a sweep, an evaluation and an annotation; offline-safe status symbols."""

from __future__ import annotations

import unicodedata

import pytest
from streamlit.testing.v1 import AppTest

from ui.components.common import STATUS_ICONS, display_status, run_label, status_label


@pytest.mark.parametrize(
    ("job", "shown"),
    [
        ({"status": "running", "cancel_requested": True}, "cancelling"),
        ({"status": "running", "cancel_requested": True, "sweep_id": 3}, "cancelling"),  # a sweep's run
        ({"status": "running", "cancel_requested": False}, "running"),
        ({"status": "cancelled", "cancel_requested": False}, "cancelled"),
        ({"status": "queued"}, "queued"),
    ],
)
def test_a_cancel_request_reads_cancelling_until_the_server_confirms(job: dict, shown: str) -> None:
    assert display_status(job) == shown
    assert status_label(job).endswith(shown)


def test_run_labels_carry_the_displayed_status() -> None:
    run = {"id": 7, "name": "r", "status": "running", "cancel_requested": True, "config": {}}
    assert run_label(run).endswith("cancelling")


def test_status_symbols_need_no_emoji_font() -> None:
    for symbol in STATUS_ICONS.values():
        assert all(ord(ch) < 0x2800 and unicodedata.category(ch) != "Mn" for ch in symbol), symbol
        assert "\ufe0f" not in symbol  # no emoji presentation selector


def _actions(job: dict) -> None:
    from ui.client import ApiClient
    from ui.components import live

    live.job_state(job, "run")
    live.actions(ApiClient("http://127.0.0.1:9"), "runs", job, "runs")


@pytest.mark.parametrize("kind_of_job", [{}, {"sweep_id": 1}])
def test_a_cancelling_job_offers_no_second_cancel_and_says_so(kind_of_job: dict) -> None:
    job = {"id": 5, "status": "running", "cancel_requested": True, "attempt": 1, **kind_of_job}
    at = AppTest.from_function(_actions, args=(job,), default_timeout=30)
    at.run()
    assert not at.exception
    assert [b.key for b in at.button] == ["runs_cancelling_5"] and at.button[0].disabled
    assert any("Cancelling" in i.value for i in at.info)

    running = {**job, "cancel_requested": False}
    at = AppTest.from_function(_actions, args=(running,), default_timeout=30)
    at.run()
    assert [b.key for b in at.button] == ["runs_cancel_5"] and not at.button[0].disabled
