"""A real browser (Debian's headless Chromium driven by Playwright) uses the running UI: launches a tiny comparison
of the four objectives, waits until every run is trained and evaluated, and reads the chains side by side.
Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import ARTIFACTS, REPO, Backend, Seeded, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = [
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


@pytest.fixture(scope="module")
def ui_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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


def settle(page) -> None:
    """Let Streamlit finish the rerun a widget change started."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )


def choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()
    settle(page)


def fill(page, label: str, value: object) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_browser_launches_a_comparison_and_compares_chains(
    ui_server: str, backend: Backend, seeded: Seeded
) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium chromium-driver)"
    name = "browser-cmp"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(f"{ui_server}/launch")
            page.get_by_label("max steps (0 = no cap)").wait_for()
            choose(page, "Train on", "svamp-train")
            choose(page, "Evaluate on", "svamp-test")
            fill(page, "n shots per episode", 2)
            fill(page, "learning rate", "1e-3")
            fill(page, "max steps (0 = no cap)", 2)
            fill(page, "batch size (episodes)", 2)
            fill(page, "micro batch", 2)
            fill(page, "max tokens per episode", 512)
            fill(page, "shots", "0, 1")
            fill(page, "evaluation seeds", "0")
            fill(page, "questions (0 = all)", 3)
            fill(page, "max new tokens", 24)
            fill(page, "Name", name)
            summary = page.get_by_test_id("stMarkdown").filter(has_text="training run(s)").inner_text()
            assert "4 training run(s)" in summary, summary
            assert "3 questions × shots [0, 1] × seeds [0] = 24 generations" in summary, summary
            shot(page, "launch")
            page.get_by_role("button", name="Launch", exact=True).click()
            page.get_by_text("Queued 4 run(s)").wait_for()

            runs = [r for r in backend.client.runs() if r["name"].startswith(f"{name}-")]
            assert sorted(r["config"]["objective"] for r in runs) == OBJECTIVES
            # the sidebar tracker queues each evaluation when its run ends and says "done" when all have ended
            page.get_by_test_id("stSidebar").get_by_text(re.compile(rf"{name}.*— done")).wait_for(
                timeout=600_000
            )
            for run in runs:
                run = backend.client.run(run["id"])
                assert run["status"] == "succeeded", (run, backend.log_tail())
                evals = backend.client.evaluations(run_id=run["id"])
                assert [e["status"] for e in evals] == ["succeeded"], evals

            page.get_by_test_id("stSidebarNav").get_by_text("Runs", exact=True).click()
            page.get_by_text("training loss").first.wait_for()
            shot(page, "runs")

            page.get_by_test_id("stSidebarNav").get_by_text("Results", exact=True).click()
            page.get_by_text(re.compile("Table 1")).wait_for()
            shot(page, "results")

            page.get_by_test_id("stSidebarNav").get_by_text("Compare chains", exact=True).click()
            choose(page, "Dataset", "svamp-test")
            page.get_by_text(re.compile("gold answer")).first.wait_for()
            for objective in OBJECTIVES:
                assert page.get_by_text(re.compile(rf"{name}-{objective}\*?\*? →")).count() >= 1, objective
            chains = page.locator(".aicd-chain")
            assert chains.count() == 4 * 3  # 4 runs × 3 questions on the first page
            shot(page, "compare")

            choose(page, "Show", "only disagreements")
            page.get_by_text(re.compile(r"shown")).first.wait_for()
            shot(page, "compare-disagreements")
        except Exception:
            if browser.contexts and browser.contexts[0].pages:  # what the page showed when the test gave up
                shot(browser.contexts[0].pages[0], "failure")
            raise
        finally:
            browser.close()
    for name_ in ("launch", "runs", "results", "compare"):
        assert (ARTIFACTS / f"browser-{name_}.png").stat().st_size > 10_000
