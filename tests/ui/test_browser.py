"""A real browser (Debian's headless Chromium driven by Playwright) uses the running UI: the `browser_comparison`
fixture launched a tiny comparison of the four objectives from the Launch page and waited until every run was
trained and evaluated; here the browser reads the runs, the results and the chains side by side. Screenshots go
to tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator

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

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(f"{ui_server}/runs")
        page.get_by_text("training loss").first.wait_for()
        screenshot(page, "runs")

        page.get_by_test_id("stSidebarNav").get_by_text("Results", exact=True).click()
        page.get_by_text(re.compile("Table 1")).wait_for()
        assert page.get_by_test_id("stDataFrame").first.is_visible()
        screenshot(page, "results")

        page.get_by_test_id("stSidebarNav").get_by_text("Compare chains", exact=True).click()
        choose(page, "Dataset", "svamp-test")
        page.get_by_text(re.compile("gold answer")).first.wait_for()
        headers = [page.get_by_text(re.compile(rf"{COMPARISON}\.{objective} →")) for objective in OBJECTIVES]
        assert [h.count() for h in headers] == [3] * 4  # each run's verdict on each of the 3 questions
        assert page.locator(".aicd-chain").count() == 4 * 3
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
        page.get_by_text(re.compile(r"Queued \d run\(s\)")).wait_for()
        sweep = next(s for s in api.sweeps() if s["name"] == name)
        try:
            run = wait_until(
                lambda: next((r for r in api.runs(sweep_id=sweep["id"]) if r["status"] == "running"), None),
                300,
                "a running run of the comparison",
            )
            page.goto(f"{ui_server}/runs?run={run['id']}")
            page.get_by_role("button", name=re.compile("Cancel$")).first.click()
            page.get_by_text("This run was cancelled").wait_for(timeout=180_000)
            screenshot(page, "runs-cancelled")
            assert api.run(run["id"])["status"] == "cancelled"
            page.get_by_role("button", name=re.compile("Resume$")).first.click()
            wait_until(lambda: api.run(run["id"])["status"] in ("queued", "running"), 60, "the resumed run")
            assert f"run={run['id']}" in page.url

            other = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()  # another user
            other.set_default_timeout(60_000)
            other.goto(page.url)
            other.get_by_role("heading", name=run["name"]).first.wait_for()  # the run panel of that run
            assert f"run={run['id']}" in other.url
            screenshot(other, "runs-shared-url")
        finally:
            if api.sweep(sweep["id"])["status"] in ("queued", "running"):
                api.job_action("sweeps", sweep["id"], "cancel")
