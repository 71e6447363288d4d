"""A real browser (Debian's headless Chromium driven by Playwright) uses the running UI: the `browser_comparison`
fixture launched a tiny comparison of the four objectives from the Launch page and waited until every run was
trained and evaluated; here the browser reads the runs, the results and the chains side by side. Screenshots go
to tests/artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ui.conftest import (
    ARTIFACTS,
    COMPARISON,
    OBJECTIVES,
    UI_PAGES,
    Backend,
    Comparison,
    Seeded,
    choose,
    chromium,
    fill,
    open_launch,
    screenshot,
    screenshot_every_page,
    wait_until,
)

# how long a page may take to show a state under heavy load (the test waits for the state, not for a delay)
SLOW_MS = 180_000


def click_until(page: Any, key: str, done: Callable[[], Any], what: str, timeout: float = 180) -> None:
    """Click the button with widget key `key` until the API shows `done()`. Waits on the server, not on a fixed
    delay: a click that lands while its live fragment reruns (every 2 s) can be dropped, so it is repeated while
    the button is still there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        button = page.locator(f".st-key-{key} button")
        try:
            button.click(timeout=30_000)
        except PlaywrightTimeout:
            pass  # not there (yet, or any more: an earlier click landed and the page moved on)
        try:
            wait_until(done, 20, f"the {what} to reach the server")
            return
        except AssertionError:
            continue
    raise AssertionError(f"the {what} click never reached the server in {timeout}s")


@pytest.fixture(autouse=True)
def every_page_on_failure(request: pytest.FixtureRequest, ui_server: str) -> Iterator[None]:
    """A failed browser test leaves a screenshot of every page in tests/artifacts/ (failure-<test>-<page>.png)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot_every_page(ui_server, f"failure-{request.node.name}")


def test_every_page_renders_for_a_fresh_visitor(ui_server: str) -> None:
    """What the failure fixture relies on: each page of ui/app.py opens and is captured."""
    shots = screenshot_every_page(ui_server, "pages")
    assert [p.name for p in shots] == [f"browser-pages-{name}.png" for name in UI_PAGES]
    assert all(p.stat().st_size > 10_000 for p in shots)


def test_browser_launches_a_comparison_and_compares_chains(
    ui_server: str, backend: Backend, browser_comparison: Comparison
) -> None:
    comparison = browser_comparison
    assert "4 training run(s)" in comparison.summary, comparison.summary
    assert "3 questions × shots [0, 1] × seeds [0] = 24 generations" in comparison.summary, comparison.summary
    assert sorted(r["config"]["objective"] for r in comparison.runs) == OBJECTIVES
    assert {r["config"]["max_steps"] for r in comparison.runs} == {2}
    assert [r["status"] for r in comparison.runs] == ["succeeded"] * 4, backend.log_tail()
    assert len(comparison.evaluations) == 4 and {e["status"] for e in comparison.evaluations} == {"succeeded"}

    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(f"{ui_server}/runs")
        page.get_by_text("training loss").first.wait_for()
        screenshot(page, "runs")

        page.get_by_test_id("stSidebarNav").get_by_text("Results", exact=True).click()
        page.get_by_text(re.compile("Table 1")).wait_for()
        # the table is drawn after its heading: wait for it
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=60_000)
        screenshot(page, "results")

        page.get_by_test_id("stSidebarNav").get_by_text("Compare chains", exact=True).click()
        choose(page, "Dataset", "svamp-test")
        page.get_by_text(re.compile("gold answer")).first.wait_for()
        headers = [page.get_by_text(re.compile(rf"{COMPARISON}\.{objective} →")) for objective in OBJECTIVES]
        # each run's verdict on each of the 3 questions, once the page has drawn them all
        for header in headers:
            expect(header).to_have_count(3, timeout=60_000)
        expect(page.locator(".aicd-chain")).to_have_count(4 * 3, timeout=60_000)
        screenshot(page, "compare")

        choose(page, "Show", "only disagreements")
        page.get_by_text(re.compile("shown")).first.wait_for()
        screenshot(page, "compare-disagreements")
    for name in ("launch", "runs", "results", "compare"):
        assert (ARTIFACTS / f"browser-{name}.png").stat().st_size > 10_000


def test_browser_cancels_and_resumes_a_run_of_a_comparison_and_shares_its_url(
    ui_server: str, backend: Backend, seeded: Seeded
) -> None:
    """Launch a smoke comparison from the Launch page (runs long enough to cancel), cancel one of its runs on
    the Runs page, see `cancelled`, resume it, then open the page's URL in a new browser context (another
    user) and land on the same run."""
    api = backend.client
    name = "browser-cancel"
    with chromium() as browser:
        page = open_launch(browser, ui_server, seeded)
        fill(page, "max steps (0 = no cap)", 100_000)  # the smoke preset, but long enough to cancel
        fill(page, "Name", name)
        page.get_by_role("button", name="Launch", exact=True).click()
        page.get_by_text(re.compile(r"Queued \d run\(s\)")).wait_for(timeout=SLOW_MS)
        sweep = wait_until(
            lambda: next((s for s in api.sweeps() if s["name"] == name), None), 60, "the sweep"
        )
        try:
            run = wait_until(
                lambda: next((r for r in api.runs(sweep_id=sweep["id"]) if r["status"] == "running"), None),
                600,
                "a running run of the comparison",
            )
            page.goto(f"{ui_server}/runs?run={run['id']}")
            page.get_by_role("heading", name=run["name"]).first.wait_for(timeout=SLOW_MS)  # its run panel
            click_until(
                page,
                f"runs_cancel_{run['id']}",
                lambda: (r := api.run(run["id"]))["cancel_requested"] or r["status"] == "cancelled",
                "cancel",
            )
            wait_until(lambda: api.run(run["id"])["status"] == "cancelled", 300, "the run to stop")
            page.get_by_text("This run was cancelled").wait_for(timeout=SLOW_MS)  # the live panel caught up
            screenshot(page, "runs-cancelled")
            click_until(
                page,
                f"runs_resume_{run['id']}",
                lambda: api.run(run["id"])["status"] in ("queued", "running"),
                "resume",
            )
            assert f"run={run['id']}" in page.url

            other = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()  # another user
            other.set_default_timeout(60_000)
            other.goto(page.url)
            other.get_by_role("heading", name=run["name"]).first.wait_for(timeout=SLOW_MS)  # that run's panel
            assert f"run={run['id']}" in other.url
            screenshot(other, "runs-shared-url")
        finally:
            if api.sweep(sweep["id"])["status"] in ("queued", "running"):
                api.job_action("sweeps", sweep["id"], "cancel")
