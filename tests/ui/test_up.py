"""`aicd up` starts API + UI on embedded defaults, prints the URLs, and stops every child on SIGINT / SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from aicd.errors import AICDError
from tests.ui.conftest import REPO, backend_env, free_port, wait_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Output:
    """Collects a child's stdout+stderr in a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.text = ""
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.text += line


def _start_up(args: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[subprocess.Popen[str], Output]:
    """`aicd up ARGS` as a child whose stdout+stderr is collected."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicd", "up", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, Output(proc)


def _wait_ready(proc: subprocess.Popen[str], out: Output) -> None:
    wait_until(lambda: "Press Ctrl-C to stop." in out.text or proc.poll() is not None, 180, "aicd up")
    assert proc.poll() is None, out.text


def _pids(out: Output) -> dict[str, str]:
    """name -> pid from the `pids …` line `up` prints."""
    return dict(re.findall(r"([\w-]+)=(\d+)", out.text.split("pids", 1)[1].splitlines()[0]))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_starts_everything_prints_urls_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    api_port, ui_port = free_port(), free_port()
    proc, out = _start_up(
        ["--api-port", str(api_port), "--ui-port", str(ui_port), "--home", str(tmp_path / "home")],
        backend_env(tmp_path),
    )
    try:
        _wait_ready(proc, out)
        assert f"UI      http://127.0.0.1:{ui_port}" in out.text
        assert f"API     http://127.0.0.1:{api_port}" in out.text
        assert "embedded in the API (no Redis)" in out.text
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5).json()
        assert {k: health.get(k) for k in ("status", "mode", "database")} == {
            "status": "ok",
            "mode": "embedded",
            "database": "sqlite",
        }
        assert (tmp_path / "home" / "aicd.db").exists()  # migrations ran against the embedded database
        assert httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=5).text == "ok"
        pids = _pids(out)
        assert set(pids) == {"api", "ui"}
        assert all(_alive(int(p)) for p in pids.values())
    finally:
        if proc.poll() is None:
            proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0, out.text
    assert "stopped." in out.text
    for name, pid in pids.items():
        assert not _alive(int(pid)), f"{name} (pid {pid}) still running"
    assert not _listening(api_port) and not _listening(ui_port)


def test_up_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "aicd", "up", "--api-port", str(port), "--no-ui"],
            cwd=REPO,
            env=backend_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: --api-port: port {port} on 127.0.0.1 is already in use; pick another one"
    )
    assert "Traceback" not in result.stderr


def test_up_stops_everything_when_a_child_dies(tmp_path: Path) -> None:
    api_port = free_port()
    proc, out = _start_up(
        ["--api-port", str(api_port), "--no-ui", "--home", str(tmp_path)], backend_env(tmp_path)
    )
    try:
        _wait_ready(proc, out)
        pid = int(_pids(out)["api"])
        os.kill(pid, signal.SIGKILL)  # the API crashes
        assert proc.wait(timeout=60) == 1
        assert "api exited with code -9; stopping everything" in out.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_on_postgres_and_redis_runs_a_job_with_celery_workers(tmp_path: Path) -> None:
    """Configured with AICD_DATABASE_URL and AICD_REDIS_URL: migrations on Postgres, two Celery workers."""
    import uuid

    import psycopg

    db = f"aicd_ui_up_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    api_port = free_port()
    env = backend_env(
        tmp_path,
        AICD_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
        AICD_REDIS_URL="redis://127.0.0.1:6379/13",
        AICD_REDIS_PREFIX=f"{db}:",
    )
    proc, out = _start_up(["--api-port", str(api_port), "--no-ui", "--grace", "30"], env)
    pids: dict[str, str] = {}
    try:
        _wait_ready(proc, out)
        assert "worker  Celery on redis://127.0.0.1:6379/13" in out.text and "postgresql" in out.text
        pids = _pids(out)
        assert set(pids) == {"api", "worker-gpu", "worker-cpu"}
        url = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{url}/health", timeout=5).json()["database"] == "postgresql"
        ds = httpx.post(
            f"{url}/api/v1/datasets/import", json={"name": "s", "source": "svamp", "limit": 8}
        ).json()
        run = httpx.post(
            f"{url}/api/v1/runs",
            json={
                "name": "r",
                "dataset_id": ds["id"],
                "config": {
                    "model": "tiny:gpt2",
                    "max_steps": 1,
                    "batch_size": 2,
                    "micro_batch_size": 2,
                    "max_length": 512,
                    "n_shots": 2,
                },
            },
        ).json()
        done = wait_until(
            lambda: (
                (r := httpx.get(f"{url}/api/v1/runs/{run['id']}").json())["status"]
                not in ("queued", "running")
                and r
            ),
            240,
            "the run on the Celery worker",
        )
        assert done["status"] == "succeeded" and done["worker"], done
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    assert code == 0, out.text
    for name, pid in pids.items():
        assert not _alive(int(pid)), f"{name} (pid {pid}) still running"


def test_up_reads_settings_like_the_backend_and_passes_its_decisions_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .env in the directory `up` runs from decides the broker and the token for every child."""
    from backend.up import resolve_stack

    for key in list(os.environ):
        if key.startswith("AICD_"):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text(
        "AICD_API_TOKEN=from-dotenv\nAICD_REDIS_URL=redis://127.0.0.1:6379/9\nAICD_HOME=data\n"
    )
    monkeypatch.chdir(tmp_path)
    stack = resolve_stack("http://127.0.0.1:8123")
    assert stack.broker == "redis://127.0.0.1:6379/9"  # so `up` starts the Celery workers
    assert stack.token == "from-dotenv"
    assert stack.env["AICD_API_TOKEN"] == "from-dotenv" and stack.env["AICD_REDIS_URL"] == stack.broker
    assert stack.env["AICD_HOME"] == str(tmp_path / "data")  # relative to where `up` ran, not the API's cwd
    assert stack.ui_env["AICD_API_TOKEN"] == "from-dotenv"
    assert stack.ui_env["AICD_API_URL"] == "http://127.0.0.1:8123"
    assert stack.database == f"SQLite in {tmp_path / 'data'}/aicd.db"

    monkeypatch.setenv("AICD_API_TOKEN", "from-env")  # the environment wins over .env, as in the backend
    monkeypatch.setenv("AICD_BROKER_URL", "redis://127.0.0.1:6379/10")
    stack = resolve_stack("http://127.0.0.1:8123", home=tmp_path / "elsewhere")
    assert stack.token == "from-env" and stack.ui_env["AICD_API_TOKEN"] == "from-env"
    assert stack.broker == "redis://127.0.0.1:6379/10"
    assert stack.env["AICD_HOME"] == str(tmp_path / "elsewhere")

    (tmp_path / ".env").write_text("AICD_EMBEDDED_WORKERS=0\n")  # invalid: one line, not a traceback
    with pytest.raises(AICDError, match="AICD_EMBEDDED_WORKERS"):
        resolve_stack("http://127.0.0.1:8123")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_up_with_a_token_in_dotenv_protects_the_api_and_hands_the_token_to_the_ui(tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / ".env").write_text(f"AICD_API_TOKEN=dotenv-secret-77\nAICD_HOME={tmp_path / 'home'}\n")
    env = backend_env(tmp_path)
    env.pop("AICD_HOME")  # the .env says where
    proc, out = _start_up(["--api-port", str(api_port), "--ui-port", str(ui_port)], env, cwd=cwd)
    try:
        _wait_ready(proc, out)
        assert "auth    API token required" in out.text and "dotenv-secret-77" not in out.text
        url = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{url}/api/v1/datasets", timeout=5).status_code == 401
        ok = httpx.get(
            f"{url}/api/v1/datasets", headers={"Authorization": "Bearer dotenv-secret-77"}, timeout=5
        )
        assert ok.status_code == 200, ok.text
        pids = _pids(out)
        ui_env = _environ(int(pids["ui"]))
        assert ui_env["AICD_API_TOKEN"] == "dotenv-secret-77" and ui_env["AICD_API_URL"] == url
        assert _environ(int(pids["api"]))["AICD_API_TOKEN"] == "dotenv-secret-77"
        assert (tmp_path / "home" / "aicd.db").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, out.text
