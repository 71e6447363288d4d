"""A real backend for the UI tests: `uvicorn backend.main:app` on a free port with a temporary SQLite database and
the embedded job executor, seeded through HTTP. Pages are driven with Streamlit's AppTest against it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui.client import ApiClient
from ui.components import plans

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
    # no AICD_* setting leaks in from the environment (or from other test areas' session fixtures)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLEAN_ENV and not (k.startswith("AICD_") and k != "AICD_DATA_DIR")
    }
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


@pytest.fixture(scope="session")
def failed_run(backend: Backend, seeded: Seeded) -> dict[str, Any]:
    """An AICD run on data without rationales: the worker fails it with a message (created through HTTP)."""
    api = backend.client
    run = api.create_run({**TINY_TRAIN, "objective": "aicd"}, name="seed-fails", dataset_id=seeded.bare["id"])
    return run


@pytest.fixture(scope="session")
def trained_run(backend: Backend, seeded: Seeded) -> dict[str, Any]:
    """A stand-alone LM run of one step (created through HTTP, trained by the embedded executor): it has the
    run artifacts (config, metrics, the final model's files) that sweep members do not."""
    api = backend.client
    run = api.create_run(
        {**TINY_TRAIN, "objective": "lm", "max_steps": 1}, name="ui-trained", dataset_id=seeded.train["id"]
    )
    done = wait_until(lambda: job_ended(api.run, run["id"]), 300, "the stand-alone run")
    assert done["status"] == "succeeded", (done, backend.log_tail())
    return done


def job_ended(get: Callable[[int], dict[str, Any]], job_id: int) -> dict[str, Any] | None:
    job = get(job_id)
    return job if job["status"] in ("succeeded", "failed", "cancelled", "lost") else None


# ------------------------------------------------------------------------------------------ the browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OBJECTIVES = ["aicd", "condgen", "lm", "nocot"]
COMPARISON = "browser-cmp"


@pytest.fixture(scope="session")
def ui_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run ui/app.py` on a free port, talking to the test backend."""
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "streamlit.log"
    env = {**os.environ, "AICD_API_URL": backend.url}
    env.pop("AICD_API_TOKEN", None)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(REPO / "ui" / "app.py"),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-3000:])
        try:
            return httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 120, "the Streamlit UI")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def settle(page: Any) -> None:
    """Let Streamlit finish the rerun a widget change started."""
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)


def choose(page: Any, label: str, option: str, timeout: float = 120) -> None:
    """Pick `option` in the selectbox labelled `label`. The list is opened again when it closed before the
    option could be clicked (a rerun landing while it is open redraws the box and closes it); a failure names
    the options the list did show."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    settle(page)
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    wanted = page.get_by_role("option", name=re.compile(re.escape(option))).first
    deadline = time.monotonic() + timeout
    while True:
        box.click()
        try:
            wanted.click(timeout=15_000)
            break
        except PlaywrightTimeout:
            shown = page.get_by_role("option").all_inner_texts()
            page.keyboard.press("Escape")
            if time.monotonic() > deadline:
                raise AssertionError(f"{label!r} never offered {option!r}; its list showed {shown}") from None
            settle(page)
    settle(page)


def fill(page: Any, label: str, value: object) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


UI_PAGES = ("home", "datasets", "annotate", "schedule", "launch", "runs", "results", "compare")  # ui/app.py's


def screenshot_every_page(ui_server: str, label: str) -> list[Path]:
    """Every page of the UI as a fresh visitor sees it now (what a failed browser test leaves behind to look at);
    a page that does not render is skipped, so one broken page never hides the others."""
    shots = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for name in UI_PAGES:
            try:
                page.goto(f"{ui_server}/{name}")
                page.get_by_test_id("stSidebarNav").wait_for(timeout=30_000)
                page.wait_for_timeout(1_500)  # let the page's first reads render
                shots.append(screenshot(page, f"{label}-{name}"))
            except Exception:  # noqa: BLE001 - best effort: the test's own failure is what gets reported
                continue
    return shots


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each phase's report on the item, so a fixture can tell whether its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium chromium-driver)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        except Exception:
            for context in browser.contexts:  # what the page showed when the test gave up
                for i, page in enumerate(context.pages):
                    screenshot(page, f"failure-{i}")
            raise
        finally:
            browser.close()


@dataclass
class Comparison:
    runs: list[dict[str, Any]]  # one per objective, succeeded
    evaluations: list[dict[str, Any]]  # one per run, succeeded, on the test sample
    summary: str = ""  # what the Launch page said would run (browser-launched comparison only)
    sweep: dict[str, Any] | None = None


def wait_for_sweep(api: ApiClient, sweep_id: int, timeout: float = 900) -> dict[str, Any]:
    return wait_until(
        lambda: (s := api.sweep(sweep_id))["status"] not in ("queued", "running") and s,
        timeout,
        f"sweep {sweep_id}",
        interval=1.0,
    )


def sweep_results(api: ApiClient, sweep: dict[str, Any]) -> Comparison:
    runs = sorted((api.run(r["id"]) for r in api.runs(sweep_id=sweep["id"])), key=lambda r: r["id"])
    evaluations = [e for r in runs for e in api.evaluations(run_id=r["id"])]
    return Comparison(runs, evaluations, sweep=sweep)


API_COMPARISON = "api-cmp"
API_EVAL = {**TINY_EVAL, "limit": 6}  # 6 questions: two pages at 5 per page on Compare


@pytest.fixture(scope="session")
def comparison(backend: Backend, seeded: Seeded, failed_run: dict[str, Any]) -> Comparison:
    """A tiny comparison of the four objectives launched through the API exactly as the Launch page submits it
    (one sweep job on the server trains and evaluates each run): the data of the Runs, Results and Compare
    AppTests, which therefore need no browser."""
    api = backend.client
    train = {**TINY_TRAIN, "eval_every": 1, "eval_limit": 2, "eval_max_new_tokens": 8}  # accuracy curves
    body = plans.sweep_body(train, OBJECTIVES, seeded.train["id"], API_EVAL, seeded.test["id"])
    sweep = wait_for_sweep(api, api.create_sweep(body, name=API_COMPARISON)["id"])
    assert sweep["status"] == "succeeded", (sweep, backend.log_tail())
    return sweep_results(api, sweep)


OMEGA_SWEEP = "api-omega"


@pytest.fixture(scope="session")
def omega_sweep(backend: Backend, seeded: Seeded, comparison: Comparison) -> Comparison:
    """AICD at ω = 0 and ω = 1, two training seeds each (so each point of Fig. 1 has a spread over runs),
    evaluated at 1 shot with two evaluation seeds: launched through the API after the comparison, so it is the
    newest sweep."""
    api = backend.client
    grid = {"omega": [0.0, 1.0], "seed": [0, 1]}
    eval_cfg = {**TINY_EVAL, "shots": [1], "seeds": [0, 1], "limit": 3}
    body = plans.sweep_body(TINY_TRAIN, ["aicd"], seeded.train["id"], eval_cfg, seeded.test["id"], grid)
    sweep = wait_for_sweep(api, api.create_sweep(body, name=OMEGA_SWEEP)["id"])
    assert sweep["status"] == "succeeded", (sweep, backend.log_tail())
    return sweep_results(api, sweep)


def open_launch(browser: Any, ui_server: str, seeded: Seeded) -> Any:
    """A new page on Launch with the seeded training and evaluation datasets chosen."""
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(f"{ui_server}/launch")
    page.get_by_label("max steps (0 = no cap)").wait_for()
    choose(page, "Train on", seeded.train["name"])
    choose(page, "Evaluate on", seeded.test["name"])
    return page


@pytest.fixture(scope="session")
def browser_comparison(
    backend: Backend, seeded: Seeded, ui_server: str, failed_run: dict[str, Any]
) -> Comparison:
    """A tiny comparison of the four objectives launched by clicking through the Launch page in Chromium (one
    sweep job on the server trains and evaluates each run); the sidebar follows it until done. The data of the
    browser test."""
    with chromium() as browser:
        page = open_launch(browser, ui_server, seeded)
        for label, value in [
            ("n shots per episode", 2),
            ("learning rate", "1e-3"),
            ("max steps (0 = no cap)", 2),
            ("batch size (episodes)", 2),
            ("micro batch", 2),
            ("max tokens per episode", 512),
            ("shots", "0, 1"),
            ("evaluation seeds", "0"),
            ("questions (0 = all)", 3),
            ("max new tokens", 24),
            ("Name", COMPARISON),
        ]:
            fill(page, label, value)
        # the plan once it shows the last values filled in (a rerun may still be on its way under load)
        plan = page.get_by_test_id("stMarkdown").filter(has_text="training run(s)")
        plan.filter(has_text="3 questions × shots [0, 1] × seeds [0]").wait_for(timeout=60_000)
        summary = plan.inner_text()
        screenshot(page, "launch")
        page.get_by_role("button", name="Launch", exact=True).click()
        page.get_by_text("Queued 4 run(s)").wait_for()
        page.get_by_test_id("stSidebar").get_by_text(re.compile(rf"{COMPARISON}.*— done")).wait_for(
            timeout=600_000
        )
        screenshot(page, "launched")
    api = backend.client
    runs = sorted(
        (api.run(r["id"]) for r in api.runs() if r["name"].startswith(f"{COMPARISON}.")),
        key=lambda r: r["id"],
    )
    evaluations = [e for r in runs for e in api.evaluations(run_id=r["id"])]
    return Comparison(runs, evaluations, summary)


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


def plotly_values(value: Any) -> list[Any]:
    """A trace's x / y / error array as a list: Plotly sends numeric arrays as typed base64 (`bdata`)."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        shape = value.get("shape")
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return (arr.reshape([int(x) for x in str(shape).split(",")]) if shape else arr).tolist()
    return list(value)


class Timers:
    """The `st.fragment(run_every=...)` timers an AppTest's latest full run registered (fragment id → seconds), and
    their ticks: what the browser reruns on its own, each fragment alone (a fragment-scoped rerun)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests
        from streamlit.testing.v1.local_script_runner import LocalScriptRunner

        self.every: dict[str, float] = {}
        self._scope: list[str] = []
        forward_msgs, request_rerun = LocalScriptRunner.forward_msgs, LocalScriptRunner.request_rerun

        def recorded(runner: LocalScriptRunner) -> list[Any]:
            msgs = forward_msgs(runner)
            if not self._scope:  # a full run registers the page's timers afresh
                self.every = {
                    m.auto_rerun.fragment_id: m.auto_rerun.interval for m in msgs if m.HasField("auto_rerun")
                }
            return msgs

        def scoped(runner: LocalScriptRunner, data: Any) -> Any:
            if self._scope:  # instead of the full run the runner queued when it was made, not merged with it
                runner._requests = ScriptRequests()
                data = replace(
                    data,
                    fragment_id_queue=list(self._scope),
                    is_fragment_scoped_rerun=True,
                    is_auto_rerun=True,
                )
            return request_rerun(runner, data)

        monkeypatch.setattr(LocalScriptRunner, "forward_msgs", recorded)
        monkeypatch.setattr(LocalScriptRunner, "request_rerun", scoped)

    def tick(self, at: AppTest) -> list[Any]:
        """Every timer fires once, each fragment rerunning alone, in the order the page registered them; returns what
        each rerun drew (its element tree: `.sidebar`, `.caption`, ...)."""
        drawn = []
        for fragment_id in list(self.every):
            self._scope = [fragment_id]
            try:
                at.run()
            finally:
                self._scope = []
            no_traceback(at)
            drawn.append(at._tree)
        return drawn


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> Timers:
    return Timers(monkeypatch)
