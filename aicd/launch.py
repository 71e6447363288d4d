"""Starting one training run on several processes with accelerate's own launcher (`accelerate launch`).

`aicd train` calls `launch_command` when `distributed.num_processes > 1` and runs what it returns; the worker
can do the same for a run with `gpus > 1`. Rule for the number of processes: one per CUDA device present
(`num_processes ≤ torch.cuda.device_count()`); on a machine without a GPU, DDP over gloo CPU processes, at
most one per CPU core. FSDP and DeepSpeed need GPUs and take their settings from a standard accelerate
config file (`aicd/configs/accelerate/fsdp-full-shard.yaml`, `zero3.yaml`, or `distributed.config_file`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from aicd.config import DistributedSettings, TrainConfig
from aicd.errors import ConfigError

SHIPPED_CONFIGS = {"fsdp": "fsdp-full-shard.yaml", "deepspeed": "zero3.yaml"}


@dataclass
class LaunchCommand:
    """What to run: `subprocess.run(cmd.argv, env={**os.environ, **cmd.env})`."""

    argv: list[str]
    env: dict[str, str]


def accelerate_config_file(settings: DistributedSettings) -> Path | None:
    """The accelerate config file of the strategy: the user's, else the shipped one (none for DDP)."""
    if settings.config_file:
        return Path(settings.config_file)
    name = SHIPPED_CONFIGS.get(settings.strategy)
    return Path(str(files("aicd").joinpath("configs", "accelerate", name))) if name else None


def check_distributed(settings: DistributedSettings) -> None:
    """Refuse, naming the field, what this machine cannot run; before anything is written or started."""
    import torch

    n = settings.num_processes
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and n > gpus:
        raise ConfigError(f"distributed.num_processes: {n} processes but this machine has {gpus} GPU(s)")
    cores = os.cpu_count() or 1
    if not gpus and n > cores:
        raise ConfigError(
            f"distributed.num_processes: {n} CPU processes but this machine has no GPU and {cores} core(s)"
        )
    if settings.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "distributed.strategy: deepspeed needs the deepspeed package (pip install deepspeed)"
        )
    if settings.strategy != "ddp" and not gpus:
        raise ConfigError(f"distributed.strategy: {settings.strategy} needs GPUs; on CPU use ddp")
    path = accelerate_config_file(settings)
    if settings.config_file and (path is None or not path.is_file()):
        raise ConfigError(f"distributed.config_file: no such file: {settings.config_file}")


def inside_launch() -> bool:
    """True in a process that a launcher started (torchrun's and accelerate's WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch_command(
    config: TrainConfig, config_path: str | Path, *, resume: bool = False, progress: bool = True
) -> LaunchCommand:
    """`accelerate launch … -m aicd train CONFIG_PATH` for `config` (saved at `config_path`)."""
    import torch

    from aicd.threads import rank_thread_env
    from aicd.train_setup import resolve_mixed_precision

    settings = config.distributed
    check_distributed(settings)
    argv = [sys.executable, "-m", "accelerate.commands.launch"]
    argv += ["--num_processes", str(settings.num_processes), "--num_machines", "1"]
    argv += ["--mixed_precision", resolve_mixed_precision(config.mixed_precision), "--dynamo_backend", "no"]
    argv += ["--main_process_port", "0"]  # a free port: runs on one machine do not collide
    config_file = accelerate_config_file(settings)
    if config_file is not None:
        argv += ["--config_file", str(config_file)]
    elif settings.num_processes > 1:
        argv += ["--multi_gpu"]  # DDP; on CPU it becomes gloo processes (ACCELERATE_USE_CPU below)
    argv += ["-m", "aicd", "train", str(config_path)]
    argv += ["--resume"] if resume else []
    argv += [] if progress else ["--no-progress"]
    if torch.cuda.is_available():
        env = {}
    else:  # gloo ranks on the CPU share its cores
        env = {"ACCELERATE_USE_CPU": "true", **rank_thread_env(settings.num_processes)}
    return LaunchCommand(argv=argv, env=env)


def interrupt_rank0(launcher_pid: int) -> bool:
    """Send SIGINT to the rank-0 training process among the launcher's descendants (its stop flag is the
    one every rank follows); False if it is not there (yet)."""
    import signal

    import psutil

    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == "0" and child.environ().get("LOCAL_RANK") is not None:
                child.send_signal(signal.SIGINT)
                return True
        except psutil.Error:
            continue
    return False
