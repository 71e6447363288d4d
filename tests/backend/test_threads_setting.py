"""AICD_THREADS: validated at start-up, defaulting to the cores shared between the jobs that run at once,
and handed to every embedded job."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aicd.threads import available_cores
from backend.core.settings import Settings


def test_threads_setting_is_validated_and_defaults_to_a_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("AICD_THREADS", raising=False)
    with pytest.raises(ValidationError, match="AICD_threads must be between 1"):
        Settings(home=tmp_path, threads=available_cores() + 1)
    assert Settings(home=tmp_path, threads=1).job_threads(8) == 1
    assert Settings(home=tmp_path).job_threads(1) == available_cores()
    assert Settings(home=tmp_path).job_threads(available_cores() * 2) == 1


def test_embedded_jobs_get_their_share_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("AICD_THREADS", raising=False)
    from backend.jobs import EmbeddedDispatcher

    dispatcher = EmbeddedDispatcher(Settings(home=tmp_path, embedded_workers=1))
    try:
        jobs_at_once = len(dispatcher._queues)  # one slot per queue
        assert dispatcher._env()["AICD_THREADS"] == str(max(1, available_cores() // jobs_at_once))
    finally:
        dispatcher.close()
