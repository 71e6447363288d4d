"""One run on N processes vs one process, same global batch, interleaved rounds: `aicd train` end to end.

What runs depends on the machine, and the report says which:
- N ≥ 2 GPUs: FSDP full-shard (aicd/configs/accelerate/fsdp-full-shard.yaml) on N GPUs vs 1 GPU;
- 1 GPU: DDP with 1 process, which is plain one-GPU training (nothing to scale to; the report says so);
- no GPU: DDP over gloo, N CPU processes vs 1 process, one thread each (a CPU process stands for a GPU).
Throughput is the training tokens/s that rank 0 logs per step (start-up excluded), median over the steps
after the first two; scaling efficiency = (tokens/s on N) / (N × tokens/s on 1).

    python bench/bench_distributed.py --out /tmp/bench-dist                 # then copy distributed.md to bench/results/
    python bench/bench_distributed.py --out /tmp/bench-dist --layers 12 --width 768 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_config(
    out: Path, name: str, args: argparse.Namespace, procs: int, micro: int, strategy: str
) -> Path:
    model = (
        f"tiny:gpt2?n_layer={args.layers}&n_embd={args.width}&n_head={max(1, args.width // 64)}"
        "&n_positions=1024&resid_pdrop=0&embd_pdrop=0&attn_pdrop=0"
    )
    config = {
        "name": name,
        "output_dir": str(out / "runs"),
        "model": model,
        "dataset": "arith",
        "limit": 512,
        "n_shots": 4,
        "max_length": 512,
        "max_steps": args.steps,
        "batch_size": args.batch,
        "micro_batch_size": micro,
        "lr": 1e-4,
        "mixed_precision": "auto",
        "distributed": {"num_processes": procs, "strategy": strategy},
    }
    path = out / f"{name}.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_once(config: Path, run_dir: Path, threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "aicd", "train", str(config), "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{config.name} failed:\n{res.stderr[-3000:]}")
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steady = lines[2:] or lines
    return {
        "tokens_per_s": statistics.median(m["tokens_per_s"] for m in steady),
        "wall_s": wall,
        "final_loss": lines[-1]["loss"],
        "threads": lines[-1].get("threads", threads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for runs and distributed.md")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8, help="global batch (episodes per optimizer step)")
    parser.add_argument("--micro", type=int, default=2, help="micro-batch per process on N processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--procs", type=int, default=0, help="N (default: GPUs, or 2 CPU processes)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        n, strategy, mode = (
            args.procs or gpus,
            "fsdp",
            f"FSDP full-shard on {args.procs or gpus} GPUs vs 1 GPU",
        )
    elif gpus == 1:
        n, strategy, mode = (
            1,
            "ddp",
            "one GPU only: DDP with 1 process, i.e. plain one-GPU training (no scaling to measure)",
        )
    else:
        n, strategy, mode = (
            args.procs or 2,
            "ddp",
            f"no GPU: DDP over gloo, {args.procs or 2} CPU processes vs 1",
        )
    cores = os.cpu_count() or 1
    # one thread per CPU process in both runs: a CPU process stands for one GPU (on a shared machine, two
    # threads in one process also fight each other, which would flatter the N-process run)
    variants = [("1 process", 1, args.micro * n, "ddp", 1)]
    if n > 1:
        variants.append((f"{n} processes", n, args.micro, strategy, 1))
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in variants}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for label, procs, micro, strat, threads in variants:
            name = f"r{r}-{procs}p"
            config = write_config(args.out, name, args, procs, micro, strat)
            results[label].append(run_once(config, args.out / "runs" / name, threads))
            print(label, results[label][-1], flush=True)
    load_after = os.getloadavg()

    one = statistics.median(x["tokens_per_s"] for x in results["1 process"])
    rows = []
    for label, procs, micro, _strat, threads in variants:
        tps = statistics.median(x["tokens_per_s"] for x in results[label])
        per_proc = tps / procs
        eff = tps / (procs * one)
        loss = results[label][-1]["final_loss"]
        wall = statistics.median(x["wall_s"] for x in results[label])
        rows.append(
            f"| {label} | {micro} | {threads} | {tps:,.0f} | {per_proc:,.0f} | {tps / one:.2f}× | {eff:.0%} "
            f"| {wall:.0f} | {loss:.4f} |"
        )
    device = torch.cuda.get_device_name(0) if gpus else f"CPU ({platform.machine()}, {cores} cores)"
    unit = "GPU" if gpus else "process"
    text = "\n".join(
        [
            "## Distributed training (one run on several processes)",
            "",
            f"Mode: {mode}. Device: {device}; torch {torch.__version__}; model GPT-2 {args.layers} × {args.width} "
            f"(random init); built-in `arith` episodes, n=4 shots; global batch {args.batch}, {args.steps} steps; "
            f"medians of {args.rounds} interleaved rounds; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after.",
            "",
            f"| run | micro-batch per {unit} | threads per {unit} | tokens/s | tokens/s per {unit} | vs 1 | "
            "scaling efficiency | wall s (with start-up) | final loss |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Both runs see the same episodes in the same optimizer steps, so their final losses agree (the "
            "exactness itself is a test: tests/core/test_distributed.py). On CPU each process has one thread and "
            "gloo all-reduces the gradients every step over shared memory; on a machine whose cores are busy "
            "with other work the ratio also measures how many cores were free. The target is GPUs.",
        ]
    )
    (args.out / "distributed.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
