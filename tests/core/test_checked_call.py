"""Loading a model is one blocking call: `checked_call` keeps checking cancel while it runs, so a job being
cancelled or shut down during a long load stops within seconds instead of after the load."""

from __future__ import annotations

import threading

import pytest

from aicd.progress import Cancelled, NoProgress, checked_call
from tests.core.test_episode_building import _examples


class CancelOnCheck(NoProgress):
    def __init__(self, nth: int):
        self.nth, self.calls = nth, 0

    def check(self) -> None:
        self.calls += 1
        if self.calls >= self.nth:
            raise Cancelled("cancel")


def test_returns_the_value_and_reraises_the_calls_own_error():
    assert checked_call(lambda: 7, NoProgress(), poll_s=0.01) == 7
    with pytest.raises(KeyError, match="boom"):
        checked_call(lambda: {}["boom"], NoProgress(), poll_s=0.01)


def test_a_cancel_while_the_call_blocks_stops_the_caller_and_abandons_the_call():
    release = threading.Event()
    progress = CancelOnCheck(3)
    with pytest.raises(Cancelled):
        checked_call(lambda: release.wait(60), progress, poll_s=0.01)
    assert progress.calls == 3 and not release.is_set()  # the call is still blocked: it was abandoned
    release.set()


def test_train_cancelled_while_the_model_loads_ends_stopped(tmp_path, monkeypatch):
    import aicd.models
    from aicd.config import TrainConfig
    from aicd.train import TrainCallback, train

    real = aicd.models.load_model_and_tokenizer
    release, loaded = threading.Event(), threading.Event()

    def slow_load(*args, **kwargs):
        release.wait(10)  # old code: check() is never called during this wait, so nothing cancels it
        loaded.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(aicd.models, "load_model_and_tokenizer", slow_load)

    class CancelDuringLoad(TrainCallback):
        phase_name, checks = "", 0

        def phase(self, name, total=None):
            self.phase_name = name

        def check(self):
            if self.phase_name == "loading model":
                self.checks += 1
                if self.checks >= 2:  # the first check is before the load starts; the second during it
                    self.during_load = not loaded.is_set()
                    raise Cancelled("cancel")

    config = TrainConfig(name="load", output_dir=str(tmp_path), model="tiny:gpt2", max_steps=2, batch_size=4)
    callback = CancelDuringLoad()
    try:
        result = train(config, examples=_examples(4), callback=callback, progress=False)
    finally:
        release.set()
    assert result.stopped and result.step == 0 and callback.during_load


def test_evaluate_stopped_while_the_model_loads_raises_cancelled(monkeypatch):
    import aicd.models
    from aicd.config import EvalConfig
    from aicd.evaluate import EvalCallback, evaluate

    release, loaded = threading.Event(), threading.Event()

    def slow_load(*args, **kwargs):
        release.wait(10)
        loaded.set()
        raise RuntimeError("the load was not abandoned")

    monkeypatch.setattr(aicd.models, "load_model_and_tokenizer", slow_load)

    class StopNow(EvalCallback):
        def should_stop(self) -> bool:
            return True

    config = EvalConfig(model="tiny:gpt2", shots=[0], seeds=[0], max_new_tokens=2)
    try:
        with pytest.raises(Cancelled):
            evaluate(config, examples=_examples(2), callback=StopNow(), progress=False)
        assert not loaded.is_set()
    finally:
        release.set()
