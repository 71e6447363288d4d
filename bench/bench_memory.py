"""Peak memory of two training steps (forward, AICD loss, backward, AdamW) at a GPT-2 shape, batch 4.

    python bench/bench_memory.py --code . --mode new --layers 12 --width 768 --out /tmp/mem
    git worktree add --detach /tmp/old d0e979f   # the code before the memory cuts
    python bench/bench_memory.py --code /tmp/old --mode old --layers 12 --width 768 --out /tmp/mem

`--mode new` applies the cuts of aicd (one-kernel tanh-GELU, fused AdamW; the chunked LM head is in the
code's `batch_nll`); `old` runs the older code's `batch_nll` with transformers' Python GELU and foreach
AdamW. One fresh process per measurement: peak RSS is the process maximum (ru_maxrss). Appends one row
to OUT/memory.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--code", required=True, help="repository root whose aicd/ is measured")
    p.add_argument("--mode", choices=["old", "new"], required=True)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--out", required=True, help="folder; a row is appended to memory.md")
    args = p.parse_args()
    sys.path.insert(0, str(Path(args.code).resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from bench_training import build_model, grouped, gsm8k_episodes, load_bench_tokenizer

    from aicd.objectives import batch_nll, collate_episodes, reduce_loss

    torch.set_num_threads(1)
    tok, _ = load_bench_tokenizer()
    _, eps = gsm8k_episodes(tok, 4, limit=64, seed=1)
    model = build_model(tok, args.layers, args.width, "cpu")
    if args.mode == "new":
        from aicd.models import fuse_activations

        fuse_activations(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=args.mode == "new")
    batch = collate_episodes(grouped(eps, args.micro)[0], tok.pad_token_id)
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        nll, w = batch_nll(model, batch)
        reduce_loss(nll, w, "sum").backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    b, t = batch["input_ids"].shape
    k = int((batch["loss_weights"][:, 1:] > 0).sum())
    row = (
        f"| {args.layers} × {args.width} | {args.mode} | {b} × {t} | {k} | {peak:,.0f} | "
        f"{' / '.join(f'{s:.0f}' for s in seconds)} |"
    )
    print(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "memory.md").open("a", encoding="utf-8") as fh:
        fh.write(row + "\n")


if __name__ == "__main__":
    main()
