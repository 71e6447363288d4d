"""Every page driven with Streamlit's AppTest against a real backend (uvicorn + SQLite + embedded executor)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st

from tests.support.fake_teacher import start_fake_teacher
from tests.support.word_tokenizer import save_word_tokenizer
from tests.ui.conftest import (
    API_COMPARISON,
    REPO,
    TINY_TRAIN,
    Backend,
    Comparison,
    Seeded,
    app_test,
    backend_env,
    free_port,
    job_ended,
    no_traceback,
    plotly_values,
    texts,
    wait_until,
)
from ui.components import results as res
from ui.components.common import md_escape

PAGES = ["datasets", "annotate", "schedule", "launch", "runs", "results", "compare"]


def select_dataset(at, key: str, dataset: dict) -> None:
    at.selectbox(key=key).set_value(dataset["id"]).run()


# ------------------------------------------------------------------------------------------ failure modes


@pytest.mark.parametrize("page", PAGES)
def test_unreachable_backend_shows_a_message_not_a_traceback(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICD_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    at = app_test(page)
    no_traceback(at)
    errors = [e.value for e in at.error]
    assert any("Backend unreachable" in e and "aicd up" in e for e in errors), errors


def test_empty_backend_every_page_explains_what_to_do(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port)],
        cwd=REPO,
        env=backend_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 120, "a fresh API")
        monkeypatch.setenv("AICD_API_URL", url)
        for page in PAGES:
            at = app_test(page)
            no_traceback(at)
            assert not at.error, (page, [e.value for e in at.error])
            shown = texts(at)
            assert (
                "No datasets yet" in shown
                or "No training runs yet" in shown
                or "No finished evaluations" in shown
                or "Nothing to compare yet" in shown
            ), (page, shown)

        # a dataset without questions (the API refuses to create one; an older import or a restore can)
        import sqlite3

        with sqlite3.connect(tmp_path / "aicd.db") as db:
            db.execute(
                "INSERT INTO datasets (name, description, source, answer_kind, n_examples, created_at) "
                "VALUES ('hollow', '', 'test', NULL, 0, '2026-01-01 00:00:00.000000')"
            )
        st.cache_data.clear()  # the page read "no datasets" a moment ago
        at = app_test("datasets")
        no_traceback(at)
        assert any("This dataset is empty" in w.value for w in at.warning), texts(at)
        captions = [c.value for c in at.caption]
        assert "no questions (of 0)" in captions and not any("questions 1–0" in c for c in captions), captions
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ datasets


def test_datasets_page_counts_rationales_and_pages_through_questions(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("datasets")
    select_dataset(at, "ds_pick", seeded.train)
    no_traceback(at)
    metrics = {m.label: m.value for m in at.metric}
    stats = ui_env.client.dataset_stats(seeded.train["id"])
    assert metrics["questions"] == str(stats["questions"]) == "24"
    assert metrics["rationales"] == str(stats["rationales"]) and stats["rationales"] > 0
    preview = at.dataframe[1].value
    assert len(preview) == 10
    first_page = list(preview["id"])
    at.button(key="ds_next").click().run()
    second = at.dataframe[1].value
    assert len(second) == 10 and not set(second["id"]) & set(first_page)
    assert "questions 11–20 of 24" in texts(at)
    at.button(key="ds_prev").click().run()
    assert list(at.dataframe[1].value["id"]) == first_page


def test_dataset_without_rationales_says_to_annotate(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("datasets")
    select_dataset(at, "ds_pick", seeded.bare)
    no_traceback(at)
    assert any("No rationales yet" in w.value for w in at.warning)


def test_upload_csv_with_field_mapping_and_an_empty_file(ui_env: Backend) -> None:
    csv = (
        "qid,problem,solution,label\nx1,How many legs do 2 cats have?,Each cat has 4 legs so 2*4 = 8.,8\n"
        "x2,What is 3 times 3?,3*3 = 9.,9\n"
    )
    at = app_test("datasets")
    at.file_uploader(key="up_file").set_value(("cats.csv", csv.encode(), "text/csv")).run()
    no_traceback(at)
    at.selectbox(key="up_map_id").set_value("qid").run()
    at.selectbox(key="up_map_q").set_value("problem").run()
    at.selectbox(key="up_map_a").set_value("label").run()
    at.selectbox(key="up_map_r").set_value("solution").run()
    at.text_input(key="up_writer").set_value("hand-written").run()
    at.text_input(key="up_name").set_value("cats-csv").run()
    at.button(key="up_go").click().run()
    no_traceback(at)
    assert any("cats-csv" in s.value and "2 questions" in s.value for s in at.success), [
        e.value for e in at.error
    ]
    api = ui_env.client
    ds = next(d for d in api.datasets() if d["name"] == "cats-csv")
    items = api.examples(ds["id"])["items"]
    assert [(e["ext_id"], e["answer"]) for e in items] == [("x1", "8"), ("x2", "9")]
    assert items[0]["rationales"][0]["text"] == "Each cat has 4 legs so 2*4 = 8."
    assert items[0]["rationales"][0]["model"] == "hand-written"

    at.file_uploader(key="up_file").set_value(("empty.jsonl", b"  \n", "application/json")).run()
    no_traceback(at)
    assert any("empty.jsonl" in e.value and "empty" in e.value for e in at.error)
    at.file_uploader(key="up_file").set_value(
        ("bad.jsonl", b'{"question": "q"}\nnot json\n', "text/plain")
    ).run()
    no_traceback(at)
    assert any("line 2: invalid JSON" in e.value for e in at.error)


def test_import_a_builtin_from_the_page(ui_env: Backend) -> None:
    at = app_test("datasets")
    at.selectbox(key="imp_src").set_value("multiarith").run()
    at.selectbox(key="imp_split").set_value("test").run()
    at.number_input(key="imp_limit").set_value(5).run()
    at.text_input(key="imp_name").set_value("ma-from-ui").run()
    at.button(key="imp_go").click().run()
    no_traceback(at)
    assert any("ma-from-ui" in s.value for s in at.success)
    stored = [d for d in ui_env.client.datasets() if d["name"] == "ma-from-ui"]
    assert stored and stored[0]["n_examples"] == 5
    at.button(key="imp_go").click().run()  # same name again: the server's 409 shows as a message
    no_traceback(at)
    assert any("already exists" in e.value for e in at.error)


# ------------------------------------------------------------------------------------------ annotate


def test_annotate_start_stays_disabled_while_the_template_is_invalid(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("annotate")
    select_dataset(at, "ann_dataset", seeded.bare)
    assert not at.button(key="ann_start").disabled
    at.text_area(key="ann_template").set_value("Question: {question} Answer:").run()  # no {answer}
    no_traceback(at)
    assert at.button(key="ann_start").disabled
    at.text_area(key="ann_template").set_value("Q: {question} A ({answer}):").run()
    assert not at.button(key="ann_start").disabled


def test_annotate_with_a_teacher_key_entered_once_and_filter_statistics(ui_env: Backend) -> None:
    api = ui_env.client
    lines = [
        json.dumps(
            {
                "id": f"a{i}",
                "question": f"Tom has {i} apples and buys {i} more. How many?",
                "answer": str(2 * i),
            }
        )
        for i in range(1, 4)
    ]
    ds = api.upload_dataset("to-annotate", "\n".join(lines).encode())
    base_url, teacher = start_fake_teacher()
    secret = "sk-ui-test-not-shown-4242"
    try:
        at = app_test("annotate")
        select_dataset(at, "ann_dataset", ds)
        at.text_input(key="ann_base_url").set_value(base_url).run()
        at.text_input(key="ann_teacher").set_value("fake-teacher").run()
        at.text_input(key="ann_api_key").set_value(secret).run()
        at.number_input(key="ann_k").set_value(2).run()
        at.number_input(key="ann_preview_idx").set_value(1).run()
        no_traceback(at)
        preview = [c.value for c in at.code]
        assert any("Tom has 2 apples" in p and "The answer should be 4" in p for p in preview), preview
        at.text_area(key="ann_template").set_value("Explain {question}").run()  # no {answer}: server says so
        assert any("{answer}" in e.value for e in at.error)
        at.button(key="ann_reset_prompt").click().run()
        at.button(key="ann_start").click().run()
        no_traceback(at)
        assert at.text_input(key="ann_api_key").value == ""  # the key left the page

        jobs = api.annotations(dataset_id=ds["id"])
        assert len(jobs) == 1 and jobs[0]["has_api_key"]
        job = wait_until(
            lambda: (j := api.annotation(jobs[0]["id"]))["status"] not in ("queued", "running") and j,
            240,
            "the annotation job",
        )
        assert job["status"] == "succeeded", job
        at.run()
        no_traceback(at)
        shown = texts(at)
        assert "key stored server-side: yes" in shown
        charts_shown = json.dumps([c.proto.spec for c in at.get("plotly_chart")])
        assert "filter statistics" in charts_shown and "announce two answers" in charts_shown
        assert "questions have at least one rationale" in shown
        assert secret not in shown and secret not in json.dumps(job)
        assert f"A key for `{base_url}` is stored on the server" in shown
        report = job["report"]
        metrics = {m.label: m.value for m in at.metric}
        assert report["prompt_tokens"] > 0 and report["completion_tokens"] > 0, report
        assert metrics["prompt tokens"] == f"{report['prompt_tokens']:,}"
        assert metrics["completion tokens"] == f"{report['completion_tokens']:,}"
        assert metrics["cost"] == "n/a"  # a model without a price: unknown cost, not a made-up one
        assert metrics["requests / retries"] == f"{report['requests']} / {report['retries']}"
        assert "refreshes every" not in shown  # a finished job is not polled

        # no key typed this time: the endpoint's stored key is used; a priced model shows its cost
        at.text_input(key="ann_teacher").set_value("gpt-3.5-turbo").run()
        at.button(key="ann_start").click().run()
        no_traceback(at)
        second = [j for j in api.annotations(dataset_id=ds["id"]) if j["id"] != job["id"]]
        assert len(second) == 1 and second[0]["has_api_key"], second
        done = wait_until(
            lambda: (j := api.annotation(second[0]["id"]))["status"] not in ("queued", "running") and j,
            240,
            "second job",
        )
        assert done["status"] == "succeeded", done
        at.run()
        no_traceback(at)
        cost = done["report"]["cost_usd"]
        assert cost and cost > 0, done["report"]
        assert {m.label: m.value for m in at.metric}["cost"] == f"${cost:.4f}"
        at.button(key="ann_forget_key").click().run()
        no_traceback(at)
        assert f"No key stored for `{base_url}`" in texts(at)
        assert base_url not in [k["base_url"] for k in api.teacher_keys()]
    finally:
        teacher.close()


# ------------------------------------------------------------------------------------------ schedule


def test_schedule_designer_bars_and_shaded_episode(ui_env: Backend, seeded: Seeded, tmp_path: Path) -> None:
    at = app_test("schedule")
    select_dataset(at, "sched_dataset", seeded.train)
    at.slider(key="sched_n").set_value(3).run()
    at.selectbox(key="sched_name").set_value("custom").run()
    at.slider(key="sched_w_0").set_value(0.0).run()
    at.slider(key="sched_w_1").set_value(0.5).run()
    at.slider(key="sched_w_2").set_value(1.0).run()
    no_traceback(at)
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert bars["data"][0]["y"] == [0.0, 0.5, 1.0]
    html = "".join(h.value for h in at.html)
    assert "ω=0.5" in html and "ω=1" in html and "Question:" in html
    assert "ω=0.5" in html.split("shot 2 · target")[1].split('"')[0] or "shot 2 · target · ω=0.5" in html
    assert at.session_state["schedule_choice"]["weights"] == [0.0, 0.5, 1.0]
    assert any("Tokenizer: byte-level" in c.value for c in at.caption)
    bytes_tokens = next(m.value for m in at.metric if m.label == "tokens")

    student = save_word_tokenizer(tmp_path / "student")  # a real checkpoint's tokenizer splits the episode
    at.text_input(key="sched_model").set_value(str(student)).run()
    no_traceback(at)
    assert any(f"Tokenizer: {student} (its tokenizer.json" in c.value for c in at.caption)
    assert int(next(m.value for m in at.metric if m.label == "tokens")) < int(bytes_tokens) / 2
    assert at.session_state["schedule_choice"]["model"] == str(student)  # Launch starts from this student


def test_schedule_designer_bars_follow_the_objective(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("schedule")
    select_dataset(at, "sched_dataset", seeded.train)
    at.slider(key="sched_n").set_value(3).run()
    at.selectbox(key="sched_objective").set_value("condgen").run()
    no_traceback(at)
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert bars["data"][0]["y"] == [0.0, 0.0, 1.0]  # CondGen supervises only the last shot, whatever ω says
    assert any("does not follow the schedule" in c.value for c in at.caption)
    at.selectbox(key="sched_objective").set_value("aicd").run()
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert bars["data"][0]["y"] == pytest.approx([0.1, 0.1, 1.0])


def test_schedule_designer_on_data_without_rationales_explains(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("schedule")
    select_dataset(at, "sched_dataset", seeded.bare)
    no_traceback(at)
    assert any("no example has a rationale" in w.value for w in at.warning), [w.value for w in at.warning]


# ------------------------------------------------------------------------------------------ launch


def test_launch_summary_validation_and_a_queued_comparison(ui_env: Backend, seeded: Seeded) -> None:
    api = ui_env.client
    at = app_test("launch")
    select_dataset(at, "launch_train_ds", seeded.train)
    select_dataset(at, "launch_eval_ds", seeded.test)
    at.number_input(key="launch_max_steps").set_value(1).run()
    at.text_input(key="launch_eval_shots").set_value("0, 1").run()
    at.text_input(key="launch_eval_seeds").set_value("0").run()
    at.number_input(key="launch_eval_limit").set_value(2).run()
    at.text_input(key="launch_name").set_value("ui-cmp").run()
    no_traceback(at)
    summary = texts(at)
    assert (
        "4 training run(s)" in summary
        and "2 questions × shots [0, 1] × seeds [0] = **16 generations**" in summary
    )
    assert list(at.dataframe[0].value["objective"]) == ["AICD", "CondGen", "LM", "no-CoT"]

    at.selectbox(key="launch_schedule").set_value("custom").run()
    at.text_input(key="launch_weights").set_value("0.1, 0.2, 1").run()  # 3 weights for n = 2 (smoke preset)
    no_traceback(at)
    assert [e.value for e in at.error] == ["custom ω per shot: give one weight per shot, 2 in all (got 3)."]
    assert at.button(key="launch_go").disabled  # nothing can launch while a field is invalid
    assert not [r for r in api.runs() if r["name"].startswith("ui-cmp")]

    at.selectbox(key="launch_schedule").set_value("paper").run()
    at.button(key="launch_go").click().run()
    no_traceback(at)
    assert any("Queued 4 run(s) as sweep" in s.value for s in at.success), [s.value for s in at.success]
    # one sweep job over the objectives, trained and evaluated on the server (not by this browser session)
    sweep = next(s for s in api.sweeps() if s["name"] == "ui-cmp")
    cfg = sweep["config"]
    assert cfg["grid"] == {"objective": ["aicd", "condgen", "lm", "nocot"]}
    assert cfg["train"]["dataset"] == f"db:{seeded.train['id']}" and cfg["train"]["max_steps"] == 1
    assert cfg["eval_datasets"] == [f"db:{seeded.test['id']}"]
    # the accuracy curve during training is on by default when there is an evaluation dataset
    assert cfg["train"]["eval_every"] == 10 and cfg["train"]["eval_dataset"] == f"db:{seeded.test['id']}"
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["eval_limit"] == 8  # the smoke preset's
    assert cfg["eval"]["shots_dataset"] == f"db:{seeded.train['id']}" and cfg["eval"]["shots"] == [0, 1]
    assert at.session_state["launched_sweeps"][-1]["id"] == sweep["id"]
    if api.sweep(sweep["id"])["status"] in (
        "queued",
        "running",
    ):  # keep the shared backend free for the others
        api.job_action("sweeps", sweep["id"], "cancel")


# ------------------------------------------------------------------------------------------ runs


def test_runs_page_curves_evaluations_and_a_failed_run(
    ui_env: Backend, comparison: Comparison, failed_run: dict
) -> None:
    at = app_test("runs")
    aicd = next(r for r in comparison.runs if r["config"]["objective"] == "aicd")
    at.selectbox(key="runs_pick").set_value(aicd["id"]).run()
    no_traceback(at)
    shown = texts(at)
    assert aicd["name"] in shown and "succeeded" in shown
    specs = [json.loads(p.proto.spec) for p in at.get("plotly_chart")]
    curve = next(s for s in specs if s["layout"]["title"]["text"] == "training loss")
    assert len(plotly_values(curve["data"][0]["x"])) == len(ui_env.client.metrics(aicd["id"])) > 0
    acc = next(s for s in specs if s["layout"]["title"]["text"].startswith("accuracy during training"))
    assert "2 held-out items, 0-shot" in acc["layout"]["title"]["text"]
    assert list(plotly_values(acc["data"][0]["x"])) == [1, 2]  # eval_every=1, max_steps=2
    assert all(0 <= y <= 100 for y in plotly_values(acc["data"][0]["y"]))
    assert any("accuracy (%) by shots" in s["layout"]["title"]["text"] for s in specs)

    failed = wait_until(lambda: job_ended(ui_env.client.run, failed_run["id"]), 300, "the failing run")
    assert failed["status"] == "failed" and "rationale" in failed["error"], failed
    at.selectbox(key="runs_pick").set_value(failed["id"]).run()
    no_traceback(at)
    errors = [e.value for e in at.error]
    assert any(e.startswith("This run failed:") and failed["error"] in e for e in errors), errors
    assert at.button(key=f"runs_resume_{failed['id']}")  # a failed run can be resumed
    assert "refreshes every" not in texts(at)  # an ended run is not polled


@pytest.fixture
def served_files(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[bytes, str | None]]:
    """What AppTest's media storage was given to serve (file id -> bytes, file name): the bytes behind each
    download button."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    served: dict[str, tuple[bytes, str | None]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # noqa: ANN001
        file_id = original(self, path_or_data, mimetype, kind, filename)
        served[file_id] = (path_or_data, filename)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return served


def _button_bytes(button, served: dict[str, tuple[bytes, str | None]]) -> bytes:  # noqa: ANN001
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".", 1)[0]
    return served[file_id][0]


def test_runs_config_and_artifacts_expanders_download_through_the_ui(
    ui_env: Backend, trained_run: dict, served_files: dict
) -> None:
    api = ui_env.client
    run = trained_run
    at = app_test("runs")
    at.selectbox(key="runs_pick").set_value(run["id"]).run()
    no_traceback(at)
    labels = [e.label for e in at.expander]
    assert "Config" in labels and "Artifacts" in labels, labels
    assert any(j.value == json.dumps(run["config"]) or json.loads(j.value) == run["config"] for j in at.json)

    arts = api.artifacts(run_id=run["id"])
    assert arts, "a finished run has artifacts"
    buttons = {b.proto.label: b for b in at.get("download_button") if b.key and b.key.startswith("runs_art_")}
    assert len(buttons) == len(arts), (list(buttons), arts)
    small = [a for a in arts if a["size_bytes"] <= 5 * 1024 * 1024]
    assert small
    for art in small:  # each button serves the artifact's bytes itself (no link to the API)
        button = next(b for label, b in buttons.items() if label.startswith(f"{art['path']} ·"))
        assert _button_bytes(button, served_files) == api.download(art["id"])
    html = json.dumps([m.value for m in at.markdown])
    assert "/api/v1/artifacts/" not in html  # no link the browser could not follow under docker / a token


def test_runs_cancel_and_resume_buttons_reach_the_api(ui_env: Backend, seeded: Seeded) -> None:
    api = ui_env.client
    long_run = api.create_run(
        {**TINY_TRAIN, "objective": "nocot", "max_steps": 100_000},
        name="ui-cancel-me",
        dataset_id=seeded.train["id"],
    )
    try:
        at = app_test("runs")
        at.selectbox(key="runs_pick").set_value(long_run["id"]).run()
        no_traceback(at)
        assert "refreshes every 2 s" in texts(at)  # an active run is polled
        at.button(key=f"runs_cancel_{long_run['id']}").click().run()
        no_traceback(at)
        cancelled = wait_until(lambda: job_ended(api.run, long_run["id"]), 120, "the cancelled run")
        assert cancelled["status"] == "cancelled", cancelled
        at.run()
        no_traceback(at)
        assert "was cancelled" in texts(at) and "refreshes every" not in texts(at)
        at.button(key=f"runs_resume_{long_run['id']}").click().run()
        no_traceback(at)
        assert api.run(long_run["id"])["status"] in ("queued", "running")
    finally:
        if api.run(long_run["id"])["status"] in ("queued", "running"):
            api.job_action("runs", long_run["id"], "cancel")


def _run_panel_tick(url: str, run_id: int) -> None:
    """What one `run_every` tick of the Runs page's panel executes: the panel alone, outside the page guard."""
    from ui.client import ApiClient
    from ui.components import live

    live.run_panel(ApiClient(url, timeout=3), run_id, 2.0)


def test_runs_panel_tick_with_the_backend_gone_shows_a_message(
    ui_env: Backend, comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    run = comparison.runs[0]
    tick = AppTest.from_function(_run_panel_tick, args=(ui_env.url, run["id"]), default_timeout=60)
    tick.run()
    no_traceback(tick)
    assert run["name"] in texts(tick)

    dead = f"http://127.0.0.1:{free_port()}"  # the backend went away while the page was open
    tick = AppTest.from_function(_run_panel_tick, args=(dead, run["id"]), default_timeout=60)
    tick.run()
    no_traceback(tick)
    assert any("Backend unreachable" in e.value for e in tick.error), [e.value for e in tick.error]

    at = app_test("runs")  # the whole page, then the backend is gone at the next rerun
    at.selectbox(key="runs_pick").set_value(run["id"]).run()
    no_traceback(at)
    monkeypatch.setenv("AICD_API_URL", dead)
    at.run()
    no_traceback(at)
    assert any("Backend unreachable" in e.value for e in at.error), [e.value for e in at.error]


# ------------------------------------------------------------------------------------------ results


def test_results_table_figures_and_exports(ui_env: Backend, comparison: Comparison) -> None:
    at = app_test("results")
    at.selectbox(key="res_scope").set_value(comparison.sweep["id"]).run()
    at.text_input(key="res_filter").set_value(API_COMPARISON).run()
    no_traceback(at)
    table = at.dataframe[0].value
    assert list(table.index) == ["AICD", "CondGen", "LM", "no-CoT"] and list(table.columns) == ["svamp-test"]
    ev = next(e for e in comparison.evaluations if e["run_id"] == comparison.runs[0]["id"])
    acc = 100 * next(r["accuracy"] for r in ev["rows"] if r["shots"] == 0)
    assert table.loc["AICD", "svamp-test"] == f"{acc:.1f}"  # one training run: no ± (no spread between runs)
    assert "mean ± sample std over training runs" in texts(at)  # the aggregator's rule, stated in the caption
    n_items = next(r["n"] for r in ev["rows"] if r["shots"] == 0)
    assert f"Data: svamp-test (test split, {n_items} items)" in texts(at)  # what the cells rest on
    assert f"svamp-test: one question = {100 / n_items:.3g} points" in texts(at)  # how coarse a cell is
    codes = [c.value for c in at.code]
    assert any(c.startswith("| objective | svamp-test |") and "| AICD |" in c for c in codes)
    assert any("\\begin{tabular}" in c and "$\\pm$" in c for c in codes)
    assert len(at.get("download_button")) == 4
    titles = [json.loads(p.proto.spec)["layout"]["title"]["text"] for p in at.get("plotly_chart")]
    assert "accuracy vs number of in-context shots" in titles
    assert any("at least two ω values" in i.value for i in at.info)  # Fig. 1 needs an ω sweep
    at.selectbox(key="res_shots").set_value(1).run()
    no_traceback(at)
    assert "at 1 shot(s)" in texts(at)


def test_results_default_to_the_newest_sweep_and_draw_fig1_with_error_bars(
    ui_env: Backend, comparison: Comparison, omega_sweep: Comparison
) -> None:
    at = app_test("results")
    no_traceback(at)
    assert at.selectbox(key="res_scope").value == omega_sweep.sweep["id"]  # not "all runs"
    table = at.dataframe[0].value
    assert list(table.index) == ["AICD (ω=0)", "AICD (ω=1)"], table
    assert "rows are split" in texts(at).lower()

    fig1 = next(
        json.loads(p.proto.spec)
        for p in at.get("plotly_chart")
        if json.loads(p.proto.spec)["layout"]["title"]["text"].startswith("accuracy vs ω")
    )
    (line,) = fig1["data"]
    assert plotly_values(line["x"]) == [0.0, 1.0]
    names = {d["id"]: d["name"] for d in ui_env.client.datasets()}
    df = res.accuracy_frame(omega_sweep.evaluations, omega_sweep.runs, names, ui_env.client.objectives())
    expected = res.summarize(df[df["shots"] == 1], ["omega"], ui_env.client).sort_values("omega")
    assert plotly_values(line["y"]) == pytest.approx(list(expected["mean"]))
    assert plotly_values(line["error_y"]["array"]) == pytest.approx(
        list(expected["std"])
    )  # the error bars: std over training runs
    assert list(expected["n"]) == [2, 2]


def test_results_never_average_runs_with_different_settings_silently(
    ui_env: Backend, comparison: Comparison, omega_sweep: Comparison
) -> None:
    at = app_test("results")
    at.selectbox(key="res_scope").set_value("all").run()  # all runs: the comparison and the ω sweep
    at.selectbox(key="res_shots").set_value(1).run()
    no_traceback(at)
    table = at.dataframe[0].value
    aicd_rows = [i for i in table.index if i.startswith("AICD")]
    assert len(aicd_rows) == 3, table  # ω = 0.1 (comparison), 0 and 1 (sweep): three rows, not one mean
    assert all("ω=" in i for i in aicd_rows)
    assert {"CondGen", "LM", "no-CoT"} <= set(table.index)
    split = at.multiselect(key="res_split")
    assert "omega" in split.value
    split.set_value([k for k in split.value if k != "omega"]).run()
    no_traceback(at)
    assert any("average runs with different settings" in w.value and "omega" in w.value for w in at.warning)


# ------------------------------------------------------------------------------------------ compare


def test_compare_chains_side_by_side_filters_and_paging(ui_env: Backend, comparison: Comparison) -> None:
    at = app_test("compare")
    at.selectbox(key="cmp_dataset").set_value("svamp-test").run()
    picked = [r for r in comparison.runs if r["config"]["objective"] in ("aicd", "nocot")]
    at.multiselect(key="cmp_runs").set_value([r["id"] for r in picked]).run()
    at.selectbox(key="cmp_shots").set_value(0).run()  # (the ω sweep's runs, shown first, had only 1 shot)
    no_traceback(at)
    rows = ui_env.client.compare(run_ids=[r["id"] for r in picked], shots=0, seed=0)["items"]
    assert len(rows) == 6
    at.segmented_control(key="cmp_size").set_value(25).run()
    shown = texts(at)
    for row in rows:
        assert md_escape(row["gold"]) in shown and md_escape(row["example_id"]) in shown
        for entry in row["entries"]:
            mark = ":green[✔]" if entry["correct"] else ":red[✘]"  # coloured verdicts
            short = {"aicd": "AICD", "nocot": "no-CoT"}[
                next(r for r in picked if r["name"] == entry["run_name"])["config"]["objective"]
            ]
            assert (
                f"{mark} **{short}** · {md_escape(entry['run_name'])} → `{entry['extracted'] or '∅'}`"
                in shown
            )
    html = "".join(h.value for h in at.html)
    assert 'class="aicd-chain"' in html
    assert f"shown {len(rows)} / {len(rows)}" in shown.replace("\n", " ")

    at.selectbox(key="cmp_filter").set_value("only disagreements").run()
    no_traceback(at)
    n_dis = sum(not r["agree"] for r in rows)
    assert f"{n_dis} / {len(rows)}" in texts(at)

    at.selectbox(key="cmp_filter").set_value("A right, B wrong").run()
    at.selectbox(key="cmp_a").set_value(1).run()
    at.selectbox(key="cmp_b").set_value(0).run()
    no_traceback(at)
    n_ab = sum(r["entries"][1]["correct"] is True and r["entries"][0]["correct"] is False for r in rows)
    assert f"shown {n_ab} / {len(rows)}" in texts(at).replace("\n", " ")
    at.selectbox(key="cmp_b").set_value(1).run()  # A = B compares nothing
    no_traceback(at)
    assert any("same run" in w.value for w in at.warning), [w.value for w in at.warning]
    at.selectbox(key="cmp_b").set_value(0).run()

    at.selectbox(key="cmp_filter").set_value("all questions").run()
    word = rows[0]["question"].split()[2]
    at.text_input(key="cmp_search").set_value(word).run()
    expected = sum(
        word.lower() in (r["question"] + "".join(e["generation"] or "" for e in r["entries"])).lower()
        for r in rows
    )
    assert f"shown {expected} / {len(rows)}" in texts(at).replace("\n", " ")

    # paging: 6 questions at 5 per page
    at.text_input(key="cmp_search").set_value("").run()
    at.segmented_control(key="cmp_size").set_value(5).run()
    no_traceback(at)
    shown = texts(at)
    assert "page 1 of 2 · questions 1–5" in shown
    assert md_escape(rows[5]["example_id"]) not in shown
    at.button(key="cmp_next").click().run()
    no_traceback(at)
    shown = texts(at)
    assert "page 2 of 2 · questions 6–6" in shown
    assert f"**{md_escape(rows[5]['example_id'])}**" in shown
    assert f"**{md_escape(rows[0]['example_id'])}**" not in shown
    assert at.button(key="cmp_next").disabled and at.button(key="cmp_next_bottom").disabled  # top and bottom
    at.button(key="cmp_prev").click().run()
    assert "page 1 of 2" in texts(at)


def test_compare_needs_two_distinct_runs(ui_env: Backend, comparison: Comparison) -> None:
    at = app_test("compare")
    at.selectbox(key="cmp_dataset").set_value("svamp-test").run()
    at.multiselect(key="cmp_runs").set_value([comparison.runs[0]["id"]]).run()
    no_traceback(at)
    assert any("two to four different runs" in i.value for i in at.info), [i.value for i in at.info]
    assert not at.html  # no chains for a "comparison" of one run


def test_compare_shows_dollar_amounts_literally(
    ui_env: Backend, seeded: Seeded, comparison: Comparison
) -> None:
    """GSM8K-style questions with two `$` must not turn into LaTeX between them."""
    api = ui_env.client
    question = "Josh buys a house for $80,000 and then puts in $50,000 in repairs. What is 2_000 * 3?"
    ds = api.upload_dataset(
        "dollars", (json.dumps({"id": "d1", "question": question, "answer": "6000"}) + "\n").encode()
    )
    picked = comparison.runs[:2]
    evals = [
        api.create_evaluation(
            {"shots": [0], "seeds": [0], "max_new_tokens": 8},
            run_id=r["id"],
            dataset_id=ds["id"],
            shots_dataset_id=seeded.train["id"],
        )
        for r in picked
    ]
    for ev in evals:
        done = wait_until(lambda ev=ev: job_ended(api.evaluation, ev["id"]), 300, "the evaluation")
        assert done["status"] == "succeeded", done
    at = app_test("compare")
    at.selectbox(key="cmp_dataset").set_value("dollars").run()
    at.multiselect(key="cmp_runs").set_value([r["id"] for r in picked]).run()
    no_traceback(at)
    shown = [m.value for m in at.markdown]
    assert md_escape(question) in shown, shown
    assert "\\$80,000 and then puts in \\$50,000" in md_escape(question)
    assert not any("$80,000" in m and "\\$80,000" not in m for m in shown)  # never an unescaped pair of $


def _cancel_sweep(api, sweep_id: int) -> None:
    if api.sweep(sweep_id)["status"] in ("queued", "running"):
        api.job_action("sweeps", sweep_id, "cancel")


def test_launch_an_omega_by_seed_sweep(ui_env: Backend, seeded: Seeded) -> None:
    api = ui_env.client
    at = app_test("launch")
    at.segmented_control(key="launch_mode").set_value("sweep").run()
    select_dataset(at, "launch_train_ds", seeded.train)
    select_dataset(at, "launch_eval_ds", seeded.test)
    at.number_input(key="launch_max_steps").set_value(1).run()
    at.text_input(key="launch_sweep_omegas").set_value("0, 0.5, 1").run()
    at.text_input(key="launch_sweep_seeds").set_value("0, 1").run()
    at.text_input(key="launch_name").set_value("ui-sweep").run()
    no_traceback(at)
    assert "6 training run(s)" in texts(at)
    plan = at.dataframe[0].value
    assert sorted(zip(plan["ω"], plan["seed"], strict=True)) == [
        (w, s) for w in (0.0, 0.5, 1.0) for s in (0, 1)
    ]
    at.button(key="launch_go").click().run()
    no_traceback(at)
    sweep = next(s for s in api.sweeps() if s["name"] == "ui-sweep")
    try:
        cfg = sweep["config"]
        assert cfg["grid"] == {"objective": ["aicd"], "omega": [0.0, 0.5, 1.0], "seed": [0, 1]}
        assert cfg["train"]["dataset"] == f"db:{seeded.train['id']}" and cfg["train"]["max_steps"] == 1
        assert cfg["eval_datasets"] == [f"db:{seeded.test['id']}"]
        # k-shot demonstrations come from the training data, as in a comparison, never from the test questions
        assert cfg["eval"]["shots_dataset"] == f"db:{seeded.train['id']}"
        assert any("ui-sweep" in s.value for s in at.success)
    finally:
        _cancel_sweep(api, sweep["id"])


def test_launch_a_shipped_paper_config(ui_env: Backend) -> None:
    api = ui_env.client
    shipped = {c["name"]: c for c in api.shipped_configs() if c["kind"] == "sweep"}
    assert {"table1-svamp", "fig1-omega", "fig2-shots"} <= set(shipped)
    at = app_test("launch")
    at.segmented_control(key="launch_mode").set_value("shipped").run()
    at.selectbox(key="launch_shipped").set_value("fig1-omega").run()
    no_traceback(at)
    grid = shipped["fig1-omega"]["config"]["grid"]
    n_runs = 1
    for values in grid.values():
        n_runs *= len(values)
    assert f"**{n_runs} training runs**" in texts(at) or f"{n_runs} training runs" in texts(at)
    assert any("omega:" in c.value for c in at.code)
    at.text_input(key="launch_shipped_name").set_value("ui-fig1").run()
    at.button(key="launch_shipped_go").click().run()
    no_traceback(at)
    sweep = next(s for s in api.sweeps() if s["name"] == "ui-fig1")
    try:
        assert sweep["config"]["grid"] == grid
        assert any("ui-fig1" in s.value for s in at.success)
    finally:
        _cancel_sweep(api, sweep["id"])


def test_a_shipped_config_with_cli_only_rows_launches_here_only_without_them(ui_env: Backend) -> None:
    """table1-svamp has the STaR and vanilla rows, which a server sweep refuses (422): the page says so,
    keeps Launch disabled until the user agrees to drop them, and then launches the rest."""
    api = ui_env.client
    shipped = {c["name"]: c for c in api.shipped_configs() if c["kind"] == "sweep"}
    assert set(shipped["table1-svamp"]["cli_only"]) == {"star", "untuned"}
    at = app_test("launch")
    at.segmented_control(key="launch_mode").set_value("shipped").run()
    at.selectbox(key="launch_shipped").set_value("table1-svamp").run()
    no_traceback(at)
    assert any("CLI only" in w.value for w in at.warning)
    assert at.button(key="launch_shipped_go").disabled
    at.checkbox(key="launch_shipped_drop_table1-svamp").check().run()
    assert not at.button(key="launch_shipped_go").disabled
    at.text_input(key="launch_shipped_name").set_value("ui-table1").run()
    at.button(key="launch_shipped_go").click().run()
    no_traceback(at)
    sweep = next(s for s in api.sweeps() if s["name"] == "ui-table1")
    try:
        assert not sweep["config"].get("star") and not sweep["config"].get("untuned")
        # the link opens the Runs page on this sweep
        links = [x.proto for x in at.get("page_link") if x.proto.label == "Follow it on the Runs page"]
        assert [x.query_string for x in links] == [f"view=sweeps&sweep={sweep['id']}"]
        assert sweep["config"]["grid"] == shipped["table1-svamp"]["config"]["grid"]
    finally:
        _cancel_sweep(api, sweep["id"])


@pytest.mark.parametrize(
    ("objective", "schedule", "n_runs"),
    [("aicd", "constant", 2), ("aicd", "custom", 2), ("nocot", "paper", 6)],
)
def test_sweep_summary_counts_omega_free_runs_once(
    ui_env: Backend, seeded: Seeded, objective: str, schedule: str, n_runs: int
) -> None:
    """A schedule that ignores ω (constant: 1 per shot; custom: the given list) makes 3 ω × 2 seeds 2 runs, as the
    server plans them; no-CoT weights its answers by ω, so there every ω is a run of its own."""
    at = app_test("launch")
    at.segmented_control(key="launch_mode").set_value("sweep").run()
    select_dataset(at, "launch_train_ds", seeded.train)
    select_dataset(at, "launch_eval_ds", seeded.test)
    at.number_input(key="launch_n").set_value(2).run()
    at.selectbox(key="launch_schedule").set_value(schedule).run()
    at.selectbox(key="launch_sweep_objective").set_value(objective).run()
    at.text_input(key="launch_sweep_omegas").set_value("0, 0.5, 1").run()
    at.text_input(key="launch_sweep_seeds").set_value("0, 1").run()
    at.text_input(key="launch_eval_shots").set_value("0").run()
    at.text_input(key="launch_eval_seeds").set_value("0").run()
    at.number_input(key="launch_eval_limit").set_value(2).run()
    no_traceback(at)
    shown = texts(at)
    assert f"{n_runs} training run(s)" in shown, shown
    assert f"2 questions × shots [0] × seeds [0] = **{2 * n_runs} generations**" in shown
    plan = at.dataframe[0].value
    assert len(plan) == n_runs and sorted(set(plan["seed"])) == [0, 1]
    assert plan["ω"].isna().all() == (n_runs == 2)


def test_launch_one_run_without_evaluation(ui_env: Backend, seeded: Seeded) -> None:
    api = ui_env.client
    at = app_test("launch")
    at.segmented_control(key="launch_mode").set_value("run").run()
    select_dataset(at, "launch_train_ds", seeded.train)
    at.selectbox(key="launch_eval_ds").set_value(None).run()
    at.selectbox(key="launch_objective").set_value("condgen").run()
    at.number_input(key="launch_max_steps").set_value(1).run()
    at.number_input(key="launch_n").set_value(2).run()
    at.text_input(key="launch_name").set_value("ui-one-run").run()
    no_traceback(at)
    assert "1 training run(s)" in texts(at) and "no evaluation." in texts(at)
    assert list(at.dataframe[0].value["run"]) == ["ui-one-run"]
    at.button(key="launch_go").click().run()
    no_traceback(at)
    run = next(r for r in api.runs() if r["name"] == "ui-one-run")
    try:
        assert any("Queued run #" in s.value and "ui-one-run" in s.value for s in at.success)
        assert run["sweep_id"] is None and run["dataset_id"] == seeded.train["id"]
        assert run["config"]["objective"] == "condgen" and run["config"]["max_steps"] == 1
        assert run["config"]["n_shots"] == 2
        # no evaluation data: the accuracy curve is measured on the training dataset (and labelled so)
        assert run["config"]["eval_every"] == 10 and run["config"]["eval_dataset"] is None
        assert not [s for s in api.sweeps() if s["name"] == "ui-one-run"]  # no evaluation, no sweep
    finally:
        if api.run(run["id"])["status"] in ("queued", "running"):
            api.job_action("runs", run["id"], "cancel")


def test_upload_jsonl_through_the_datasets_page(ui_env: Backend) -> None:
    lines = [
        {"id": "j1", "question": "Sam has 3 pens and gets 4 more. How many?", "answer": "7"},
        {
            "id": "j2",
            "question": "A box holds 5 eggs. How many in 2 boxes?",
            "answer": "10",
            "rationales": [{"text": "2 boxes * 5 = 10. So, the answer is 10.", "source": "gold"}],
        },
    ]
    content = "\n".join(json.dumps(x) for x in lines).encode()
    at = app_test("datasets")
    at.file_uploader(key="up_file").set_value(("pens.jsonl", content, "application/x-ndjson")).run()
    no_traceback(at)
    assert any("2 records" in c.value for c in at.caption), [c.value for c in at.caption]
    at.text_input(key="up_name").set_value("pens-jsonl").run()
    at.button(key="up_go").click().run()
    no_traceback(at)
    assert any("pens-jsonl" in s.value and "2 questions" in s.value for s in at.success), [
        e.value for e in at.error
    ]
    api = ui_env.client
    ds = next(d for d in api.datasets() if d["name"] == "pens-jsonl")
    items = api.examples(ds["id"])["items"]
    assert [(e["ext_id"], e["question"], e["answer"]) for e in items] == [
        (x["id"], x["question"], x["answer"]) for x in lines
    ]
    assert items[0]["rationales"] == [] and items[1]["rationales"][0]["text"].startswith("2 boxes * 5")
