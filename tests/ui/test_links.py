"""Every page's selection lives in st.query_params: a shared URL opens the same run, sweep, dataset, comparison or
question; a reload (a new session with the same URL) keeps it; choosing something else rewrites the URL."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import REPO, Backend, Comparison, Seeded, no_traceback
from ui.components.common import default_run


def page(name: str, **params: str) -> AppTest:
    """A page opened from a URL carrying `params` (as a shared link or a reload does)."""
    at = AppTest.from_file(str(REPO / "ui" / "views" / f"{name}.py"), default_timeout=60)
    at.query_params.update(params)
    at.run()
    no_traceback(at)
    return at


def test_the_default_run_is_the_one_training_not_the_newest_queued() -> None:
    runs = [{"id": 9, "status": "queued"}, {"id": 8, "status": "running"}, {"id": 7, "status": "succeeded"}]
    assert default_run(runs) == 8
    assert default_run([{"id": 3, "status": "queued"}, {"id": 2, "status": "failed"}]) == 3
    assert default_run([]) is None


def test_a_run_url_opens_that_run_and_a_new_choice_rewrites_it(
    ui_env: Backend, trained_run: dict, failed_run: dict
) -> None:
    for run in (trained_run, failed_run):
        at = page("runs", run=str(run["id"]))
        assert at.selectbox(key="runs_pick").value == run["id"]
        assert at.query_params["run"] == str(run["id"])
    at.selectbox(key="runs_pick").set_value(trained_run["id"]).run()
    no_traceback(at)
    assert at.query_params["run"] == str(trained_run["id"])  # the address bar follows the choice
    at.run()  # a rerun with that URL keeps the user's choice
    assert at.selectbox(key="runs_pick").value == trained_run["id"]


def test_a_dataset_url_opens_that_dataset(ui_env: Backend, seeded: Seeded) -> None:
    at = page("datasets", dataset=str(seeded.test["id"]))
    assert at.selectbox(key="ds_pick").value == seeded.test["id"]
    at.selectbox(key="ds_pick").set_value(seeded.train["id"]).run()
    assert at.query_params["dataset"] == str(seeded.train["id"])


def test_sweep_comparison_and_question_urls(ui_env: Backend, comparison: Comparison) -> None:
    sweep_id = comparison.sweep["id"]
    at = page("results", sweep=str(sweep_id))
    assert at.selectbox(key="res_scope").value == sweep_id
    at = page("runs", sweep=str(sweep_id))  # a sweep's link opens the sweeps view
    assert at.segmented_control(key="runs_view").value == "sweeps" and at.query_params["view"] == "sweeps"
    assert at.selectbox(key="sweeps_pick").value == sweep_id

    two = [comparison.runs[1]["id"], comparison.runs[3]["id"]]
    at = page("compare", dataset="svamp-test", runs=",".join(map(str, two)))
    assert at.selectbox(key="cmp_dataset").value == "svamp-test"
    assert at.multiselect(key="cmp_runs").value == two
    at.segmented_control(key="cmp_size").set_value(5).run()
    at.button(key="cmp_next").click().run()
    assert at.query_params["page"] == "2" and at.query_params["size"] == "5"
    second = [m.value for m in at.markdown if "gold answer" in m.value]
    assert any("page 2 of 2" in cap.value for cap in at.caption)
    question = re.match(r"\*\*(.+?)\*\* · gold answer", second[0]).group(1).replace("\\", "")

    reload = page("compare", **{k: str(v) for k, v in at.query_params.items()})  # the same URL, a new session
    assert any("page 2 of 2" in cap.value for cap in reload.caption)
    assert [m.value for m in reload.markdown if "gold answer" in m.value] == second

    linked = page("compare", dataset="svamp-test", runs=",".join(map(str, two)), size="5", question=question)
    assert any("page 2 of 2" in cap.value for cap in linked.caption)  # the question's page, not page 1
    assert linked.multiselect(key="cmp_runs").value == two


def test_the_runs_page_shows_one_view_chosen_in_the_url(ui_env: Backend, comparison: Comparison) -> None:
    run, sweep = comparison.runs[0], comparison.sweep
    at = page(
        "runs", run=str(run["id"]), sweep=str(sweep["id"])
    )  # a link of the tabbed page: it opened the runs
    assert at.segmented_control(key="runs_view").value == "runs" and at.query_params["view"] == "runs"
    assert at.selectbox(key="runs_pick").value == run["id"]
    assert "sweeps_pick" not in [s.key for s in at.selectbox]

    at.segmented_control(key="runs_view").set_value("evaluations").run()
    no_traceback(at)
    assert at.query_params["view"] == "evaluations"  # the address bar follows the choice
    assert not at.selectbox and not at.get("plotly_chart")  # only the evaluations render (nothing polls)
    assert at.query_params["run"] == str(run["id"])  # the other views' selections stay in the link

    at = page("runs", view="sweeps", run=str(run["id"]), sweep=str(sweep["id"]))
    assert [s.key for s in at.selectbox] == ["sweeps_pick"] and at.selectbox[0].value == sweep["id"]
    at.segmented_control(key="runs_view").set_value("runs").run()
    assert at.selectbox(key="runs_pick").value == run["id"] and at.query_params["view"] == "runs"

    at = page("runs", view="nonsense")  # an edited URL: the default view
    assert at.segmented_control(key="runs_view").value == "runs"
