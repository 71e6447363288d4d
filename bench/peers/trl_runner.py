"""The project's training vs TRL's `SFTTrainer` (completion-only), side by side on the same model and episodes.

    python bench/peers/trl_runner.py --trl-python /tmp/aicd-peers/trl/bin/python --out /tmp/trl-bench
    (the peer venv comes from `bash bench/peers/setup_trl.sh`)

For each shape a random-init GPT-2 (GPT-2 tokenizer from shared/) is saved once to a work folder; GSM8K
4-shot episodes are built once with `aicd.episodes.build_episode`, so both sides train on identical token
ids: TRL gets `input_ids` + `completion_mask` (the last rationale: CondGen), the project trains CondGen and
AICD with `batch_nll` + `reduce_loss` + the fused AdamW of `aicd.train_setup` (the step of `aicd.train`,
without its logging and checkpoints; TRL runs without logging and saving too). Every side runs in a fresh
process per round, rounds interleaved (TRL, condgen, aicd, TRL, …); the first optimizer step of each
process is warm-up and not timed. Reported: real (non-padding) tokens/s, seconds per step, peak RSS,
load average. Each side batches its own way (TRL: shuffled; the project: length-grouped): real tokens/s
counts only the tokens both sides must process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SIDES = ("trl", "condgen", "aicd")


def write_workload(folder: Path, layers: int, width: int, n_episodes: int, args: argparse.Namespace) -> Path:
    """Save the model and the episodes both sides train on; returns the workload file."""
    import torch
    from bench_training import build_model, gsm8k_episodes, load_bench_tokenizer

    from aicd.episodes import build_episode
    from aicd.objectives import omega_weights

    tokenizer, tok_name = load_bench_tokenizer()
    if tok_name != "gpt2":
        sys.exit("trl_runner: the GPT-2 tokenizer (shared/datasets/tokenizers/gpt2/hf) is needed")
    model_dir = folder / f"gpt2-{layers}x{width}"
    if not (model_dir / "config.json").is_file():
        build_model(tokenizer, layers, width, "cpu").save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    shots, aicd_eps = gsm8k_episodes(tokenizer, args.n_shots, limit=n_episodes, seed=1)
    weights = omega_weights("paper", args.n_shots)
    episodes = []
    for s, ep in zip(shots[:n_episodes], aicd_eps, strict=False):
        cond = build_episode(tokenizer, s, "condgen", weights, max_length=1024)
        assert cond.input_ids == ep.input_ids, "condgen and aicd episodes must share their tokens"
        episodes.append(
            {
                "input_ids": ep.input_ids,
                "condgen": cond.loss_weights,
                "aicd": ep.loss_weights,
                "completion_mask": [int(w > 0) for w in cond.loss_weights],
            }
        )
    work = {
        "model_dir": str(model_dir),
        "episodes": episodes,
        "batch": args.batch,
        "steps": args.steps,
        "lr": 2e-5,
        "threads": args.threads,
        "seed": 0,
    }
    path = folder / f"workload-{layers}x{width}.json"
    path.write_text(json.dumps(work), encoding="utf-8")
    del torch
    return path


def project_side(workload_path: str, objective: str, out_path: str) -> None:
    """The project's training step on the workload (run in a fresh process of the project's python)."""
    import resource
    import time

    from aicd.threads import configure_threads

    work = json.loads(Path(workload_path).read_text(encoding="utf-8"))
    configure_threads(work["threads"])
    import torch

    from aicd.batching import make_batches
    from aicd.config import TrainConfig
    from aicd.models import load_model_and_tokenizer
    from aicd.objectives import batch_nll, collate_episodes, reduce_loss
    from aicd.train_setup import make_optimizer

    model, tokenizer = load_model_and_tokenizer(work["model_dir"], dtype=torch.float32)
    model.train()
    defaults = TrainConfig.model_fields
    config = SimpleNamespace(
        lr=work["lr"],
        weight_decay=defaults["weight_decay"].default,
        adam_betas=defaults["adam_betas"].default,
    )
    optimizer = make_optimizer(model, config)
    episodes = [
        SimpleNamespace(input_ids=e["input_ids"], loss_weights=e[objective]) for e in work["episodes"]
    ]
    order = make_batches(
        [len(e.input_ids) for e in episodes], work["batch"], "length_grouped", seed=work["seed"]
    )
    seconds, real = [], []
    for step in range(work["steps"]):
        mb = [episodes[i] for i in order[step % len(order)]]
        t0 = time.perf_counter()
        batch = collate_episodes(mb, tokenizer.pad_token_id)
        nll, weight = batch_nll(model, batch)
        loss = reduce_loss(nll, weight, "sum")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
        real.append(int(batch["attention_mask"].sum()))
    result = {
        "side": objective,
        "step_seconds": seconds,
        "real_tokens": real,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


def run_side(side: str, workload: Path, trl_python: str, folder: Path, tag: str) -> dict[str, Any]:
    out = folder / f"{tag}-{side}.json"
    if side == "trl":
        cmd = [trl_python, str(ROOT / "bench/peers/trl_sft.py"), str(workload), str(out)]
    else:
        cmd = [sys.executable, __file__, "--project-side", str(workload), side, str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if side == "trl":
        env.pop("PYTHONPATH")  # the peer imports nothing of the project
    load = os.getloadavg()[0]
    subprocess.run(cmd, check=True, env=env, cwd=folder)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["load"] = [load, os.getloadavg()[0]]  # 1-minute load average at start and end
    out.write_text(json.dumps(result), encoding="utf-8")
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Timed steps (the first of each process is warm-up): real tokens/s, median s/step, peak RSS."""
    secs = [s for r in runs for s in r["step_seconds"][1:]]
    toks = [t for r in runs for t in r["real_tokens"][1:]]
    return {
        "tokens_per_s": sum(toks) / sum(secs),
        "step_s": statistics.median(secs),
        "peak_mb": max(r["peak_rss_mb"] for r in runs),
        "steps": len(secs),
    }


def compare(trl_python: str, folder: Path, args: argparse.Namespace) -> list[str]:
    """Run every shape in args.shapes (rounds interleaved), then report; markdown lines."""
    for shape in args.shapes:
        layers, width = (int(x) for x in shape.split("x"))
        workload = write_workload(folder, layers, width, args.episodes, args)
        for rnd in range(args.rounds):
            for side in SIDES:
                result = run_side(side, workload, trl_python, folder, f"{shape}-r{rnd}")
                print(f"{shape} round {rnd} {side}: {result['step_seconds']}", flush=True)
    return report(folder, args)


def report(folder: Path, args: argparse.Namespace) -> list[str]:
    """Markdown lines from the per-process results kept in `folder` (also after an interrupted run)."""
    import torch
    import transformers

    versions: dict[str, str] = {}
    loads: list[float] = []
    table = [
        "| shape | side | real tokens/s | s/step (median) | peak RSS MB | timed steps | vs TRL |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    rounds_done = 0
    for shape in args.shapes:
        runs = {side: [] for side in SIDES}
        for rnd in range(args.rounds):
            found = {side: folder / f"{shape}-r{rnd}-{side}.json" for side in SIDES}
            if not all(p.is_file() for p in found.values()):
                continue  # a round counts only when all three sides finished it
            rounds_done = max(rounds_done, rnd + 1)
            for side, path in found.items():
                result = json.loads(path.read_text(encoding="utf-8"))
                runs[side].append(result)
                load = result.get("load")
                loads.extend(load if isinstance(load, list) else [load] if load is not None else [])
                versions.update(result.get("versions", {}))
        if not runs["trl"]:
            continue
        stats = {side: summarize(r) for side, r in runs.items()}
        ratio = {s: stats[s]["tokens_per_s"] / stats["trl"]["tokens_per_s"] for s in SIDES}
        step_ratio = stats["aicd"]["step_s"] / stats["condgen"]["step_s"]
        layers, width = shape.split("x")
        for side in SIDES:
            st = stats[side]
            table.append(
                f"| {layers} × {width} | {side} | {st['tokens_per_s']:,.0f} | {st['step_s']:.2f} | "
                f"{st['peak_mb']:,.0f} | {st['steps']} | {ratio[side]:.2f}× |"
            )
        notes.append(
            f"- {layers} × {width} ({len(runs['trl'])} round(s)): condgen **{ratio['condgen']:.2f}×** TRL "
            f"(target ≥ 3× {'✓' if ratio['condgen'] >= 3 else '✗'}), AICD {ratio['aicd']:.2f}× TRL in real "
            f"tokens/s; an AICD step takes **{step_ratio:.2f}×** a condgen step (target ≤ 1.25× "
            f"{'✓' if step_ratio <= 1.25 else '✗'}; AICD supervises every rationale, condgen the last one)."
        )
    load_text = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "not recorded"
    return [
        f"### (d) vs TRL `SFTTrainer` (completion-only), {args.episodes} GSM8K {args.n_shots}-shot episodes, "
        f"batch {args.batch}, fp32, {args.threads} thread(s) per side",
        "",
        f"Versions: project torch {torch.__version__}, transformers {transformers.__version__}; peer venv "
        + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
        + f". {platform.processor() or 'x86-64'} CPU, {os.cpu_count()} cores, 1-minute load average during the "
        f"runs {load_text} (shared machine). Up to {rounds_done} interleaved round(s) per shape (TRL, condgen, "
        f"AICD, each a fresh process), {args.steps} steps per process, the first untimed.",
        "",
        *table,
        "",
        *notes,
        "",
        "Peak RSS is each process's maximum resident memory (model, optimizer state, activations, Python). The "
        "project side never holds [B, T, vocab] logits (LM head on the supervised positions only, chunked, its "
        "gradient taken in the forward pass), uses torch's one-kernel tanh-GELU and fused AdamW; TRL's "
        "SFTTrainer computes full logits (and their entropy for its metrics).",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trl-python", required=True, help="python of the peer venv (setup_trl.sh prints it)")
    p.add_argument("--out", required=True, help="folder for trl.md and the work files")
    p.add_argument("--shapes", nargs="+", default=["4x256", "12x768"], help="GPT-2 LAYERSxWIDTH")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per process (the first untimed)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n-shots", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true", help="only rebuild trl.md from OUT/work's results")
    return p.parse_args(argv)


def main() -> None:
    if sys.argv[1:2] == ["--project-side"]:
        project_side(*sys.argv[2:5])
        return
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"  # model folders, workloads and each process's raw result (kept for inspection)
    work.mkdir(exist_ok=True)
    lines = report(work, args) if args.report_only else compare(args.trl_python, work, args)
    text = "\n".join(lines) + "\n"
    (out / "trl.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
