"""API benchmark at scale: 100,000 runs, 100,000 generations and 5,000 datasets in PostgreSQL; list runs, list
generations and the side-by-side compare under 16 and 50 concurrent clients, against 1 and 2 API processes.

    python bench/bench_api.py --out /tmp/bench [--runs 100000] [--generations 100000] [--datasets 5000]
                              [--duration 5] [--reps 2] [--clients 16,50]

Creates a throw-away database (dropped at the end), seeds it with COPY, starts the servers of SERVERS on it at
once (uvicorn with 1 and 2 workers, gunicorn + uvicorn-worker with 2 workers and --reuse-port) and measures them
interleaved — every (endpoint, clients) cell runs on each server in turn, the first one rotating each repetition —
so all see the same machine load. Latency
p50/p95/p99 and req/s come from the load itself (aiohttp keep-alive clients, each request timed). Then EXPLAIN
(ANALYZE, BUFFERS) of the exact SQL each list endpoint sends (captured from an in-process app), first page and a
deep page, so a plan whose cost grows with table size shows. Writes <out>/api.md (copy it to bench/results/ and
run bench/assemble.py to update bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
N_EVALS = 4
SHOTS = [0, 1, 2, 4, 8]
SEEDS = [0, 1, 2, 3, 4]
# per process: up to 40 connections under load (= the API's thread pool, as the default 20 + 20), only 10 kept
# while idle, so the idle server of the pair holds few of the shared PostgreSQL server's connections
POOL = {"AICD_DB_POOL_SIZE": "10", "AICD_DB_MAX_OVERFLOW": "30"}
RUN_CONFIG = {
    "n_shots": 4, "schedule": "paper", "omega": 0.1, "weights": None, "name": "run", "output_dir": "runs",
    "model": "Qwen/Qwen2.5-0.5B", "dataset": "db:1", "split": "train", "limit": None, "answer_kind": "auto",
    "objective": "aicd", "template": {"question_prefix": "Question: ", "answer_prefix": "\nAnswer:",
    "separator": "\n\n"}, "max_length": 1024, "epochs": 10.0, "max_steps": None, "lr": 7e-06,
    "min_lr_ratio": 0.0, "warmup_ratio": 0.03, "weight_decay": 0.0, "adam_betas": [0.9, 0.999],
    "max_grad_norm": 1.0, "batch_size": 8, "micro_batch_size": 4, "batching": "length_grouped",
    "reduction": "sum", "mixed_precision": "auto", "gradient_checkpointing": False, "lora": None, "seed": 0,
    "save_every": 0, "keep_checkpoints": 2, "log_every": 1, "eval_every": 0,
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ seeding
def seed(dsn: str, n_runs: int, n_generations: int, n_datasets: int) -> dict[str, Any]:
    """Datasets, sweeps, runs (95% succeeded; a tenth in sweeps), evaluations of the first runs and their
    generations (questions × shots × seeds), all with COPY."""
    rng = random.Random(0)
    statuses = ["succeeded"] * 95 + ["failed"] * 3 + ["cancelled"] * 2
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy(
            "COPY datasets (name, description, source, answer_kind, n_examples, created_at) FROM STDIN"
        ) as copy:
            for i in range(n_datasets):
                copy.write_row((f"ds-{i}", "bench dataset", f"upload:ds-{i}.jsonl", "number", 1000, "now"))
        n_sweeps = max(1, n_runs // 100)
        with conn.cursor().copy("COPY sweeps (name, config, status, progress_done, progress_total, "
                                "cancel_requested, attempt, created_at) FROM STDIN") as copy:  # fmt: skip
            for i in range(n_sweeps):
                copy.write_row((f"sweep-{i}", "{}", "succeeded", 10, 10, False, 1, "now"))
        sweep_ids = [r[0] for r in conn.execute("SELECT id FROM sweeps ORDER BY id")]
        with conn.cursor().copy(
            "COPY runs (name, sweep_id, dataset_id, config, run_dir, step, total_steps, resume, status, "
            "progress_done, progress_total, cancel_requested, attempt, created_at, last_metrics) FROM STDIN"
        ) as copy:
            for i in range(n_runs):
                sweep = sweep_ids[i % len(sweep_ids)] if i % 10 == 0 else None
                status = "running" if i >= n_runs - 20 else rng.choice(statuses)
                config = json.dumps({**RUN_CONFIG, "name": f"run-{i}", "seed": i % 3})
                metrics = json.dumps({"loss": round(rng.uniform(0.5, 2), 4), "lr": 7e-6, "epoch": 10.0})
                copy.write_row((f"run-{i}", sweep, 1 + i % n_datasets, config, f"runs/run-{i}", 100, 100,
                                False, status, 100, 100, False, 1, "now", metrics))  # fmt: skip
        run_ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id LIMIT %s", (N_EVALS,))]
        per_eval = n_generations // N_EVALS
        n_questions = per_eval // (len(SHOTS) * len(SEEDS))
        eval_ids = []
        for r, run_id in enumerate(run_ids):
            eval_id = conn.execute(
                "INSERT INTO evaluations (run_id, config, output_dir, status, progress_done, progress_total,"
                " cancel_requested, attempt, created_at) VALUES (%s, '{}', %s, 'succeeded', %s, %s, false, 1,"
                " now()) RETURNING id",
                (run_id, f"evaluations/{r}", per_eval, per_eval),
            ).fetchone()[0]
            eval_ids.append(eval_id)
            with conn.cursor().copy(
                "COPY generations (evaluation_id, example_id, shots, seed, question, gold, shot_ids, prompt,"
                " generation, extracted, correct) FROM STDIN"
            ) as copy:
                for q in range(n_questions):
                    question = f"Question {q}: Ann has {q % 17} apples and buys {q % 5} more. How many now?"
                    gold = str(q % 17 + q % 5)
                    for k in SHOTS:
                        for s in SEEDS:
                            shot_ids = json.dumps([f"train-{(q * 7 + i) % 5000}" for i in range(k)])
                            prompt = "Question: demo.\nAnswer: So, the answer is 3.\n\n" * k + question
                            ans = gold if rng.random() < 0.6 else str(rng.randint(0, 30))
                            gen = (
                                f" Ann starts with {q % 17}. She buys {q % 5} more. So, the answer is {ans}."
                            )
                            copy.write_row((eval_id, f"q{q:06d}", k, s, question, gold, shot_ids, prompt, gen,
                                            ans, ans == gold))  # fmt: skip
        conn.execute("ANALYZE")
        conn.commit()
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("runs", "generations", "datasets")}  # fmt: skip
        gen_ids = [
            r[0] for r in conn.execute("SELECT id FROM generations WHERE evaluation_id = %s", (eval_ids[0],))
        ]
        all_run_ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
    return {
        "run_ids": run_ids, "eval_ids": eval_ids, "n_questions": n_questions, "counts": counts,
        "gen_ids": gen_ids, "all_run_ids": all_run_ids,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ load
def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


async def load(
    base: str, targets: list[str], clients: int, duration: float
) -> tuple[list[float], int, float]:
    """`clients` keep-alive clients issuing requests back to back for `duration` s: (latencies ms, errors, s)."""
    import aiohttp

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def one(i: int) -> None:
        nonlocal errors
        rng = random.Random(i)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with c.get(rng.choice(targets)) as r:
                    await r.read()
                    if r.status == 200:
                        lat.append((time.perf_counter() - t0) * 1000)
                    else:
                        errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return lat, errors, time.perf_counter() - t0


def targets_for(data: dict[str, Any]) -> dict[str, list[str]]:
    rng = random.Random(1)
    runs_q = "&".join(f"run_id={r}" for r in data["run_ids"][:3])
    return {
        "list runs (50/page, newest first)": [
            f"/api/v1/runs?limit=50&cursor={rng.choice(data['all_run_ids'])}" for _ in range(300)
        ],
        "list generations of an evaluation (50/page)": [
            f"/api/v1/generations?evaluation_id={data['eval_ids'][0]}&limit=50&cursor={rng.choice(data['gen_ids'])}"
            for _ in range(300)
        ],
        "compare 3 runs (20 questions/page)": [
            f"/api/v1/compare?{runs_q}&shots={rng.choice(SHOTS)}&seed={rng.choice(SEEDS)}&limit=20"
            f"&cursor=q{rng.randrange(data['n_questions']):06d}"
            for _ in range(300)
        ],
    }


SERVERS = {
    "uvicorn, 1 worker": ["-m", "uvicorn", "backend.main:app", "--workers", "1", "--log-level", "warning",
                          "--no-access-log"],
    "uvicorn, 2 workers (one shared socket)": ["-m", "uvicorn", "backend.main:app", "--workers", "2",
                                               "--log-level", "warning", "--no-access-log"],
    "gunicorn + uvicorn-worker, 2 workers, --reuse-port (docker-compose's)": [
        "-m", "gunicorn", "backend.main:app", "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "--reuse-port",
        "--log-level", "warning"],
}  # fmt: skip
"""The servers measured side by side. uvicorn's own `--workers` share one listening socket: the worker that wins
the accept race takes a burst of keep-alive connections and serves them to the end, so 2 workers rarely share 16
clients evenly. With gunicorn's `--reuse-port` each worker binds its own SO_REUSEPORT socket and the kernel
spreads new connections over them."""


def start_server(env: dict[str, str], args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    bind = ["-b", f"127.0.0.1:{port}"] if "gunicorn" in args else ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([sys.executable, *args, *bind], cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{' '.join(args)} did not start")


def tree_cpu(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds of a server: its supervisor and every worker process."""
    import psutil

    total = 0.0
    root = psutil.Process(proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# ------------------------------------------------------------------------------------------------ EXPLAIN
def explain_plans(url: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(endpoint, statement, EXPLAIN ANALYZE) for the SQL each list endpoint really sends, first and deep page."""
    os.environ.update({"AICD_DATABASE_URL": url, "AICD_AUTO_MIGRATE": "false"})
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from backend import db
    from backend.main import create_app

    captured: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        captured.append((statement, parameters))

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", capture)
    runs_q = "&".join(f"run_id={r}" for r in data["run_ids"][:3])
    deep_run = sorted(data["all_run_ids"])[1000]  # newest first: a cursor near the oldest rows is deep
    deep_gen = sorted(data["gen_ids"])[-60]
    cases = {
        "list runs, first page": "/api/v1/runs?limit=50",
        "list runs, deep page": f"/api/v1/runs?limit=50&cursor={deep_run}",
        "list runs, status=running (20 rows match)": "/api/v1/runs?limit=50&status=running",
        "list runs, status=succeeded (~95% match), deep page": (
            f"/api/v1/runs?limit=50&status=succeeded&cursor={deep_run}"
        ),
        "list runs of a sweep": "/api/v1/runs?limit=50&sweep_id=7",
        "list generations, first page": f"/api/v1/generations?evaluation_id={data['eval_ids'][0]}&limit=50",
        "list generations, deep page": (
            f"/api/v1/generations?evaluation_id={data['eval_ids'][0]}&limit=50&cursor={deep_gen}"
        ),
        "list datasets, first page": "/api/v1/datasets?limit=50",
        "compare 3 runs, a middle page": (
            f"/api/v1/compare?{runs_q}&shots=4&seed=2&limit=20&cursor=q{data['n_questions'] // 2:06d}"
        ),
    }
    out = []
    with TestClient(create_app()) as client:
        for label, path in cases.items():
            captured.clear()
            assert client.get(path).status_code == 200, path
            main = max(captured, key=lambda c: len(c[0]))  # the page query (the others are id lookups)
            with engine.connect() as conn:
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + main[0], main[1])
                text = "\n".join(r[0] for r in plan)
            out.append((label, path, text))
    event.remove(engine, "before_cursor_execute", capture)
    db.reset()
    return out


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="folder for api.md (never the repository by default)")
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--generations", type=int, default=100_000)
    ap.add_argument("--datasets", type=int, default=5_000)
    ap.add_argument(
        "--duration", type=float, default=5.0, help="seconds per (server, endpoint, clients) cell"
    )
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions of the whole grid")
    ap.add_argument("--clients", default="16,50")
    args = ap.parse_args()
    clients_list = [int(c) for c in args.clients.split(",")]

    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    name = f"aicd_bench_{uuid.uuid4().hex[:8]}"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AICD_")},
            "AICD_DATABASE_URL": url,
            "AICD_AUTO_MIGRATE": "false",
            "AICD_HOME": f"/tmp/{name}",
            **POOL,
        }
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO, env=env, check=True,
                       capture_output=True)  # fmt: skip
        t0 = time.perf_counter()
        data = seed(dsn, args.runs, args.generations, args.datasets)
        print(f"seeded {data['counts']} in {time.perf_counter() - t0:.0f}s", flush=True)

        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        for label, server_args in SERVERS.items():
            servers[label] = start_server(env, server_args)
            procs.append(servers[label][0])
        targets = targets_for(data)
        for _, base in servers.values():  # warm every worker's connections and caches
            for tg in targets.values():
                asyncio.run(load(base, tg, 4, 1.0))

        lat: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        done: dict[tuple[str, str, int], tuple[int, int, float, float]] = defaultdict(
            lambda: (0, 0, 0.0, 0.0)
        )
        loads: list[float] = []
        labels = list(SERVERS)
        for rep in range(args.reps):
            for endpoint, tg in targets.items():
                for clients in clients_list:
                    shift = (rep + clients) % len(labels)  # rotate which server goes first
                    for label in labels[shift:] + labels[:shift]:
                        proc, base = servers[label]
                        cpu0 = tree_cpu(proc)
                        values, errors, elapsed = asyncio.run(load(base, tg, clients, args.duration))
                        key = (label, endpoint, clients)
                        lat[key] += values
                        ok, err, secs, cpu = done[key]
                        done[key] = (
                            ok + len(values),
                            err + errors,
                            secs + elapsed,
                            cpu + tree_cpu(proc) - cpu0,
                        )
                        loads.append(os.getloadavg()[0])
                        print(f"rep {rep} {endpoint} c={clients} {label}: {len(values) / elapsed:.0f} req/s, "
                              f"p95 {pct(values, 95):.0f} ms, {errors} errors", flush=True)  # fmt: skip
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        procs.clear()
        plans = explain_plans(url, data)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    counts = data["counts"]
    lines = [
        "## API (backend) at scale",
        "",
        f"`python bench/bench_api.py --out DIR` — PostgreSQL 15 holding {counts['runs']:,} runs, "
        f"{counts['generations']:,} generations ({N_EVALS} evaluations × {data['n_questions']} questions × "
        f"{len(SHOTS)} shot counts × {len(SEEDS)} seeds) and {counts['datasets']:,} datasets. Three servers at "
        f"once ({'; '.join(SERVERS)}; "
        f"each process ≤ {int(POOL['AICD_DB_POOL_SIZE']) + int(POOL['AICD_DB_MAX_OVERFLOW'])} database "
        f"connections, {POOL['AICD_DB_POOL_SIZE']} kept while idle: the PostgreSQL server is shared), measured "
        f"interleaved: each (endpoint, clients) cell runs on each server in turn, the first one rotating, "
        f"{args.reps} × {args.duration:.0f} s per cell. aiohttp keep-alive clients on the same machine, each "
        f"request timed; random pages (keyset cursors) all over the tables. {os.cpu_count()} CPU cores shared "
        f"with the load generator and with other jobs: load average {load_before} at the start, "
        f"{min(loads):.1f}–{max(loads):.1f} during the cells. Targets: p95 < 50 ms at 16 clients; no endpoint "
        "whose cost grows with table size.",
        "",
        "| endpoint | clients | server | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/req | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in targets:
        for clients in clients_list:
            for label in labels:
                ok, err, secs, cpu = done[(label, endpoint, clients)]
                v = lat[(label, endpoint, clients)]
                lines.append(
                    f"| {endpoint} | {clients} | {label} | {ok / secs:.0f} | {pct(v, 50):.1f} | "
                    f"{pct(v, 95):.1f} | {pct(v, 99):.1f} | {cpu / max(ok, 1) * 1000:.2f} | {err} |"
                )
    lines += ["", f"req/s relative to {labels[0]} (same cells, interleaved):", ""]
    for endpoint in targets:
        ratios = []
        for clients in clients_list:
            one = done[(labels[0], endpoint, clients)]
            for label in labels[1:]:
                other = done[(label, endpoint, clients)]
                ratios.append(
                    f"{clients} clients, {label.split(',')[0]} ×{(other[0] / other[2]) / max(one[0] / one[2], 1e-9):.2f}"
                )
        lines.append(f"- {endpoint}: {'; '.join(ratios)}")
    exec_ms = [float(line.split(":")[1].split()[0]) for _, _, plan in plans for line in plan.splitlines()
               if line.startswith("Execution Time:")]  # fmt: skip
    scans = "Seq Scan" if any("Seq Scan" in plan for _, _, plan in plans) else "no Seq Scan"
    lines += [
        "",
        f"Plans below: {scans}; every page query is an index scan under a Limit (a Sort appears only over the "
        f"rows one filter value matches, e.g. the 20 running runs), and each executes in ≤ {max(exec_ms):.2f} ms "
        "at this table size, however deep the cursor. So the latencies above are not the database's: they are "
        "the API processes' CPU per page (a page of 50 runs with their configs is the dearest), the "
        "load generator and the other jobs sharing the cores (see the load average). The p95 < 50 ms at 16 "
        "clients target is only meaningful on a machine that is not otherwise loaded.",
    ]
    lines += ["", "### EXPLAIN (ANALYZE, BUFFERS) of the SQL each list endpoint sends", ""]
    for label, path, plan in plans:
        lines += [f"**{label}** — `GET {path}`", "", "```", plan, "```", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "api.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
