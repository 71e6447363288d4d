"""Training benchmarks, each measured side by side in one run (interleaved repeats, medians).

(a) AICD supervises all n rationales of an episode in ONE forward/backward pass. The alternative that gives
    the same supervision is CondGen expanded into n sequences (sequence i = shots 1..i, loss on rationale i).
    Reported: rationale-tokens/s of AICD ÷ that of the expansion (target ≥ 2.2×), both with the shipped loss
    (LM head on the supervised positions only) and with full [B, T, vocab] logits. The ratio depends on how
    the decoder's cost per token compares with the LM head's cost per supervised token, so the FLOP split of
    the benchmarked shape is printed with it.
(b) The AICD loss (`batch_nll` + `reduce_loss`, float32 NLL on the supervised positions) vs the plain causal-LM
    loss (`model(..., labels=...)`) on the same batch: step-time overhead (target ≤ 3%); also the weighted NLL
    taken from full logits, which isolates the cost of the weighting itself.
(c) Real-token fraction of GSM8K-length episodes (gold rationales, n=4) with length-grouped micro-batches
    vs naive shuffled padding (target ≥ 95%).

(d) vs TRL's SFTTrainer (completion-only) on the same model and episodes, with --trl-python (a venv made by
    bench/peers/setup_trl.sh): real tokens/s, s/step and peak memory per shape (bench/peers/trl_runner.py).

    python bench/bench_training.py --out /tmp/bench                  # CPU, GPT-2-small shape (12 x 768)
    python bench/bench_training.py --out /tmp/bench --only-peers --trl-python /tmp/aicd-peers/trl/bin/python
    python bench/bench_training.py --layers 2 --width 128 --episodes 8 --repeats 5 --out /tmp/bench-toy
    python bench/bench_training.py --device cuda --layers 12 --width 768 --episodes 64 --micro 8 --out /tmp/b

Writes OUT/training.md; copy it to bench/results/ and run bench/assemble.py to publish it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aicd.batching import make_batches, real_token_fraction  # noqa: E402
from aicd.episodes import Episode, build_episode, sample_episode_shots  # noqa: E402
from aicd.objectives import (  # noqa: E402
    batch_nll,
    collate_episodes,
    omega_weights,
    reduce_loss,
    weighted_nll,
)

GPT2_TOKENIZER_DIRS = [
    Path(os.environ.get("AICD_GPT2_TOKENIZER", "/nonexistent")),
    ROOT.parent / "shared/datasets/tokenizers/gpt2/hf",
    ROOT / "shared/datasets/tokenizers/gpt2/hf",
    Path("/work/shared/datasets/tokenizers/gpt2/hf"),
]


def load_bench_tokenizer() -> tuple[Any, str]:
    """GPT-2 BPE from the shared folder if present (realistic lengths), else the byte-level ByT5."""
    for path in GPT2_TOKENIZER_DIRS:
        if (path / "vocab.json").is_file():
            from transformers import GPT2Tokenizer

            tok = GPT2Tokenizer.from_pretrained(str(path))
            tok.pad_token = tok.eos_token
            return tok, "gpt2"
    from aicd.models import tiny_tokenizer

    return tiny_tokenizer(), "byt5"


def build_model(tokenizer: Any, layers: int, width: int, device: str) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=layers,
        n_embd=width,
        n_head=max(1, width // 64),
        n_positions=1024,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).to(device).train()


def gsm8k_episodes(
    tokenizer: Any, n_shots: int, limit: int | None, seed: int = 0
) -> tuple[list, list[Episode]]:
    from aicd.data.loaders import load_examples

    examples = load_examples("gsm8k", "train", limit=limit, seed=seed)
    shots = sample_episode_shots(examples, n_shots, seed=seed)
    weights = omega_weights("paper", n_shots)
    cache: dict[str, list[int]] = {}
    episodes = [build_episode(tokenizer, s, "aicd", weights, max_length=1024, cache=cache) for s in shots]
    return shots, episodes


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _autocast(device: str):
    return (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device == "cuda"
        else torch.autocast("cpu", enabled=False)
    )


def full_logits_nll(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same weighted NLL taken from the full [B, T, vocab] logits (what `batch_nll` does for models
    outside its plain-head list)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return weighted_nll(logits, batch["input_ids"], batch["loss_weights"]), batch["loss_weights"][:, 1:].sum(
        1
    )


def time_aicd_pass(
    model: Any, micro_batches: list[list[Episode]], device: str, pad_id: int, nll_fn: Any = batch_nll
) -> float:
    """Forward + AICD loss + backward over every micro-batch (one optimizer step's worth of work)."""
    n = sum(len(mb) for mb in micro_batches)
    _sync(device)
    t0 = time.perf_counter()
    for mb in micro_batches:
        batch = {k: v.to(device) for k, v in collate_episodes(mb, pad_id).items()}
        with _autocast(device):
            nll, w = nll_fn(model, batch)
            loss = reduce_loss(nll, w, "sum", n_episodes=n)
        loss.backward()
    _sync(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def flop_split(model: Any) -> tuple[float, float]:
    """(decoder MFLOP per token, LM head MFLOP per supervised token): forward weight matmuls of the GPT-2
    blocks and of the head (attention scores, which grow with length, are left out)."""
    head = model.get_output_embeddings().weight
    decoder = sum(p.numel() for p in model.transformer.h.parameters() if p.dim() == 2)
    return 2 * decoder / 1e6, 2 * head.numel() / 1e6


def time_lm_pass(model: Any, micro_batches: list[list[Episode]], device: str, pad_id: int) -> float:
    """The same batches through HF's built-in causal-LM loss (labels = input_ids, padding ignored)."""
    _sync(device)
    t0 = time.perf_counter()
    for mb in micro_batches:
        batch = {k: v.to(device) for k, v in collate_episodes(mb, pad_id).items()}
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        with _autocast(device):
            loss = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
            ).loss
        loss.backward()
    _sync(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def grouped(episodes: list[Episode], micro: int, seed: int = 0) -> list[list[Episode]]:
    lengths = [len(ep) for ep in episodes]
    return [[episodes[i] for i in mb] for mb in make_batches(lengths, micro, "length_grouped", seed=seed)]


def supervised_tokens(episodes: list[Episode]) -> int:
    return sum(sum(1 for w in ep.loss_weights[1:] if w > 0) for ep in episodes)


def interleaved(fns: dict[str, Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per function, runs interleaved A B A B … so machine noise hits both alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--layers", type=int, default=12, help="GPT-2 layers (default: GPT-2-small shape)")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--episodes", type=int, default=4, help="episodes timed in (a) and (b)")
    parser.add_argument("--micro", type=int, default=4, help="micro-batch size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-shots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--only-b", action="store_true", help="time only the loss variants of (b)")
    parser.add_argument("--out", required=True, help="folder to write training.md into")
    parser.add_argument("--trl-python", help="python of a TRL venv (bench/peers/setup_trl.sh): adds (d)")
    parser.add_argument("--only-peers", action="store_true", help="only (d); needs --trl-python")
    parser.add_argument("--only-step-ratio", action="store_true", help="only (e): AICD vs condgen step")
    parser.add_argument("--peer-shapes", nargs="+", default=["12x768", "4x256"], help="(d): LAYERSxWIDTH")
    parser.add_argument("--peer-rounds", type=int, default=2, help="(d): interleaved rounds per shape")
    parser.add_argument("--peer-steps", type=int, default=3, help="(d): steps per process, the first untimed")
    args = parser.parse_args()
    if args.threads:
        from aicd.threads import configure_threads

        configure_threads(args.threads)
    if args.only_peers:
        if not args.trl_python:
            sys.exit("--only-peers needs --trl-python")
        _write(Path(args.out), peer_lines(args))
        return
    if args.only_step_ratio:
        _write(Path(args.out), step_ratio_lines(args))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device")

    tokenizer, tok_name = load_bench_tokenizer()
    pad_id = tokenizer.pad_token_id or 0
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    device_name = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.processor() or 'x86-64'}, {torch.get_num_threads()} threads)"
    )
    say(
        f"## Training (CPU, GPT-2 shape {args.layers} × {args.width})"
        if args.device == "cpu"
        else "## Training"
    )
    say()
    say(
        f"Device: {device_name}; torch {torch.__version__}; tokenizer {tok_name}; model GPT-2 "
        f"{args.layers} layers × {args.width} wide (random init, {'bf16 autocast' if args.device == 'cuda' else 'fp32'}); "
        f"micro-batch {args.micro}; medians of {args.repeats} interleaved repeats."
    )
    say()

    if args.only_b:
        model = build_model(tokenizer, args.layers, args.width, args.device)
        _, episodes = gsm8k_episodes(tokenizer, args.n_shots, limit=args.episodes, seed=1)
        mb = grouped(episodes, args.micro)
        t = interleaved(
            {
                "aicd": lambda: time_aicd_pass(model, mb, args.device, pad_id),
                "lm": lambda: time_lm_pass(model, mb, args.device, pad_id),
                "full": lambda: time_aicd_pass(model, mb, args.device, pad_id, full_logits_nll),
            },
            args.repeats,
        )
        print({k: round(v / t["lm"] - 1, 4) for k, v in t.items()}, t)
        return

    # (c) first: no model needed, uses the whole GSM8K train split
    t0 = time.perf_counter()
    _, all_eps = gsm8k_episodes(tokenizer, args.n_shots, limit=None)
    lengths = [len(ep) for ep in all_eps]
    say(
        f"### (c) Padding: GSM8K train episodes (n={args.n_shots}, {len(all_eps)} episodes, "
        f"mean {statistics.mean(lengths):.0f} tokens, min {min(lengths)}, max {max(lengths)}; built in "
        f"{time.perf_counter() - t0:.1f}s)"
    )
    say()
    say("| micro-batch | length-grouped real-token fraction | naive real-token fraction | target |")
    say("|---|---|---|---|")
    fracs = {}
    for micro in (4, 8, 16):
        g = real_token_fraction(lengths, make_batches(lengths, micro, "length_grouped", seed=0))
        n = real_token_fraction(lengths, make_batches(lengths, micro, "naive", seed=0))
        fracs[micro] = g
        say(f"| {micro} | {g:.1%} | {n:.1%} | ≥ 95% {'✓' if g >= 0.95 else '✗'} |")
    say()

    model = build_model(tokenizer, args.layers, args.width, args.device)
    shots, episodes = gsm8k_episodes(tokenizer, args.n_shots, limit=args.episodes, seed=1)
    shots, episodes = shots[: args.episodes], episodes[: args.episodes]

    # (a) AICD one pass vs CondGen expanded into n sequences
    weights = omega_weights("paper", args.n_shots)
    expanded = [
        build_episode(tokenizer, s[: i + 1], "condgen", weights[: i + 1], max_length=1024)
        for s in shots
        for i in range(len(s))
    ]
    tok_aicd, tok_exp = supervised_tokens(episodes), supervised_tokens(expanded)
    mb_aicd, mb_exp = grouped(episodes, args.micro), grouped(expanded, args.micro)
    dev, pad = args.device, pad_id
    times = interleaved(
        {
            "aicd": lambda: time_aicd_pass(model, mb_aicd, dev, pad),
            "expanded": lambda: time_aicd_pass(model, mb_exp, dev, pad),
            "aicd_full": lambda: time_aicd_pass(model, mb_aicd, dev, pad, full_logits_nll),
            "expanded_full": lambda: time_aicd_pass(model, mb_exp, dev, pad, full_logits_nll),
        },
        args.repeats,
    )
    ratio_a = (tok_aicd / times["aicd"]) / (tok_exp / times["expanded"])
    ratio_full = (tok_aicd / times["aicd_full"]) / (tok_exp / times["expanded_full"])
    decoder_mflop, head_mflop = flop_split(model)
    n_aicd, n_exp = sum(map(len, episodes)), sum(map(len, expanded))
    flop_ratio = (n_exp * decoder_mflop + tok_exp * head_mflop) / (
        n_aicd * decoder_mflop + tok_aicd * head_mflop
    )
    say(
        f"### (a) AICD one pass vs CondGen expanded into n={args.n_shots} sequences ({len(episodes)} episodes)"
    )
    say()
    say(
        "| | sequences | tokens processed | supervised rationale tokens | fwd+bwd s (shipped loss) | "
        "rationale tokens/s | fwd+bwd s (full logits) | rationale tokens/s |"
    )
    say("|---|---|---|---|---|---|---|---|")
    for label, n_seq, n_tok, sup, key in (
        ("AICD (one pass)", len(episodes), n_aicd, tok_aicd, "aicd"),
        ("CondGen expanded", len(expanded), n_exp, tok_exp, "expanded"),
    ):
        say(
            f"| {label} | {n_seq} | {n_tok} | {sup} | {times[key]:.3f} | {sup / times[key]:,.0f} | "
            f"{times[key + '_full']:.3f} | {sup / times[key + '_full']:,.0f} |"
        )
    say()
    say(
        f"Ratio: **{ratio_a:.2f}×** rationale-tokens/s with the shipped loss (target ≥ 2.2× "
        f"{'✓' if ratio_a >= 2.2 else '✗'}); {ratio_full:.2f}× when both compute full logits. FLOP split of this "
        f"shape: decoder {decoder_mflop:.1f} MFLOP per token, LM head {head_mflop:.1f} MFLOP per supervised "
        f"token, so the weight-matmul FLOP ratio of the two is {flop_ratio:.2f}×; it approaches the token ratio "
        f"{n_exp / n_aicd:.2f}× when the decoder dominates (real students), and per-sequence costs add to it."
    )
    say()

    # (b) AICD loss vs plain causal-LM loss on the same batches
    times_b = interleaved(
        {
            "aicd": lambda: time_aicd_pass(model, mb_aicd, dev, pad),
            "lm": lambda: time_lm_pass(model, mb_aicd, dev, pad),
            "full": lambda: time_aicd_pass(model, mb_aicd, dev, pad, full_logits_nll),
        },
        args.repeats * 2,
    )
    overhead = times_b["aicd"] / times_b["lm"] - 1
    weighting = times_b["full"] / times_b["lm"] - 1
    say(f"### (b) AICD loss vs plain causal-LM loss (same {len(episodes)} episodes, fwd+bwd)")
    say()
    say("| loss | step s |")
    say("|---|---|")
    say(
        f"| AICD `batch_nll` + `reduce_loss` (LM head on supervised positions only) | {times_b['aicd']:.3f} |"
    )
    say(f"| HF `model(..., labels=...)` | {times_b['lm']:.3f} |")
    say(f"| AICD weighted NLL from full logits (the weighting alone) | {times_b['full']:.3f} |")
    say()
    say(
        f"Overhead of the AICD loss: **{overhead:+.1%}** (target ≤ +3% {'✓' if overhead <= 0.03 else '✗'}); "
        f"the weighting alone, on full logits: {weighting:+.1%}."
    )
    say()
    if args.trl_python:
        lines.extend(peer_lines(args))
    say(f"Command: `python bench/bench_training.py {' '.join(sys.argv[1:])}`".rstrip())
    _write(Path(args.out), lines)


def peer_lines(args: argparse.Namespace) -> list[str]:
    """Section (d): the project vs TRL, run by bench/peers/trl_runner.py in its own processes."""
    sys.path.insert(0, str(ROOT / "bench/peers"))
    import trl_runner

    peer_args = trl_runner.parse_args(
        ["--trl-python", args.trl_python, "--out", args.out, "--threads", str(args.threads or 1)]
        + ["--rounds", str(args.peer_rounds), "--steps", str(args.peer_steps), "--batch", str(args.micro)]
        + ["--n-shots", str(args.n_shots), "--shapes", *args.peer_shapes]
    )
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    return [*trl_runner.compare(args.trl_python, work, peer_args), ""]


def step_ratio_lines(args: argparse.Namespace) -> list[str]:
    """Section (e): an AICD step vs a condgen step on the same episodes (same tokens, different weights),
    forward + loss + backward, interleaved in one process so machine load hits both alike."""
    from aicd.models import fuse_activations

    tokenizer, _ = load_bench_tokenizer()
    pad_id = tokenizer.pad_token_id or 0
    model = fuse_activations(build_model(tokenizer, args.layers, args.width, args.device))
    shots, aicd_eps = gsm8k_episodes(tokenizer, args.n_shots, limit=args.episodes, seed=1)
    weights = omega_weights("paper", args.n_shots)
    cond_eps = [
        build_episode(tokenizer, s, "condgen", weights, max_length=1024) for s in shots[: len(aicd_eps)]
    ]
    order = make_batches([len(e) for e in aicd_eps], args.micro, "length_grouped", seed=0)
    mb = {
        "aicd": [[aicd_eps[i] for i in b] for b in order],
        "condgen": [[cond_eps[i] for i in b] for b in order],
    }
    dev = args.device
    t = interleaved({k: (lambda k=k: time_aicd_pass(model, mb[k], dev, pad_id)) for k in mb}, args.repeats)
    sup = {k: supervised_tokens([e for b in v for e in b]) for k, v in mb.items()}
    ratio = t["aicd"] / t["condgen"]
    load = os.getloadavg()[0]
    return [
        f"### (e) AICD step vs condgen step, GPT-2 {args.layers} × {args.width}, {len(aicd_eps)} episodes, "
        f"micro-batch {args.micro}",
        "",
        "| objective | supervised tokens | fwd+bwd s (median) |",
        "|---|---|---|",
        f"| condgen (last rationale) | {sup['condgen']} | {t['condgen']:.2f} |",
        f"| AICD (every rationale) | {sup['aicd']} | {t['aicd']:.2f} |",
        "",
        f"An AICD step takes **{ratio:.2f}×** a condgen step (target ≤ 1.25× {'✓' if ratio <= 1.25 else '✗'}); "
        f"same tokens and batches, medians of {args.repeats} interleaved repeats in one process, "
        f"{torch.get_num_threads()} thread(s), load average {load:.1f} at the end.",
        "",
    ]


def _write(out: Path, lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "training.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
