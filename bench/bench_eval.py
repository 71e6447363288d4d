"""Batched k-shot evaluation vs one prompt at a time, on the same items, in one run.

Both sides run `aicd.evaluate.evaluate` (batch_size=B vs batch_size=1, i.e. one `generate` call per
prompt); the script prints items/s for each, the speed-up, and how many generations are identical
(they must all be: batching may change speed, never results). Writes a section of bench/results/eval.md.

    python bench/bench_eval.py --repeats 3            # CPU, tiny:gpt2, 32 SVAMP test items, 2-shot
    python bench/bench_eval.py --device cuda --items 256 --batch-size 64 \\
        --model "tiny:llama?hidden_size=512&num_hidden_layers=8&intermediate_size=1408"
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results" / "eval.md"


def _examples(args: argparse.Namespace):
    """SVAMP test items and train demonstrations (packaged samples or the shared data root)."""
    from aicd.data.loaders import load_examples

    items = load_examples(args.dataset, "test")
    pool = load_examples(args.dataset, "train")
    while len(items) < args.items:  # tiny sample sets: repeat questions under new ids
        items += [
            it.model_copy(update={"id": f"{it.id}#{len(items)}"}) for it in items[: args.items - len(items)]
        ]
    return items[: args.items], pool


def _timed(config, model, tok, items, pool):
    from aicd.evaluate import evaluate

    start, cpu = time.perf_counter(), time.process_time()
    result = evaluate(config, model=model, tokenizer=tok, examples=items, shot_examples=pool, progress=False)
    return result, time.perf_counter() - start, time.process_time() - cpu


def _write_section(label: str, body: str, path: Path = RESULTS) -> None:
    """Replace this run's `## label` section of eval.md, keeping the others."""
    head = (
        "# Evaluation benchmark\n\nBatched greedy evaluation vs one prompt at a time (bench/bench_eval.py).\n"
    )
    sections: dict[str, str] = {}
    if path.exists():
        for chunk in path.read_text(encoding="utf-8").split("\n## ")[1:]:
            title, _, rest = chunk.partition("\n")
            sections[title.strip()] = rest.strip("\n")
    sections[label] = body.strip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "".join(f"\n## {t}\n{b}\n" for t, b in sections.items()), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny:gpt2")
    parser.add_argument("--dataset", default="svamp")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=1, help="interleaved runs per mode; the median is shown"
    )
    parser.add_argument("--dtype", default=None, help="e.g. bfloat16 (default: the model's)")
    parser.add_argument("--label", default=None, help="section title in eval.md (default: device + model)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    import torch

    from aicd.config import EvalConfig
    from aicd.models import load_model_and_tokenizer

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model, tok = load_model_and_tokenizer(args.model, seed=0)
    if args.dtype:
        model.to(getattr(torch, args.dtype))
    model.to(args.device)
    items, pool = _examples(args)
    config = EvalConfig(
        model=args.model,
        dataset=args.dataset,
        shots=[args.shots],
        seeds=[0],
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )

    _timed(config.model_copy(update={"max_new_tokens": 2}), model, tok, items[:2], pool)  # warm-up
    walls: dict[str, list[float]] = {"batched": [], "single": []}
    cpus: dict[str, list[float]] = {"batched": [], "single": []}
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both sides alike
        batched, wall, cpu = _timed(config, model, tok, items, pool)
        walls["batched"].append(wall)
        cpus["batched"].append(cpu)
        single, wall, cpu = _timed(config.model_copy(update={"batch_size": 1}), model, tok, items, pool)
        walls["single"].append(wall)
        cpus["single"].append(cpu)
    t_batched, t_single = statistics.median(walls["batched"]), statistics.median(walls["single"])
    c_batched, c_single = statistics.median(cpus["batched"]), statistics.median(cpus["single"])

    same = sum(a.generation == b.generation for a, b in zip(batched.items, single.items, strict=True))
    new_tokens = sum(len(tok(r.generation, add_special_tokens=False)["input_ids"]) for r in batched.items)
    prompt_tokens = [len(tok(r.prompt, add_special_tokens=False)["input_ids"]) for r in batched.items]
    n = len(items)
    device = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({platform.machine()})"
    )
    rows = [
        ("batched", args.batch_size, t_batched, n / t_batched, c_batched),
        ("one at a time", 1, t_single, n / t_single, c_single),
    ]
    lines = [
        f"- device: {device}; model: `{args.model}` ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"params, dtype {next(model.parameters()).dtype}); torch {torch.__version__}",
        f"- {n} {args.dataset} test items, {args.shots}-shot prompts ({min(prompt_tokens)}–{max(prompt_tokens)} "
        f"tokens), greedy, max_new_tokens={args.max_new_tokens}; {new_tokens} tokens generated in all",
        "",
        f"Median of {args.repeats} interleaved run(s) per mode; process CPU seconds beside wall seconds.",
        "",
        "| mode | batch size | wall s | items/s | CPU s |",
        "|---|---:|---:|---:|---:|",
        *[f"| {m} | {b} | {t:.2f} | {r:.2f} | {c:.2f} |" for m, b, t, r, c in rows],
        "",
        f"**Speed-up (batched / one at a time): {t_single / t_batched:.2f}× wall, {c_single / c_batched:.2f}× CPU "
        f"time**; identical generations: "
        f"{same}/{n}; distinct generations: {len({r.generation for r in batched.items})}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        _write_section(args.label or f"{args.device}: {args.model}", text, args.results)
    if same != n:
        print(f"MISMATCH: {n - same} generations differ between batched and one-at-a-time", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
