"""Real PostgreSQL, Redis and `celery worker` processes for the backend tests (no mocks of DB or broker).

Each test session creates its own database (dropped at the end), its own Redis key prefix and artifact
directory; workers are started with exactly the commands docker-compose.yml gives its services.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("AICD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}


def compose_command(service: str) -> list[str]:
    """The command of a docker-compose service: tests run the very same thing."""
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["command"]
    return spec if isinstance(spec, list) else shlex.split(spec)


def create_database(prefix: str = "aicd_test") -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AICD_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name, url = create_database()
    cmd = compose_command("migrate")
    assert cmd == ["alembic", "upgrade", "head"]
    run_alembic(url, *cmd[1:])
    yield url
    from backend import db

    db.reset()
    drop_database(name)


@pytest.fixture(scope="session")
def stack_env(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of the API and the workers: real Postgres and Redis, fast heartbeats for the tests."""
    prefix = f"aicd-test-{uuid.uuid4().hex[:8]}:"
    env = {
        "AICD_DATABASE_URL": pg_url,
        "AICD_REDIS_URL": REDIS_URL,
        "AICD_REDIS_PREFIX": prefix,
        "AICD_ARTIFACT_DIR": str(tmp_path_factory.mktemp("artifacts")),
        "AICD_AUTO_MIGRATE": "false",
        "AICD_HEARTBEAT_INTERVAL_S": "0.5",
        "AICD_CANCEL_POLL_S": "0.2",
        "AICD_HEARTBEAT_TIMEOUT_S": "8",
        "AICD_REAPER_INTERVAL_S": "1",
        "AICD_MAX_UPLOAD_BYTES": str(256 * 1024),
        "AICD_SECRET_KEY": Fernet.generate_key().decode(),  # teacher keys encrypted at rest (no key file)
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "OPENAI_API_KEY": "",
    }
    yield env
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{prefix}*"))
    if keys:
        r.delete(*keys)


def _apply_env(env: dict[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _reset_backend()
    return old


def _restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _reset_backend()


def _reset_backend() -> None:
    from backend import db, jobs
    from backend.core.settings import get_settings

    jobs.close_dispatcher()
    get_settings.cache_clear()
    db.reset()


@pytest.fixture(scope="session")
def client(stack_env: dict[str, str]) -> Iterator[TestClient]:
    old = _apply_env(stack_env)
    from backend.main import app

    with TestClient(app) as c:
        yield c
    _restore_env(old)


@contextmanager
def app_client(**env: str) -> Iterator[TestClient]:
    """A fresh app with its own lifespan, under the session's settings plus `env` (e.g. another database or an
    unreachable broker); the previous settings come back afterwards."""
    old = _apply_env(env)
    try:
        from backend.main import create_app

        with TestClient(create_app()) as c:
            yield c
    finally:
        _restore_env(old)


def sqlite_env(path: Path) -> dict[str, str]:
    """Settings of an API on an SQLite file (migrated at start-up), otherwise like the session's."""
    return {"AICD_DATABASE_URL": f"sqlite:///{path}", "AICD_AUTO_MIGRATE": "true"}


@pytest.fixture(params=["postgres", "sqlite"])
def any_db_client(request: pytest.FixtureRequest, client: TestClient, tmp_path: Path) -> Iterator[TestClient]:
    """The session's API on PostgreSQL, or a fresh one on an SQLite file (embedded mode's database)."""
    if request.param == "postgres":
        yield client
        return
    with app_client(**sqlite_env(tmp_path / "hostile.db")) as c:
        yield c


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """A real `celery worker` subprocess (the docker-compose command) with its log in a file."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path):
        self.service = service
        self.cmd = compose_command(service)
        self.env = {**os.environ, **env}
        self.log = log_dir / f"{service}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Worker:
        fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"{self.service} not ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, like an OOM kill or a lost node: no chance to clean up."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def cpu_worker(stack_env: dict[str, str], worker_logs: Path) -> Iterator[Worker]:
    w = Worker("worker-cpu", stack_env, worker_logs).start()
    yield w
    w.stop()


@pytest.fixture
def make_gpu_worker(stack_env: dict[str, str], worker_logs: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def make() -> Worker:
        w = Worker("worker-gpu", stack_env, worker_logs).start()
        started.append(w)
        return w

    make.started = started  # type: ignore[attr-defined]
    yield make
    for w in started:
        w.stop()


def wait_for(
    client: TestClient, url: str, predicate: Any, timeout: float = 240, interval: float = 0.25, what: str = ""
) -> dict[str, Any]:
    """Poll a resource until predicate(body) holds; fail with the last body otherwise."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if predicate(body):
            return body
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or url}: {body}")


def arith_jsonl(split: str, n: int) -> bytes:
    """A small arithmetic dataset (with rationales) from the core's synthetic generator."""
    from aicd.data.synthetic import generate

    return "".join(ex.model_dump_json() + "\n" for ex in generate(split, n, seed=0)).encode()


TINY_MODEL = "tiny:gpt2?n_layer=1&n_embd=32&n_head=2"


def tiny_train_config(**overrides: Any) -> dict[str, Any]:
    cfg = {
        "model": TINY_MODEL,
        "n_shots": 2,
        "max_length": 256,
        "batch_size": 2,
        "micro_batch_size": 2,
        "lr": 1e-3,
        "log_every": 1,
        "save_every": 2,
        "max_steps": 6,
    }
    cfg.update(overrides)
    return cfg
