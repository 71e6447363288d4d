"""Evaluation throughput, side by side in one run: generation vs lm-evaluation-harness, and the openai backend.

    bench/peers/setup_lm_eval.sh /tmp/peers-lm-eval             # once: lm-eval in its own virtualenv
    OMP_NUM_THREADS=1 python bench/bench_eval.py OUT --peer-python /tmp/peers-lm-eval/bin/python
    python bench/assemble.py                                     # after copying OUT/eval.md to bench/results/

Sections (each replaces its own `## …` part of OUT/eval.md):

1. **Generation alone, aicd `hf` scheduler vs lm-eval's HF backend** (`HFLM.generate_until`, run by the peer
   venv's python in a subprocess, timed around `generate_until` only), on the same saved checkpoint, the same
   prompt texts tokenized the same way (`add_special_tokens=False` / lm-eval's `add_bos_token=False`), the same
   stop string, greedy, interleaved rounds; asserts identical chains. The student is a tiny byte-level GPT-2
   trained here for a few minutes (cached in OUT/student; default on the templated `arith` task, which it
   learns that fast) so chains end at different lengths, as real ones do.
2. **`openai` backend vs `hf` backend** on that student served by a local completions server (tests/support):
   items/s and identical answers.
3. **`openai` backend at concurrency 32 against a server with 100 ms latency**: items/s against the ideal
   32 / 0.1 s; the target is ≥ 0.8 × that.
4. **`openai` backend vs lm-eval's `local-completions`** on that server, same text prompts, interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HEAD = "# Evaluation benchmark\n\nbench/bench_eval.py: generation vs lm-evaluation-harness, and the openai backend.\n"


def write_section(path: Path, label: str, body: str) -> None:
    """Replace this run's `## label` section of the markdown file, keeping the others."""
    sections: dict[str, str] = {}
    if path.exists():
        for chunk in path.read_text(encoding="utf-8").split("\n## ")[1:]:
            title, _, rest = chunk.partition("\n")
            sections[title.strip()] = rest.strip("\n")
    sections[label] = body.strip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + "".join(f"\n## {t}\n{b}\n" for t, b in sections.items()), encoding="utf-8")


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def student(out: Path, steps: int, dataset: str) -> Path:
    """A tiny byte-level GPT-2 that has learnt the Q/A format (so it stops at `Question:`), cached in OUT."""
    final = out / "student" / "final"
    if (final / "config.json").exists():
        return final
    from aicd.config import TrainConfig
    from aicd.train import train

    cfg = TrainConfig(
        name="student",
        output_dir=str(out),
        model="tiny:gpt2",
        dataset=dataset,
        objective="lm",
        n_shots=2,
        max_steps=steps,
        lr=5e-3,
        batch_size=8,
        micro_batch_size=8,
        max_length=400,
        warmup_ratio=0.05,
        mixed_precision="no",
    )
    train(cfg, progress=False)
    return final


def prompt_texts(dataset: str, n: int) -> list[str]:
    """0-shot prompts of the first n test items (repeated under new ids when the split is smaller)."""
    from aicd.config import TemplateConfig
    from aicd.data.loaders import load_examples
    from aicd.prompts import build_prompt

    items = load_examples(dataset, "test")
    items = (items * (n // len(items) + 1))[:n]
    return [build_prompt(ex.question, [], TemplateConfig()).text for ex in items]


def run_peer(
    args: argparse.Namespace, model_dir: Path, prompt_file: Path, batch_size: int, threads: int
) -> dict:
    """lm-eval's HFLM.generate_until in the peer venv (a subprocess): its chains, seconds and versions."""
    peer_out = prompt_file.with_name(f"peer-{batch_size}.json")
    subprocess.run(
        [
            args.peer_python,
            str(ROOT / "bench" / "peers" / "lm_eval_generate.py"),
            "--model",
            str(model_dir),
            "--prompts",
            str(prompt_file),
            "--out",
            str(peer_out),
            "--batch-size",
            str(batch_size),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--stop",
            "Question:",
            "--threads",
            str(threads),
        ],  # fmt: skip
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    return json.loads(peer_out.read_text(encoding="utf-8"))


def section_lm_eval(args: argparse.Namespace, model_dir: Path, prompts: list[str]) -> tuple[str, bool]:
    """Both sides at every batch size in --batch-sizes, rounds interleaved; ratios at the same batch size
    and with each side at its own best batch size."""
    import torch

    from aicd.generation.hf import generate
    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(model_dir))
    model.eval()
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    stop = "Question:"
    sizes = args.batch_sizes
    generate(model, tok, ids[:2], batch_size=2, max_new_tokens=4, stop=(stop,))  # warm-up
    ours_t: dict[int, list[float]] = {b: [] for b in sizes}
    peer_t: dict[int, list[float]] = {b: [] for b in sizes}
    ours_cpu: dict[int, list[float]] = {b: [] for b in sizes}  # CPU seconds: steadier than wall on a busy box
    peer_cpu: dict[int, list[float]] = {b: [] for b in sizes}
    same: dict[int, int] = {}
    versions: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = Path(tmp) / "prompts.json"
        prompt_file.write_text(json.dumps(prompts), encoding="utf-8")
        for _ in range(args.rounds):  # interleaved: machine load hits both sides alike
            for b in sizes:
                start, cpu = time.perf_counter(), time.process_time()
                chains = generate(
                    model, tok, ids, batch_size=b, max_new_tokens=args.max_new_tokens, stop=(stop,)
                )
                ours_t[b].append(time.perf_counter() - start)
                ours_cpu[b].append(time.process_time() - cpu)
                peer = run_peer(args, model_dir, prompt_file, b, torch.get_num_threads())
                peer_t[b].append(peer["seconds"])
                peer_cpu[b].append(peer["cpu_seconds"])
                versions = peer["versions"]
                agree = sum(a == c.strip() for a, c in zip(chains, peer["chains"], strict=True))
                same[b] = min(same.get(b, agree), agree)
    n_tok = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in chains]
    capped = sum(t >= args.max_new_tokens - 1 for t in n_tok)
    med = statistics.median
    t_ours, t_peer = {b: med(t) for b, t in ours_t.items()}, {b: med(t) for b, t in peer_t.items()}
    c_ours, c_peer = {b: med(t) for b, t in ours_cpu.items()}, {b: med(t) for b, t in peer_cpu.items()}
    n = len(prompts)
    rows = []
    for b in sizes:
        for side, times, wall, cpu in (
            ("aicd hf (slot scheduler)", ours_t[b], t_ours[b], c_ours[b]),
            ("lm-eval HFLM.generate_until", peer_t[b], t_peer[b], c_peer[b]),
        ):
            rounds = ", ".join(f"{t:.1f}" for t in times)
            rows.append(f"| {b} | {side} | {wall:.2f} | {rounds} | {n / wall:.2f} | {cpu:.2f} |")

    def ratios(ours: dict[int, float], peer: dict[int, float], unit: str) -> list[str]:
        best_ours, best_peer = min(sizes, key=ours.get), min(sizes, key=peer.get)
        same_batch = "; ".join(f"batch {b}: {peer[b] / ours[b]:.2f}×" for b in sizes)
        return [
            f"- {unit}, same batch size: {same_batch}",
            f"- {unit}, each side at its best batch size: aicd (batch {best_ours}) / lm-eval (batch {best_peer}) "
            f"= **{peer[best_peer] / ours[best_ours]:.2f}×**",
        ]

    body = "\n".join(
        [
            f"- {n} {args.dataset} test prompts, 0-shot, greedy, max_new_tokens={args.max_new_tokens}, "
            f"stop `{stop}`, batch sizes {', '.join(map(str, sizes))} on both sides; student: tiny byte-level GPT-2 "
            f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, fp32) trained {args.train_steps} "
            f"steps on {args.train_dataset} here; {capped}/{n} chains ran to the token cap",
            f"- versions: lm-eval {versions['lm_eval']} (own venv, bench/peers/setup_lm_eval.sh), torch "
            f"{versions['torch']}, transformers {versions['transformers']}; threads {torch.get_num_threads()}; "
            f"{platform.machine()} CPU; load average before/after: {args.load_before} / {load_average()}",
            "",
            f"Median of {args.rounds} interleaved round(s); seconds inside generation only (model loading excluded). "
            "CPU seconds (the process's, one thread) are steadier than wall seconds when other jobs share the cores.",
            "",
            "| batch | side | wall s (median) | wall, all rounds | items/s | CPU s (median) |",
            "|---:|---|---:|---:|---:|---:|",
            *rows,
            "",
            "aicd / lm-eval (target ≥ 3×):",
            *ratios(t_ours, t_peer, "wall"),
            *ratios(c_ours, c_peer, "CPU"),
            "",
            f"**identical chains at every batch size: {min(same.values())}/{n}** "
            f"({', '.join(f'batch {b}: {same[b]}' for b in sizes)})",
        ]
    )
    return body, min(same.values()) == n


def section_openai_vs_hf(args: argparse.Namespace, model_dir: Path) -> tuple[str, bool]:
    from aicd.config import EvalConfig
    from aicd.evaluate import evaluate
    from aicd.models import load_model_and_tokenizer
    from tests.support.completions_server import CompletionsServer

    model, tok = load_model_and_tokenizer(str(model_dir))
    model.eval()
    cfg = EvalConfig(
        model=str(model_dir),
        dataset=args.dataset,
        limit=args.openai_items,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    server = CompletionsServer(model=model, tokenizer=tok, served_name="student").start()
    walls: dict[str, list[float]] = {"hf": [], "openai": []}
    results = {}
    try:
        remote_cfg = cfg.model_copy(
            update={"backend": "openai", "base_url": server.base_url, "served_model": "student"}
        )
        for _ in range(args.rounds):
            for name, c in (("hf", cfg), ("openai", remote_cfg)):
                start = time.perf_counter()
                kwargs = {"model": model, "tokenizer": tok} if name == "hf" else {}
                results[name] = evaluate(c, progress=False, **kwargs)
                walls[name].append(time.perf_counter() - start)
    finally:
        server.close()
    hf, remote = results["hf"], results["openai"]
    same_chain = sum(a.generation == b.generation for a, b in zip(hf.items, remote.items, strict=True))
    same_answer = sum(a.extracted == b.extracted for a, b in zip(hf.items, remote.items, strict=True))
    n = len(hf.items)
    t_hf, t_remote = statistics.median(walls["hf"]), statistics.median(walls["openai"])
    body = "\n".join(
        [
            f"- {n} {args.dataset} test items, 0-shot, max_new_tokens={args.max_new_tokens}; the same student; the "
            "server (tests/support/completions_server.py, uvicorn in this process) generates one request at a time "
            "through the hf backend, so this measures equality and protocol overhead, not a serving engine",
            f"- load average before/after: {args.load_before} / {load_average()}",
            "",
            "| backend | wall s (median) | items/s |",
            "|---|---:|---:|",
            f"| hf (in-process, batch {args.batch_size}) | {t_hf:.2f} | {n / t_hf:.2f} |",
            f"| openai (local server, concurrency 32) | {t_remote:.2f} | {n / t_remote:.2f} |",
            "",
            f"**identical chains: {same_chain}/{n}; identical answers: {same_answer}/{n}; accuracy hf "
            f"{hf.rows[0]['accuracy']:.3f}, openai {remote.rows[0]['accuracy']:.3f}**",
        ]
    )
    return body, same_chain == n


@contextlib.contextmanager
def canned_server(latency: float) -> Iterator[str]:
    """The canned completions server in its own process (as a real server would be); yields its base_url."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.completions_server",
            "--port",
            str(port),
            "--latency",
            str(latency),
        ],
        cwd=ROOT,
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base_url}/models", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def section_concurrency(args: argparse.Namespace) -> tuple[str, bool]:
    from aicd.generation.openai_compat import OpenAIBackend
    from tests.support.completions_server import CANNED_NAME

    latency, concurrency, n = 0.1, 32, args.concurrency_items
    with canned_server(latency) as base_url:
        backend = OpenAIBackend(
            base_url=base_url, model=CANNED_NAME, max_new_tokens=16, concurrency=concurrency
        )
        prompts = [[3 + i % 200, 4, 5, i % 7] for i in range(n)]
        list(backend.stream(prompts[:concurrency], ["Question:"]))  # warm-up (connections)
        backend.max_in_flight = 0
        start, cpu = time.perf_counter(), time.process_time()
        got = dict(backend.stream(prompts, ["Question:"]))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        backend.close()
    ideal = concurrency / latency
    rate = len(got) / wall
    body = "\n".join(
        [
            f"- {n} requests, server latency {latency * 1000:.0f} ms each (asyncio sleep, canned reply; "
            f"tests/support/completions_server.py in its own process), client concurrency {concurrency}; client "
            f"CPU {1000 * cpu / n:.2f} ms per request; load average before/after: {args.load_before} / "
            f"{load_average()} on {os.cpu_count()} cores",
            "",
            f"**{rate:.0f} items/s = {rate / ideal:.2f} × the ideal {ideal:.0f}/s (target ≥ 0.8×); max in flight "
            f"{backend.max_in_flight}; all {len(got)} answered**",
        ]
    )
    return body, len(got) == n and rate >= 0.8 * ideal


def section_local_completions(args: argparse.Namespace) -> tuple[str, bool]:
    """aicd's openai backend vs lm-eval's local-completions on one server, same text prompts, interleaved."""
    from aicd.generation.openai_compat import OpenAIBackend
    from tests.support.completions_server import CANNED_NAME

    latency, concurrency, n, stop = 0.1, 32, args.concurrency_items, "Question:"
    prompts = prompt_texts(args.dataset, n)
    ours_t: list[float] = []
    peer_t: list[float] = []
    with canned_server(latency) as base_url, tempfile.TemporaryDirectory() as tmp:
        prompt_file, peer_out = Path(tmp) / "prompts.json", Path(tmp) / "peer.json"
        prompt_file.write_text(json.dumps(prompts), encoding="utf-8")
        backend = OpenAIBackend(
            base_url=base_url, model=CANNED_NAME, max_new_tokens=16, concurrency=concurrency
        )
        list(backend.stream(prompts[:concurrency], [stop]))  # warm-up
        for _ in range(args.rounds):
            start = time.perf_counter()
            got = dict(backend.stream(prompts, [stop]))
            ours_t.append(time.perf_counter() - start)
            subprocess.run(
                [
                    args.peer_python,
                    str(ROOT / "bench" / "peers" / "lm_eval_completions.py"),
                    "--base-url",
                    base_url,
                    "--model",
                    CANNED_NAME,
                    "--prompts",
                    str(prompt_file),
                    "--out",
                    str(peer_out),
                    "--concurrency",
                    str(concurrency),
                    "--stop",
                    stop,
                ],  # fmt: skip
                check=True,
                env={**os.environ, "PYTHONPATH": ""},
            )
            peer = json.loads(peer_out.read_text(encoding="utf-8"))
            peer_t.append(peer["seconds"])
        backend.close()
    ours = [got[i] for i in range(n)]
    same = sum(a == b.strip() for a, b in zip(ours, peer["chains"], strict=True))
    t_ours, t_peer = statistics.median(ours_t), statistics.median(peer_t)
    body = "\n".join(
        [
            f"- {n} {args.dataset} 0-shot prompts sent as text to one canned server (100 ms latency, own process), "
            f"concurrency {concurrency} on both sides; lm-eval {peer['versions']['lm_eval']} `local-completions` "
            f"(own venv); load average before/after: {args.load_before} / {load_average()}",
            "",
            "| client | wall s (median) | all rounds | items/s |",
            "|---|---:|---:|---:|",
            f"| aicd openai backend | {t_ours:.2f} | {', '.join(f'{t:.1f}' for t in ours_t)} | {n / t_ours:.0f} |",
            f"| lm-eval local-completions | {t_peer:.2f} | {', '.join(f'{t:.1f}' for t in peer_t)} | "
            f"{n / t_peer:.0f} |",
            "",
            f"**aicd / lm-eval: {t_peer / t_ours:.2f}×; identical chains: {same}/{n}**",
        ]
    )
    return body, same == n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out", type=Path, help="folder for eval.md and the cached student (never the repo by default)"
    )
    parser.add_argument(
        "--peer-python", default="/tmp/peers-lm-eval/bin/python", help="python of the lm-eval venv"
    )
    parser.add_argument("--sections", default="lm-eval,openai,concurrency,local-completions")
    parser.add_argument("--dataset", default="arith", help="test prompts (0-shot)")
    parser.add_argument(
        "--train-dataset",
        default="arith",
        help="what the cached student learns (arith: templated chains it learns in minutes)",
    )
    parser.add_argument("--items", type=int, default=64, help="prompts in the lm-eval comparison")
    parser.add_argument("--openai-items", type=int, default=32)
    parser.add_argument("--concurrency-items", type=int, default=960)
    parser.add_argument("--batch-size", type=int, default=16, help="the openai-vs-hf section's batch size")
    parser.add_argument(
        "--batch-sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[16],
        help="lm-eval section: batch sizes, both sides at each (e.g. 16,32,64)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args()
    args.load_before = load_average()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    ok = True
    if sections & {"lm-eval", "openai"}:
        model_dir = student(out, args.train_steps, args.train_dataset)
    if "lm-eval" in sections:
        body, good = section_lm_eval(args, model_dir, prompt_texts(args.dataset, args.items))
        write_section(
            out / "eval.md", "Generation alone: aicd hf scheduler vs lm-evaluation-harness (HF backend)", body
        )
        print(body)
        ok &= good
    if "openai" in sections:
        body, good = section_openai_vs_hf(args, model_dir)
        write_section(out / "eval.md", "openai backend vs hf backend, same student served locally", body)
        print(body)
        ok &= good
    if "concurrency" in sections:
        body, good = section_concurrency(args)
        write_section(
            out / "eval.md", "openai backend throughput: concurrency 32, 100 ms server latency", body
        )
        print(body)
        ok &= good
    if "local-completions" in sections:
        body, good = section_local_completions(args)
        write_section(out / "eval.md", "openai backend vs lm-eval local-completions, same server", body)
        print(body)
        ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
