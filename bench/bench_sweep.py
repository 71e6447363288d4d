"""Sweep fan-out: wall time of a sweep of 4 tiny runs with 2 gpu-queue workers vs 1, side by side.

Real PostgreSQL and Redis (a fresh database and key prefix), real `celery worker` processes started with the
docker-compose command, the API in this process. Rounds alternate 2 workers / 1 worker (interleaved, so drift in
machine load hits both alike); each round times POST /sweeps → the sweep `succeeded` (training + evaluation of
its 4 runs), with the workers already up. Target: ratio (2 workers / 1 worker) ≤ 0.6. On a CPU-only host the
two workers share the cores, so the ratio is bounded by how much of a tiny run is not CPU-bound.

    python bench/bench_sweep.py --out /tmp/bench-sweep                 # 2 rounds of each
    python bench/bench_sweep.py --out /tmp/bench-sweep --rounds 3 --write   # also bench/results/sweep.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.backend.conftest import (  # noqa: E402
    REDIS_URL,
    Worker,
    arith_jsonl,
    create_database,
    drop_database,
    run_alembic,
    tiny_train_config,
)


def _sweep_seconds(client, name: str, train_id: int, test_id: int, steps: int) -> float:
    start = time.perf_counter()
    resp = client.post(
        "/api/v1/sweeps",
        json={
            "name": name,
            "dataset_id": train_id,
            "eval_dataset_ids": [test_id],
            "config": {
                "train": tiny_train_config(max_steps=steps, save_every=steps),
                "grid": {"objective": ["aicd", "nocot"], "seed": [0, 1]},
                "eval": {"shots": [0], "seeds": [0], "max_new_tokens": 8, "batch_size": 8},
            },
        },
    )
    assert resp.status_code == 202, resp.text
    url = f"/api/v1/sweeps/{resp.json()['id']}"
    while True:
        body = client.get(url).json()
        if body["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    took = time.perf_counter() - start
    assert body["status"] == "succeeded", body
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="work folder (artifacts, worker logs)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each setting (interleaved)")
    ap.add_argument("--steps", type=int, default=16, help="optimizer steps per run")
    ap.add_argument("--write", action="store_true", help="write bench/results/sweep.md")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db_name, db_url = create_database("aicd_bench")
    run_alembic(db_url, "upgrade", "head")
    prefix = f"aicd-bench-{uuid.uuid4().hex[:8]}:"
    env = {
        "AICD_DATABASE_URL": db_url,
        "AICD_REDIS_URL": REDIS_URL,
        "AICD_REDIS_PREFIX": prefix,
        "AICD_ARTIFACT_DIR": str(args.out / "artifacts"),
        "AICD_AUTO_MIGRATE": "false",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `celery`
    }
    os.environ.update(env)
    from fastapi.testclient import TestClient

    from backend.main import create_app

    times: dict[int, list[float]] = {1: [], 2: []}
    loads = [os.getloadavg()[0]]
    try:
        with TestClient(create_app()) as client:
            ids = []
            for split, n in (("train", 16), ("test", 8)):
                resp = client.post(
                    "/api/v1/datasets",
                    files={"file": (f"b-{split}.jsonl", arith_jsonl(split, n))},
                    data={"name": f"bench-{split}"},
                )
                ids.append(resp.json()["id"])
            for r in range(args.rounds):
                for n in (2, 1):
                    # the host's cores shared between its workers, as a deployment sets AICD_THREADS per host:
                    # each worker alone would take every core, and n workers would then fight over them
                    threads = {"AICD_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
                    workers = [Worker("worker-gpu", env | threads, args.out).start() for _ in range(n)]
                    try:
                        t = _sweep_seconds(client, f"bench-{n}w-{r}", ids[0], ids[1], args.steps)
                    finally:
                        for w in workers:
                            w.stop()
                    times[n].append(t)
                    loads.append(os.getloadavg()[0])
                    print(f"round {r}: {n} worker(s) {t:.1f} s (load {loads[-1]:.2f})", flush=True)
    finally:
        drop_database(db_name)
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    ratio = two / one
    lines = [
        "## Sweep fan-out (`bench/bench_sweep.py`)",
        "",
        f"Sweep of 4 tiny runs (objective aicd/nocot × seed 0/1, {args.steps} steps each, then one 8-question "
        "evaluation each), real PostgreSQL + Redis + `celery worker -Q gpu` processes (AICD_THREADS = cores ÷ workers), "
        f"{args.rounds} interleaved round(s) of each setting. Host: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU core(s), no GPU, shared with other jobs "
        f"(1-min load average {min(loads):.2f}–{max(loads):.2f} during the run).",
        "",
        "| gpu workers | wall time per sweep (median) | all rounds |",
        "|---|---|---|",
        f"| 1 | {one:.1f} s | {', '.join(f'{t:.1f}' for t in times[1])} |",
        f"| 2 | {two:.1f} s | {', '.join(f'{t:.1f}' for t in times[2])} |",
        "",
        f"**Ratio 2 workers / 1 worker: {ratio:.2f}** (target ≤ 0.6). "
        + (
            "Met."
            if ratio <= 0.6
            else "Not met here: both workers train on the same shared CPU cores, so two runs at once each get "
            "about half the compute; on a host with one GPU per worker the runs do not compete."
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (ROOT / "bench" / "results" / "sweep.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
