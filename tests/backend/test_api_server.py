"""The API as docker-compose runs it (gunicorn + uvicorn-worker, 2 workers, --reuse-port), on PostgreSQL and
Redis: each worker listens on a socket of its own, so the kernel spreads keep-alive clients over the workers
(uvicorn's own --workers share one socket, and one worker tends to take them all: bench/results/api.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.backend.conftest import REPO, compose_command, free_port


def _listening_sockets(pid: int, port: int) -> set[str]:
    """The socket inodes a process listens on at `port` (one shared socket shows the same inode everywhere)."""
    out = set()
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.fd >= 0:
            out.add(os.readlink(f"/proc/{pid}/fd/{conn.fd}"))
    return out


def _served_by(pid: int, port: int) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    )


def test_compose_api_command_gives_each_worker_its_own_socket(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    cmd = [
        a.replace("${AICD_API_WORKERS:-2}", "2").replace("0.0.0.0:8000", f"127.0.0.1:{port}")
        for a in compose_command("api")
    ]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AICD_")}, **stack_env}
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", *cmd], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    clients: list[httpx.Client] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:
            workers = psutil.Process(proc.pid).children()
            try:
                if (
                    len(workers) == 2
                    and httpx.get(f"{base}/health", timeout=2).json()["database"] == "postgresql"
                ):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "api.log").read_text()[-3000:])
        for w in workers:  # the workers bind after the health check answers: wait for both
            while not _listening_sockets(w.pid, port) and time.monotonic() < deadline:
                time.sleep(0.1)
        sockets = [_listening_sockets(w.pid, port) for w in workers]
        assert all(len(s) == 1 for s in sockets), sockets
        assert sockets[0] != sockets[1]  # SO_REUSEPORT: two sockets, not one inherited one

        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(16)]
        for c in clients:  # 16 keep-alive connections, opened at once as a burst of clients would
            assert c.get("/api/v1/runs", params={"limit": 1}).status_code == 200
        served = [_served_by(w.pid, port) for w in workers]
        assert sum(served) == 16 and min(served) >= 1, served  # both serve (all on one: p = 2/2^16)
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        proc.wait(timeout=30)
