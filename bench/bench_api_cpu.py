"""API CPU milliseconds per request, in-process, for the hot read endpoints (issue 11), A/B interleaved.

    python bench/bench_api_cpu.py [--ref GITREF] [--reps 3] [--rounds 5] [--n 100] [--out FILE]

Why in-process: under load the latency is ~8 × the API's CPU per request (2 workers, 16 clients), and the
database is not the cost (bench/results/api.md), so CPU per request is the number to cut; measured alone it is
far less noisy than p95 on a shared 2-core machine.

Creates a throw-away PostgreSQL database (dropped at the end), migrates it and seeds it with bench_api's seeder
(5,000 runs with realistic configs, 4 evaluations × 5,000 generations). Each variant runs in its own process:
the working tree (B) and, with --ref, a `git worktree` of GITREF (A). A child imports `backend.main:app` of its
tree and drives the raw ASGI app (no HTTP client in the measured CPU; sync routes still take the thread-pool
hop), one request at a time, and reports `time.process_time()` per request for each endpoint round by round.
Children run A, B, B, A, ... so both see the same machine load. The children also hash every response body of a
fixed URL list: the table says whether A and B served the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ENDPOINTS = (
    "list runs (50/page)",
    "evaluation's generations (50/page)",
    "compare 3 runs (20/page)",
    "/generations?evaluation_id= (50/page)",  # what bench_api.py loads
)


# ------------------------------------------------------------------------------------------------ child
def targets(data: dict[str, Any], count: int = 300) -> dict[str, list[str]]:
    """Random pages (keyset cursors) of each endpoint, the same list in every child."""
    rng = random.Random(1)
    ev = data["eval_ids"][0]
    runs_q = "&".join(f"run_id={r}" for r in data["run_ids"][:3])
    return {
        ENDPOINTS[0]: [
            f"/api/v1/runs?limit=50&cursor={rng.choice(data['all_run_ids'])}" for _ in range(count)
        ],
        ENDPOINTS[1]: [
            f"/api/v1/evaluations/{ev}/generations?limit=50&cursor={rng.choice(data['gen_ids'])}"
            for _ in range(count)
        ],
        ENDPOINTS[2]: [
            f"/api/v1/compare?{runs_q}&shots={rng.choice([0, 1, 2, 4, 8])}&seed={rng.randrange(5)}&limit=20"
            f"&cursor=q{rng.randrange(data['n_questions']):06d}"
            for _ in range(count)
        ],
        ENDPOINTS[3]: [
            f"/api/v1/generations?evaluation_id={ev}&limit=50&cursor={rng.choice(data['gen_ids'])}"
            for _ in range(count)
        ],
    }


async def asgi_get(app: Any, url: str) -> tuple[int, bytes]:
    """One GET through the ASGI app itself, as uvicorn would call it (minus the socket and HTTP parsing)."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept", b"*/*")], "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }  # fmt: skip
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def child(data: dict[str, Any], rounds: int, n: int) -> dict[str, Any]:
    from backend.main import app

    urls = targets(data)
    digests = {}
    for name, lst in urls.items():  # warm-up (imports, SQL compile cache, pool) and the bytes served
        h = hashlib.sha256()
        for url in lst[:60]:
            status, body = await asgi_get(app, url)
            if status != 200:
                raise SystemExit(f"{url}: {status} {body[:300]!r}")
            h.update(body)
        digests[name] = h.hexdigest()[:16]
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for r in range(rounds):
        for name, lst in urls.items():
            batch = [lst[(r * n + i) % len(lst)] for i in range(n)]
            c0 = time.process_time()
            for url in batch:
                await asgi_get(app, url)
            samples[name].append((time.process_time() - c0) / n * 1000)
    return {"samples": samples, "digests": digests}


# ------------------------------------------------------------------------------------------------ parent
def run_child(tree: Path, env: dict[str, str], data_file: Path, rounds: int, n: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(data_file), "--rounds", str(rounds),
           "--n", str(n)]  # fmt: skip
    out = subprocess.run(cmd, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", help="also measure this commit (A) against the working tree (B)")
    ap.add_argument("--reps", type=int, default=3, help="child processes per variant")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds per child")
    ap.add_argument("--n", type=int, default=100, help="requests per endpoint per round")
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--out", type=Path, help="write the markdown table here too")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        data = json.loads(args.child.read_text())
        print(json.dumps(asyncio.run(child(data, args.rounds, args.n))))
        return

    import psycopg

    sys.path.insert(0, str(REPO / "bench"))
    from bench_api import seed

    name = f"aicd_apicpu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    ref_tree: Path | None = None
    tmp = Path(tempfile.mkdtemp(prefix="apicpu-"))
    try:
        env = {**os.environ, "AICD_DATABASE_URL": url, "AICD_AUTO_MIGRATE": "false", "AICD_HOME": str(tmp)}
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO, env=env, check=True,
                       capture_output=True)  # fmt: skip
        data = seed(url.replace("+psycopg", ""), args.runs, 20_000, 50)
        data_file = tmp / "data.json"
        data_file.write_text(json.dumps(data))
        variants: dict[str, Path] = {"B": REPO}
        labels = {"B": f"working tree ({git('rev-parse', '--short', 'HEAD')}"
                  f"{'+dirty' if git('status', '--porcelain', '--', 'backend') else ''})"}  # fmt: skip
        if args.ref:
            ref_tree = tmp / "ref"
            git("worktree", "add", "--detach", str(ref_tree), args.ref)
            variants = {"A": ref_tree, **variants}
            labels["A"] = f"{args.ref} ({git('rev-parse', '--short', args.ref)})"
        load_start = os.getloadavg()
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        order = list(variants)
        for rep in range(args.reps):
            for v in order if rep % 2 == 0 else order[::-1]:
                results[v].append(run_child(variants[v], env, data_file, args.rounds, args.n))
                print(f"rep {rep} {v} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        load_end = os.getloadavg()
    finally:
        if ref_tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=REPO, check=False)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        f"In-process API CPU per request, median of {args.reps} processes × {args.rounds} rounds × {args.n} "
        f"requests per variant ({args.runs} runs, 4 × 5,000 generations). Load average (1/5/15 min): "
        f"{' / '.join(f'{x:.2f}' for x in load_start)} at the start, "
        f"{' / '.join(f'{x:.2f}' for x in load_end)} at the end.",
        "",
        "| endpoint | " + " | ".join(f"{v}: {labels[v]} ms" for v in variants) + (" | B / A | same bytes |"
                                                                                    if args.ref else " |"),
        "|---|" + "---:|" * len(variants) + ("---:|---|" if args.ref else ""),
    ]  # fmt: skip
    for ep in ENDPOINTS:
        med = {v: statistics.median(s for r in results[v] for s in r["samples"][ep]) for v in variants}
        row = f"| {ep} | " + " | ".join(f"{med[v]:.2f}" for v in variants) + " |"
        if args.ref:
            same = {r["digests"][ep] for v in variants for r in results[v]}
            row += f" {med['B'] / med['A']:.2f} | {'yes' if len(same) == 1 else 'NO'} |"
        lines.append(row)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
