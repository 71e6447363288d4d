"""A micro-batch that does not fit in memory stops training with the settings to change (issue 13's bad input),
not a stack trace or an out-of-memory kill."""

from __future__ import annotations

import pytest
import torch

from aicd.errors import AICDError
from aicd.memory import is_out_of_memory
from tests.core.test_episode_building import _examples


def test_out_of_memory_is_recognised_on_cuda_and_cpu_and_nothing_else():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_training_that_runs_out_of_memory_names_micro_batch_size_and_a_smaller_one(tmp_path, monkeypatch):
    from aicd.config import TrainConfig
    from aicd.train import Trainer, train

    def oom(self, *args, **kwargs):
        raise RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes"
        )

    monkeypatch.setattr(Trainer, "train_step", oom)
    config = TrainConfig(
        name="oom", output_dir=str(tmp_path), model="tiny:gpt2", max_steps=2, batch_size=8, micro_batch_size=4
    )
    with pytest.raises(AICDError) as err:
        train(config, examples=_examples(8), progress=False)
    message = str(err.value)
    assert message.startswith("micro_batch_size: 4 episodes") and "micro_batch_size=2" in message
    assert "\n" not in message


def test_other_errors_in_a_step_are_not_disguised(tmp_path, monkeypatch):
    from aicd.config import TrainConfig
    from aicd.train import Trainer, train

    def broken(self, *args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(Trainer, "train_step", broken)
    config = TrainConfig(name="bug", output_dir=str(tmp_path), model="tiny:gpt2", max_steps=1, batch_size=4)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(config, examples=_examples(4), progress=False)
