"""One run on several processes: `aicd train` re-launched by `accelerate launch`, DDP over gloo on CPU.

The launched runs are real (2 processes, torch.distributed, gloo); each costs the start-up of three Python
processes, so there are only two of them and everything else is checked in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aicd.checkpoint import read_metrics
from aicd.config import TrainConfig
from aicd.data.jsonl import write_examples
from tests.core.test_train import TINY_NO_DROPOUT, _config, _examples, _state_dict
from tests.support.processes import assert_unchanged, descendants, kill, wait_gone

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_gloo_available(), reason="needs torch's gloo backend"
)


def _write_run(tmp_path: Path, name: str, **fields: object) -> Path:
    """A YAML config of a tiny run on a JSONL dataset, as a user writes it."""
    data = tmp_path / "train.jsonl"
    if not data.exists():
        write_examples(data, _examples(16))
    lines = [
        f"name: {name}",
        f"output_dir: {tmp_path / 'runs'}",
        f"model: '{TINY_NO_DROPOUT}'",
        f"dataset: {data}",
        "n_shots: 3",
        "max_length: 256",
        "lr: 3.0e-3",
        "warmup_ratio: 0",
        "mixed_precision: 'no'",
        *(f"{key}: {value}" for key, value in fields.items()),
    ]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _aicd_train(*args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """`aicd train ARGS`; `sigint_ignored` starts it as a shell's background job is (SIGINT inherited ignored)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aicd", "train", *args, "--no-progress"]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ignore
    )


def test_two_ddp_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    """2 processes × micro-batch 2 vs 1 process × micro-batch 4, global batch 8: the same loss at every
    step and the same final weights (fp32, 1e-5); rank 0 alone writes each metrics line once."""
    config = _write_run(
        tmp_path, "ddp", max_steps=6, batch_size=8, micro_batch_size=2, distributed="{num_processes: 2}"
    )
    proc = _aicd_train(str(config))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert out.count("trained 6 steps") == 1  # rank 0 reports, rank 1 does not

    from aicd.train import train

    single = _config(tmp_path, "one", model=TINY_NO_DROPOUT, batch_size=8, micro_batch_size=4, max_steps=6)
    ref = train(single, examples=_examples(16), progress=False)

    run_dir = tmp_path / "runs" / "ddp"
    got_m, ref_m = read_metrics(run_dir / "metrics.jsonl"), read_metrics(ref.run_dir / "metrics.jsonl")
    assert [m["step"] for m in got_m] == [1, 2, 3, 4, 5, 6]
    assert all(m["processes"] == 2 and m["episodes"] == 8 for m in got_m)
    assert [m["loss"] for m in got_m] == pytest.approx([m["loss"] for m in ref_m], rel=1e-5)
    assert [m["grad_norm"] for m in got_m] == pytest.approx([m["grad_norm"] for m in ref_m], rel=1e-5)
    assert ref_m[-1]["loss"] < 0.99 * ref_m[0]["loss"]  # it trained: equal numbers are not equal zeros
    ref_w, got_w = _state_dict(ref.final_dir), _state_dict(run_dir / "final")
    for key in ref_w:
        torch.testing.assert_close(got_w[key], ref_w[key], rtol=1e-5, atol=1e-5)


def _rank_pid(launcher: int, rank: int, timeout: float = 300) -> int:
    """The pid of the training process with RANK=rank among the launcher's descendants."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "aicd" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} process appeared")


def _wait_while_running(proc: subprocess.Popen, ready, poll: float = 0.05, timeout: float = 300) -> None:
    """Wait until `ready()` holds; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(poll)


KILL_STEPS = 60


def _write_run_to_kill(tmp_path: Path, name: str) -> Path:
    """A 2-process run long enough to be killed after its first checkpoint (one checkpoint kept)."""
    return _write_run(
        tmp_path,
        name,
        max_steps=KILL_STEPS,
        batch_size=4,
        micro_batch_size=1,
        save_every=2,
        keep_checkpoints=1,
        distributed="{num_processes: 2}",
    )


def _assert_resume_finishes_once(config: Path, run_dir: Path) -> None:
    """`--resume` reaches the final step, and metrics.jsonl has each step once (lines after the checkpoint
    resumed from were dropped)."""
    resumed = _aicd_train(str(config), "--resume")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"trained {KILL_STEPS} steps" in out
    steps = [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")]
    assert steps == list(range(1, KILL_STEPS + 1))


def test_killing_rank_1_fails_readably_and_resume_reaches_the_same_final_step(tmp_path):
    config = _write_run_to_kill(tmp_path, "killed")
    run_dir = tmp_path / "runs" / "killed"
    proc = _aicd_train(str(config))
    try:
        rank1 = _rank_pid(proc.pid, 1)
        _wait_while_running(proc, (run_dir / "checkpoint-2").is_dir)
        os.kill(rank1, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert not (run_dir / "final").exists(), "the run finished before rank 1 was killed"
    assert proc.returncode == 1
    last_line = err.strip().splitlines()[-1]
    assert "2-process run failed" in last_line and "continue with --resume" in last_line
    assert "checkpoint-" in last_line

    _assert_resume_finishes_once(config, run_dir)


def test_sigkilling_aicd_train_leaves_no_rank_running_and_resume_finishes_once(tmp_path):
    """`aicd train` SIGKILLed mid-run (the OOM killer, a lost terminal): its launcher and both ranks die with it
    (`aicd.parent_death`) instead of training on into the run directory; `--resume` then finishes the run from
    its last checkpoint, each step in metrics.jsonl once."""
    import psutil

    config = _write_run_to_kill(tmp_path, "orphans")
    run_dir = tmp_path / "runs" / "orphans"
    proc = _aicd_train(str(config))
    launched: list[int] = []
    try:
        ranks = [_rank_pid(proc.pid, 0), _rank_pid(proc.pid, 1)]
        launched = [psutil.Process(ranks[0]).ppid(), *ranks, *descendants(proc.pid)]
        _wait_while_running(proc, (run_dir / "checkpoint-2").is_dir)
        proc.kill()
        proc.wait(timeout=60)
        wait_gone(launched, what="the launcher and its ranks")
    finally:
        kill([proc.pid, *launched])
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # the ranks either still ran (above) or trained on to the end, unless they died with `aicd train`
    assert not (run_dir / "final").exists(), "the run reached its end after `aicd train` was killed"
    assert_unchanged(run_dir)

    _assert_resume_finishes_once(config, run_dir)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["distributed.num_processes=4096"], "distributed.num_processes"),
        (["distributed.strategy=horovod"], "distributed.strategy"),
        (["distributed.strategy=fsdp", "distributed.num_processes=2"], "distributed.strategy"),
        (["distributed.num_processes=2", "batch_size=6", "micro_batch_size=2"], "distributed.num_processes"),
        (["distributed.num_processes=2", "distributed.config_file=/nowhere.yaml"], "distributed.config_file"),
        (["distributed.strategy=deepspeed", "distributed.num_processes=2", "batch_size=8"], "batch_size"),
        (["distributed.strategy=fsdp", "eval_every=10"], "eval_every"),
    ],
)
def test_bad_distributed_settings_are_one_line_naming_the_field(tmp_path, aicd_cli, capsys, overrides, field):
    config = _write_run(tmp_path, "bad", max_steps=2, batch_size=4, micro_batch_size=1)
    code = aicd_cli("train", str(config), "--no-progress", *(a for o in overrides for a in ("--set", o)))
    err = capsys.readouterr().err
    assert code == 2 and field in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_deepspeed_without_the_package_names_the_field(tmp_path, aicd_cli, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a)
    )
    config = _write_run(tmp_path, "ds", max_steps=2, batch_size=2, micro_batch_size=1)
    overrides = ["--set", "distributed.strategy=deepspeed", "--set", "distributed.num_processes=2"]
    assert aicd_cli("train", str(config), "--no-progress", *overrides) == 2
    err = capsys.readouterr().err
    assert "distributed.strategy" in err and "pip install deepspeed" in err
    assert not (tmp_path / "runs").exists()


def test_train_called_in_one_process_for_two_is_refused_before_writing(tmp_path):
    from aicd.errors import ConfigError
    from aicd.train import train

    cfg = _config(tmp_path, "alone", distributed={"num_processes": 2})
    with pytest.raises(
        ConfigError, match=r"distributed\.num_processes: .* 2 process\(es\) but this run has 1"
    ):
        train(cfg, examples=_examples(8), progress=False)
    assert not cfg.run_dir.exists()


def test_launch_command_uses_accelerate_launch_with_the_shipped_config_files(tmp_path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    from aicd.launch import accelerate_config_file, launch_command

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for strategy, kind in (("fsdp", "FSDP"), ("deepspeed", "DEEPSPEED")):
        cfg = _config(
            tmp_path,
            "x",
            distributed={"num_processes": 8, "strategy": strategy},
            mixed_precision="auto",
            batch_size=16,
        )
        path = accelerate_config_file(cfg.distributed)
        assert path is not None and path.is_file()
        assert load_config_from_file(str(path)).distributed_type.name == kind  # a valid accelerate config
        if strategy == "fsdp":
            cmd = launch_command(cfg, tmp_path / "run.yaml", resume=True)
            assert cmd.argv[1:3] == ["-m", "accelerate.commands.launch"]
            assert cmd.argv[cmd.argv.index("--config_file") + 1] == str(path)
            assert cmd.argv[cmd.argv.index("--num_processes") + 1] == "8"
            assert cmd.argv[cmd.argv.index("--mixed_precision") + 1] == "bf16"
            assert cmd.argv[-5:] == ["-m", "aicd", "train", str(tmp_path / "run.yaml"), "--resume"]
            assert cmd.env == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("AICD_THREADS", "2")
    cmd = launch_command(_config(tmp_path, "cpu", distributed={"num_processes": 2}), tmp_path / "run.yaml")
    assert "--multi_gpu" in cmd.argv and cmd.env.pop("ACCELERATE_USE_CPU") == "true"
    # the command's 2 threads shared by its 2 CPU ranks, not 2 each (they would fight over the cores)
    assert cmd.env == dict.fromkeys(
        ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "AICD_THREADS"), "1"
    )


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "inherited-ignored"])
def test_ctrl_c_on_a_launched_run_checkpoints_every_rank_and_exits_130(tmp_path, sigint_ignored):
    """Ctrl-C reaches `aicd train` only (the launcher has its own session); it hands it to rank 0, whose
    stop flag every rank follows: one checkpoint holding every rank's RNG, and exit 130. Also when the
    command inherited SIGINT ignored (started from a script with `&`): it was then lost and the ranks
    trained on, as the one-process path never did."""
    config = _write_run(
        tmp_path,
        "ctrl-c",
        max_steps=100000,
        batch_size=4,
        micro_batch_size=1,
        distributed="{num_processes: 2}",
    )
    run_dir = tmp_path / "runs" / "ctrl-c"
    proc = _aicd_train(str(config), sigint_ignored=sigint_ignored)
    try:
        _wait_while_running(proc, lambda: read_metrics(run_dir / "metrics.jsonl"), poll=0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "continue with --resume" in out
    step = read_metrics(run_dir / "metrics.jsonl")[-1]["step"]
    checkpoints = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{step}"]
    assert {p.name for p in (run_dir / checkpoints[0]).glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }  # every rank's RNG, so the resumed ranks replay their dropout


def test_sigint_to_the_launchers_whole_group_still_checkpoints_every_rank(tmp_path):
    """The worker's way to stop a launched run: SIGINT to the process group of `launch_command`'s launcher.
    Each rank then gets SIGINT twice (the group's, then torchrun's shutdown) and must still checkpoint."""
    from aicd.config import load_config
    from aicd.launch import launch_command

    config = _write_run(
        tmp_path,
        "group",
        max_steps=100000,
        batch_size=4,
        micro_batch_size=1,
        distributed="{num_processes: 2}",
    )
    run_dir = tmp_path / "runs" / "group"
    cmd = launch_command(load_config(TrainConfig, config), config, progress=False)
    env = {**os.environ, **cmd.env, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd.argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_while_running(proc, lambda: read_metrics(run_dir / "metrics.jsonl"), poll=0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    step = read_metrics(run_dir / "metrics.jsonl")[-1]["step"]
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == [f"checkpoint-{step}"], err[-3000:]
    assert "KeyboardInterrupt" not in err
