"""Thread discipline: `--threads` on every command, one clear error for a bad value, children inherit it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import typer

from aicd.threads import THREAD_ENV_VARS, available_cores, configure_threads, default_threads, torch_threads


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch):
    """configure_threads changes this process: put torch and the environment back afterwards."""
    before = torch.get_num_threads()
    for name in (*THREAD_ENV_VARS, "AICD_THREADS"):
        monkeypatch.setenv(name, "")  # recorded, so teardown restores the original value (or its absence)
        monkeypatch.delenv(name)
    yield
    torch.set_num_threads(before)


def _leaf_commands(command, path=()):
    sub = getattr(command, "commands", None)
    if not sub:
        yield " ".join(path), command
        return
    for name, child in sub.items():
        yield from _leaf_commands(child, (*path, name))


def test_every_command_has_the_threads_option():
    from aicd.cli import app

    leaves = dict(_leaf_commands(typer.main.get_command(app)))
    assert {"train", "eval", "sweep", "annotate", "data list", "data export", "demo"} <= set(leaves)
    missing = [name for name, cmd in leaves.items() if "threads" not in {p.name for p in cmd.params}]
    assert missing == []


@pytest.mark.parametrize("value", ["0", str(available_cores() + 1)])
def test_bad_thread_count_is_one_clear_usage_error(aicd_cli, capsys, value, restore_threads):
    assert aicd_cli("data", "list", "--no-counts", "--threads", value) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--threads'" in err and f"between 1 and {available_cores()}" in err
    assert "Traceback" not in err


def test_threads_option_limits_torch_and_child_processes(aicd_cli, restore_threads):
    assert aicd_cli("data", "list", "--no-counts", "--threads", "1") == 0
    assert torch.get_num_threads() == 1 == torch_threads()
    child = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "1"


def test_configure_threads_validates_and_default_shares_the_cores(restore_threads):
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        configure_threads(0)
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    assert default_threads(1) == available_cores()
    assert default_threads(available_cores() * 4) == 1


def test_evaluation_results_record_the_threads(restore_threads):
    from aicd.config import EvalConfig
    from aicd.data.record import Example
    from aicd.evaluate import evaluate

    configure_threads(1)
    items = [Example(id="a", question="1+1?", answer="2")]
    result = evaluate(
        EvalConfig(model="none", shots=[0], seeds=[0]),
        examples=items,
        generate_fn=lambda prompts: ["So, the answer is 2."] * len(prompts),
        progress=False,
    )
    assert result.meta["threads"] == 1
