"""A real browser (Debian's headless Chromium driven by Playwright) uses the running UI: the `browser_comparison`
fixture launched a tiny comparison of the four objectives from the Launch page and waited until every run was
trained and evaluated; here the browser reads the runs, the results and the chains side by side. Screenshots go
to tests/artifacts/."""

from __future__ import annotations

import re

from tests.ui.conftest import (
    ARTIFACTS,
    COMPARISON,
    OBJECTIVES,
    Backend,
    Comparison,
    choose,
    chromium,
    screenshot,
)


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
