"""A real backend for the UI tests: `uvicorn backend.main:app` on a free port with a temporary SQLite database and
the embedded job executor, seeded through HTTP. Pages are driven with Streamlit's AppTest against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui.client import ApiClient

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "ui" / "app.py")
ARTIFACTS = REPO / "tests" / "artifacts"
CLEAN_ENV = ("AICD_REDIS_URL", "AICD_BROKER_URL", "AICD_DATABASE_URL", "AICD_API_TOKEN", "AICD_ARTIFACT_DIR")

# what every tiny training run and evaluation of these tests uses (seconds on a CPU)
TINY_TRAIN = {
    "model": "tiny:gpt2",
    "max_steps": 2,
    "batch_size": 2,
    "micro_batch_size": 2,
    "max_length": 512,
    "n_shots": 2,
    "lr": 1e-3,
}
TINY_EVAL = {"shots": [0, 1], "seeds": [0], "limit": 3, "max_new_tokens": 24, "batch_size": 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Backend:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def client(self) -> ApiClient:
        return ApiClient(self.url)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def backend_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update(
        {
            "AICD_HOME": str(home),
            "AICD_EMBEDDED_WORKERS": "2",
            "AICD_HEARTBEAT_TIMEOUT_S": "120",
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    home = tmp_path_factory.mktemp("aicd-ui-home")
    port = free_port()
    log = home / "api.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=backend_env(home),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    b = Backend(url, home, proc, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited:\n{b.log_tail()}")
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 120, "the API's /health")
    yield b
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches() -> Iterator[None]:
    """AppTests share the process: never let one test see another's cached reads."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def ui_env(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Backend:
    monkeypatch.setenv("AICD_API_URL", backend.url)
    monkeypatch.delenv("AICD_API_TOKEN", raising=False)
    return backend


@dataclass
class Seeded:
    train: dict[str, Any]  # svamp train sample with teacher rationales
    test: dict[str, Any]  # svamp test sample
    bare: dict[str, Any]  # uploaded questions without any rationale


@pytest.fixture(scope="session")
def seeded(backend: Backend) -> Seeded:
    api = backend.client
    train = api.import_dataset("svamp-train", "svamp", split="train", limit=24)
    test = api.import_dataset("svamp-test", "svamp", split="test", limit=6)
    lines = [
        json.dumps({"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)})
        for i in range(1, 6)
    ]
    bare = api.upload_dataset("no-rationales", "\n".join(lines).encode(), filename="bare.jsonl")
    return Seeded(train, test, bare)


@dataclass
class Trained:
    runs: list[dict[str, Any]]  # succeeded, each with a succeeded evaluation on the test set
    evaluations: list[dict[str, Any]]
    failed: dict[str, Any]  # an AICD run on data without rationales: fails with a message


@pytest.fixture(scope="session")
def trained(backend: Backend, seeded: Seeded) -> Trained:
    """Two tiny runs (AICD, no-CoT) evaluated on the test sample, and one run that fails: all through HTTP."""
    api = backend.client
    runs = [
        api.create_run({**TINY_TRAIN, "objective": obj}, name=f"seed-{obj}", dataset_id=seeded.train["id"])
        for obj in ("aicd", "nocot")
    ]
    failed = api.create_run(
        {**TINY_TRAIN, "objective": "aicd"}, name="seed-fails", dataset_id=seeded.bare["id"]
    )

    def ended(run_id: int) -> dict[str, Any] | None:
        run = api.run(run_id)
        return run if run["status"] in ("succeeded", "failed", "cancelled", "lost") else None

    done = [wait_until(lambda r=r: ended(r["id"]), 300, f"run {r['name']}") for r in runs]
    for run in done:
        assert run["status"] == "succeeded", (run, backend.log_tail())
    evals = [
        api.create_evaluation(
            TINY_EVAL, run_id=r["id"], dataset_id=seeded.test["id"], shots_dataset_id=seeded.train["id"]
        )
        for r in done
    ]

    def eval_ended(ev_id: int) -> dict[str, Any] | None:
        ev = api.evaluation(ev_id)
        return ev if ev["status"] in ("succeeded", "failed", "cancelled", "lost") else None

    evals = [wait_until(lambda e=e: eval_ended(e["id"]), 300, f"evaluation {e['id']}") for e in evals]
    for ev in evals:
        assert ev["status"] == "succeeded", (ev, backend.log_tail())
    failed = wait_until(lambda: ended(failed["id"]), 300, "the failing run")
    assert failed["status"] == "failed", failed
    return Trained(done, evals, failed)


def app_test(page: str | None = None, timeout: float = 60) -> AppTest:
    """The real router (ui/app.py) switched to `views/<page>.py` and run once."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py")
        at.run()
    return at


def texts(at: AppTest) -> str:
    """Everything a reader sees as text on the page (markdown, captions, messages, metrics, titles)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
