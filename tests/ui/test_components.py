"""Pure pieces of the UI: chain diff highlighting, episode shading, the Table-1 pivot and its exports, upload mapping,
and the HTTP client's error messages."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from aicd import objective_registry, sweep
from tests.ui.conftest import Backend, free_port
from ui.client import ApiClient, ApiError
from ui.components import diff, episode, plans, results, upload
from ui.components.common import md_escape


def test_diff_marks_only_the_words_that_differ_and_keeps_the_text() -> None:
    a = "Tom has 3 apples. He buys 2 more, so 3 + 2 = 5.\nSo, the answer is 5."
    b = "Tom has 3 apples. He buys 4 more, so 3 + 4 = 7.\nSo, the answer is 7."
    pairs = diff.changed_mask(a, b)
    assert "".join(t for t, _ in pairs) == a
    assert [t for t, changed in pairs if changed] == ["2", "2", "5.", "5."]
    html = diff.diff_html(a, b)
    assert html.count('<mark class="d">') == 4 and "\n" in html


def test_diff_escapes_html_in_chains() -> None:
    html = diff.diff_html("<script>alert(1)</script> & 5", "5")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp;" in html


def test_diff_groups_a_run_of_changed_words_and_handles_missing_chains() -> None:
    html = diff.diff_html("the answer is nine hundred", "the answer is 900")
    assert '<mark class="d">nine hundred</mark>' in html
    assert "no chain" in diff.diff_html(None, "x") and "empty generation" in diff.diff_html("  ", "x")
    assert diff.diff_html("same words", None).count("<mark") == 0
    assert diff.similarity("a b c", "a b c") == 1.0 and diff.similarity("a b", "c d") == 0.0


def test_episode_html_shades_by_weight_and_escapes() -> None:
    spans = [
        {
            "start": 0,
            "end": 10,
            "kind": "prompt",
            "shot": 0,
            "weight": 0.0,
            "text": "Question: <b>x</b>\nAnswer:",
        },
        {"start": 10, "end": 20, "kind": "target", "shot": 0, "weight": 0.1, "text": " y1"},
        {"start": 20, "end": 30, "kind": "target", "shot": 1, "weight": 1.0, "text": " y2"},
        {"start": 30, "end": 31, "kind": "eos", "shot": 1, "weight": 1.0, "text": "</s>"},
    ]
    html = episode.episode_html(spans)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html
    assert "background:transparent" in html  # prompts carry no loss
    assert (
        "rgba(255, 140, 0, 0.800)" in html and "rgba(255, 140, 0, 0.152)" in html
    )  # ω=1 darkest, ω=0.1 light
    assert "⟨eos⟩" in html
    rows = episode.weight_by_shot(spans)
    assert rows == [
        {"shot": 1, "tokens": 20, "weighted tokens": 10, "weight": pytest.approx(1.0)},
        {"shot": 2, "tokens": 11, "weighted tokens": 11, "weight": pytest.approx(11.0)},
    ]


REGISTRY = {
    "objectives": [
        {"name": n, "label": spec.label, "omega_free": spec.omega_free}
        for n, spec in objective_registry.REGISTRY.items()
    ],
    "omega_schedules": list(objective_registry.OMEGA_SCHEDULES),
}  # what GET /objectives serves (checked against the server in test_served_registry_is_aicds)


@pytest.fixture(scope="module")
def api(backend: Backend) -> ApiClient:
    return backend.client


def test_served_registry_is_aicds(api: ApiClient) -> None:
    served = api.objectives()
    assert served["objectives"] == objective_registry.registry_dicts() and served["default"] == "aicd"
    assert [{k: o[k] for k in ("name", "label", "omega_free")} for o in served["objectives"]] == REGISTRY[
        "objectives"
    ]
    assert served["omega_schedules"] == REGISTRY["omega_schedules"]


def _frame(extra_runs: list[dict] | None = None) -> pd.DataFrame:
    evaluations = [
        {
            "id": 1,
            "run_id": 1,
            "dataset_id": 7,
            "config": {},
            "rows": [
                {"shots": 0, "seed": 0, "accuracy": 0.5, "n": 10},
                {"shots": 0, "seed": 1, "accuracy": 0.7, "n": 10},
                {"shots": 1, "seed": 0, "accuracy": 0.6, "n": 10},
            ],
        },
        {
            "id": 2,
            "run_id": 2,
            "dataset_id": 7,
            "config": {},
            "rows": [{"shots": 0, "seed": 0, "accuracy": 0.2, "n": 10}],
        },
        {
            "id": 3,
            "run_id": 3,
            "dataset_id": None,
            "config": {"dataset": "gsm8k"},
            "rows": [{"shots": 0, "seed": 0, "accuracy": 0.3, "n": 10}],
        },
    ]
    runs = [
        {"id": 1, "name": "a", "config": {"objective": "aicd", "omega": 0.1, "seed": 0}},
        {"id": 2, "name": "b", "config": {"objective": "lm", "seed": 0}},
        {"id": 3, "name": "c", "config": {"objective": "nocot", "seed": 0}},
    ]
    for i, run in enumerate(extra_runs or [], start=10):
        runs.append({"id": i, "name": f"x{i}", **run})
        evaluations.append(
            {
                "id": i,
                "run_id": i,
                "dataset_id": 7,
                "config": {},
                "rows": [{"shots": 0, "seed": 0, "accuracy": 0.9, "n": 10}],
            }
        )
    return results.accuracy_frame(evaluations, runs, {7: "svamp"}, REGISTRY)


def test_table1_averages_each_run_over_eval_seeds_then_runs_in_paper_order(api: ApiClient) -> None:
    df = _frame([{"config": {"objective": "aicd", "omega": 0.1, "seed": 1}}])  # a 2nd AICD run: 90
    table = results.table1(df, 0, api, REGISTRY)
    assert list(table.index) == ["AICD", "LM", "no-CoT"] and list(table.columns) == ["gsm8k", "svamp"]
    # run 1: mean(50, 70) = 60 over its two evaluation seeds; run 2: 90 → mean 75, sample std over the 2 runs
    assert table.loc["AICD", "svamp"] == "75.0 ± 21.2"
    assert table.loc["LM", "svamp"] == "20.0" and table.loc["LM", "gsm8k"] == "–"  # one run: no ±
    cells = results.summarize(df[df["shots"] == 0], ["objective", "dataset"], api)
    aicd = cells[cells["objective"] == "AICD"].iloc[0]
    assert (aicd["n"], aicd["n_values"]) == (2, 3) and aicd["mean"] == pytest.approx(75.0)
    assert cells[cells["objective"] == "LM"]["std"].isna().all()  # numeric std, none for a single run
    md = results.to_markdown(table)
    assert md.splitlines()[0] == "| objective | gsm8k | svamp |" and "| AICD | – | 75.0 ± 21.2 |" in md
    tex = results.to_latex(table, "caption")
    assert "\\begin{tabular}{lcc}" in tex and "75.0 $\\pm$ 21.2" in tex and "no-CoT" in tex


def test_table1_splits_aicd_rows_by_omega_when_several(api: ApiClient) -> None:
    df = _frame([{"config": {"objective": "aicd", "omega": 0.5, "seed": 0}}])
    table = results.table1(df, 0, api, REGISTRY)
    assert list(table.index)[:2] == ["AICD (ω=0.1)", "AICD (ω=0.5)"]
    assert table.loc["AICD (ω=0.5)", "svamp"] == "90.0"


def test_runs_with_different_settings_get_their_own_rows_and_omega_free_ones_do_not(api: ApiClient) -> None:
    df = _frame(
        [
            {"config": {"objective": "lm", "seed": 1, "lr": 0.001}},  # LM again, another learning rate
            {"config": {"objective": "lm", "seed": 2, "lr": 0.001, "omega": 0.9}},  # ω means nothing to LM
            {"config": {"objective": "aicd", "omega": 0.1, "seed": 1}},  # another seed of the same AICD
            {"config": {"objective": "nocot", "seed": 1, "omega": 0.5}},  # no-CoT weights answers by ω
        ]
    )
    varying = results.varying_fields(df)
    assert varying == {"LM": ["lr"], "no-CoT": ["omega"]}, varying  # seeds never separate runs
    table = results.table1(df, 0, api, REGISTRY)
    assert list(table.index) == ["AICD", "LM (lr=0.001)", "LM (lr=–)", "no-CoT (ω=0.5)", "no-CoT (ω=–)"]
    assert table.loc["AICD", "svamp"] == "75.0 ± 21.2"  # run 0: mean(50, 70), run 1: 90 (same settings)
    assert table.loc["LM (lr=0.001)", "svamp"] == "90.0 ± 0.0"  # seeds 1 and 2, ω ignored
    merged = results.table1(results.with_labels(df, split=[]), 0, api, REGISTRY)  # the reader pools them
    assert list(merged.index) == ["AICD", "LM", "no-CoT"]


def test_omega_of_a_schedule_that_ignores_it_does_not_separate_runs(api: ApiClient) -> None:
    df = _frame(
        [
            {"config": {"objective": "aicd", "schedule": "constant", "omega": 0.3, "seed": 0}},
            {"config": {"objective": "aicd", "schedule": "constant", "omega": 0.7, "seed": 1}},
        ]
    )
    assert results.varying_fields(df) == {"AICD": ["omega", "schedule"]}  # vs the paper-schedule run
    table = results.table1(df, 0, api, REGISTRY)
    assert list(table.index)[:2] == ["AICD (ω=0.1, schedule=–)", "AICD (ω=–, schedule=constant)"], table


def _latex_problems(tex: str, n_cols: int) -> list[str]:
    """What would stop pdflatex: unbalanced braces or $, a bare % (comment) or & outside the separators."""
    problems = []
    plain = tex.replace("\\\\\n", "\n")  # row ends
    plain = re.sub(r"\\[%&#$_{}]", "", plain)  # escaped specials
    depth = 0
    for ch in plain:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            problems.append("a } closes nothing")
    if depth:
        problems.append(f"{depth} unclosed {{")
    if "%" in plain:
        problems.append("bare %")
    if plain.count("$") % 2:
        problems.append("odd number of $")
    lines = plain.splitlines()
    top, bottom = lines.index("\\toprule"), lines.index("\\bottomrule")
    for i, line in enumerate(lines):
        inside = top < i < bottom and line != "\\midrule"
        expected = n_cols - 1 if inside else 0
        if line.count("&") != expected:
            problems.append(f"line {i} has {line.count('&')} & (expected {expected}): {line}")
    return problems


def test_latex_export_escapes_caption_headers_and_row_labels() -> None:
    table = pd.DataFrame(
        {"svamp_test & 50% #1 {x} $5": ["60.0 ± 14.1", "–"], "a\\b~^": ["1.0 ± 0.0", "2.0 ± 0.0"]},
        index=["AICD (ω=0.1)", "LM_base"],
    )
    table.index.name = "objective"
    tex = results.to_latex(table, "Accuracy (%) mean ± std over seeds.")
    assert _latex_problems(tex, n_cols=3) == [], tex
    assert "\\caption{Accuracy (\\%) mean $\\pm$ std over seeds.}" in tex
    assert "AICD ($\\omega$=0.1)" in tex and "LM\\_base" in tex and "ω" not in tex and "±" not in tex
    assert "svamp\\_test \\& 50\\% \\#1 \\{x\\} \\$5" in tex
    # the same checks catch what the export used to produce
    assert _latex_problems("\\caption{Accuracy (%) a & b}\n\\toprule\nx \\\\\n\\bottomrule", 1)
    if shutil.which("pdflatex"):
        doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}" + tex + "\\end{document}"
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "t.tex").write_text(doc, encoding="utf-8")
            run = subprocess.run(
                ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stdout[-2000:]


def test_markdown_export_escapes_pipes() -> None:
    table = pd.DataFrame({"a|b": ["60.0 ± 1.0 | x"]}, index=["AICD|2"])
    table.index.name = "objective"
    md = results.to_markdown(table)
    for line in md.splitlines():  # every row has exactly the header's columns
        assert len(re.split(r"(?<!\\)\|", line.strip().strip("|"))) == 2, line
    assert "AICD\\|2" in md and "a\\|b" in md


def test_md_escape_keeps_text_literal() -> None:
    text = (
        "Josh buys a house for $80,000 and puts in $50,000 *now*\n1. not a list\n# not a heading [x](y) <b>"
    )
    out = md_escape(text)
    assert "\\$80,000" in out and "\\$50,000" in out and re.search(r"(?<!\\)\$", out) is None
    assert "\\*now\\*" in out and "1\\. not a list" in out and "\\# not a heading" in out
    assert "\\[x\\](y)" in out and "\\<b\\>" in out
    assert md_escape("svamp-test.aicd 12") == "svamp-test.aicd 12"


@pytest.mark.parametrize("objective", ["aicd", "condgen", "lm", "nocot"])
@pytest.mark.parametrize("schedule", ["paper", "constant", "linear", "exponential", "custom"])
def test_plan_rows_count_the_runs_the_server_plans(objective: str, schedule: str) -> None:
    """The Launch summary's rows are the server's plan: ω collapsed exactly where aicd.sweep collapses it."""
    from aicd.config import SweepConfig, build_config

    omegas, seeds = [0.1, 0.5, 1.0], [0, 1]
    weights = [0.1, 0.1, 0.1, 1.0] if schedule == "custom" else None
    train = {"model": "tiny:gpt2", "n_shots": 4, "schedule": schedule, "omega": 0.1}
    if weights:
        train["weights"] = weights
    body = plans.sweep_body(
        train, [objective], 1, {"shots": [0], "seeds": [0]}, 2, {"omega": omegas, "seed": seeds}
    )
    server = sweep.plan_sweep(
        build_config(SweepConfig, {**body, "name": "p", "output_dir": "/tmp/p"}, source="t")
    )
    rows = plans.plan_rows(
        mode="sweep",
        name="s",
        objectives=[objective],
        omegas=omegas,
        seeds=seeds,
        n_shots=4,
        schedule=schedule,
        weights=weights,
        model="m",
        registry=REGISTRY,
    )
    assert len(rows) == len(server), ([r["run"] for r in rows], [r.name for r in server])
    free = objective in ("condgen", "lm") or schedule in ("constant", "custom")
    assert len(rows) == (len(seeds) if free else len(omegas) * len(seeds))
    assert all(r["ω"] is None for r in rows) == free


def test_upload_mapping_builds_example_records_and_names_bad_rows() -> None:
    df = upload.read_table("x.csv", b"q,a,why\nOne plus one?,2,1+1=2\nTwo?,,\n")
    mapping = {"id": upload.ROWNUM, "question": "q", "answer": "a", "rationale": "why"}
    with pytest.raises(ValueError, match="row 2: empty answer"):
        upload.to_records(df, mapping, "gold", "")
    records = upload.to_records(df.iloc[:1], mapping, "gold", "")
    assert records == [
        {
            "id": "1",
            "question": "One plus one?",
            "answer": "2",
            "rationales": [{"text": "1+1=2", "source": "gold", "model": None}],
        }
    ]
    jl = upload.read_table(
        "x.jsonl", b'{"id": "a", "question": "q", "answer": "1", "rationales": [{"text": "t"}]}\n'
    )
    rec = upload.to_records(
        jl, {"id": "id", "question": "question", "answer": "answer", "rationale": "rationales"}, "teacher", ""
    )
    assert rec[0]["rationales"] == [{"text": "t"}]
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        upload.read_table("x.jsonl", b"[1, 2]\n")
    assert upload.guess(["ID", "Question"], "question") == 1


def test_client_turns_every_failure_into_one_readable_error() -> None:
    client = ApiClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(ApiError) as info:
        client.health()
    assert info.value.unreachable and "cannot reach the backend" in info.value.message


def test_accuracy_curve_plots_eval_points_and_says_where_they_were_measured() -> None:
    from ui.components import charts

    metrics = [
        {"step": 1, "loss": 2.0, "values": {}},
        {"step": 2, "loss": 1.5, "values": {"eval_accuracy": 0.25, "eval_n": 8, "eval_held_out": False}},
        {"step": 3, "loss": 1.2, "values": {}},
        {"step": 4, "loss": 1.0, "values": {"eval_accuracy": 0.5, "eval_n": 8, "eval_held_out": False}},
    ]
    fig = charts.accuracy_curve(metrics)
    assert fig is not None
    assert list(fig.data[0].x) == [2, 4] and list(fig.data[0].y) == [25.0, 50.0]
    assert "8 training questions (no held-out split), 0-shot" in fig.layout.title.text
    assert charts.accuracy_curve([{"step": 1, "loss": 2.0, "values": {}}]) is None


def test_results_page_and_results_md_print_the_same_numbers_for_the_same_sweep(
    api: ApiClient, tmp_path: Path
) -> None:
    """One sweep's evaluations, read once by `aicd sweep` (results.md) and once as the API lists them (the
    Results page's Table 1): every cell prints the same text, because both use aicd.results."""
    import json

    from aicd.config import SweepConfig, build_config

    cfg = build_config(
        SweepConfig,
        {
            "name": "same",
            "output_dir": str(tmp_path),
            "train": {"model": "tiny:gpt2", "dataset": "arith"},
            "eval": {"shots": [0, 2], "seeds": [0, 1, 2]},
            "grid": {"objective": ["aicd", "condgen", "nocot"], "seed": [0, 1, 2]},
        },
        source="t",
    )
    runs, evaluations = [], []
    planned = sweep.plan_sweep(cfg)
    for i, run in enumerate(planned):
        (ev,) = run.evals
        rows = [
            {"shots": k, "seed": s, "accuracy": round(((i * 7 + s * 3 + k) % 11) / 11, 4), "n": 11}
            for k in ev.shots
            for s in ev.seeds
        ]
        Path(ev.output_dir).mkdir(parents=True)
        (Path(ev.output_dir) / "results.json").write_text(json.dumps({"rows": rows, "stopped": False}))
        runs.append({"id": i + 1, "name": run.name, "sweep_id": 1, "config": run.train.model_dump()})
        evaluations.append({"id": i + 1, "run_id": i + 1, "dataset_id": 7, "config": {}, "rows": rows})
    md = sweep.write_report(cfg, planned).md_path.read_text()

    df = results.accuracy_frame(evaluations, runs, {7: "arith"}, REGISTRY)
    labels = {o["name"]: o["label"] for o in REGISTRY["objectives"]}
    for shots in (0, 2):
        page = results.table1(df, shots, api, REGISTRY)
        section = md.split(f"## {shots}-shot")[1].split("##")[0]
        printed = {
            cells[0]: cells[1]
            for line in section.splitlines()
            if line.startswith("| ")
            and (cells := [c.strip() for c in line.strip("|").split("|")])[0] != "objective"
        }
        assert {labels[name]: text for name, text in printed.items()} == dict(page["arith"]), (section, page)
        assert all("±" in text for text in printed.values())  # 3 training runs per cell


def test_aggregate_endpoint_names_the_field_of_bad_observations(api: ApiClient) -> None:
    with pytest.raises(ApiError) as info:
        api.aggregate_results([{"label": "AICD", "accuracy": 0.5}], ["label", "dataset"])
    assert info.value.status == 422 and info.value.field == "observations"
    assert "observation 0 lacks dataset, run" in info.value.message


def test_aggregate_endpoint_refuses_nested_keys_and_out_of_range_accuracies(api: ApiClient) -> None:
    for bad in ({"label": {}, "run": 1, "accuracy": 0.5}, {"label": "x", "run": 1, "accuracy": 1e308}):
        with pytest.raises(ApiError) as info:
            api.aggregate_results([bad], ["label"])
        assert info.value.status == 422 and info.value.field == "observations", info.value.message


def test_server_sweeps_refuse_an_untuned_row_with_the_field_named(api: ApiClient) -> None:
    body = {
        "train": {"model": "tiny:gpt2", "dataset": "arith"},
        "grid": {"objective": ["aicd"]},
        "untuned": True,
    }
    with pytest.raises(ApiError) as info:
        api.create_sweep(body, name="untuned")
    assert info.value.status == 422 and info.value.field == "config.untuned", info.value.message


def test_server_sweeps_refuse_an_annotation_step_with_the_field_named(api: ApiClient) -> None:
    body = {
        "train": {"model": "tiny:gpt2", "dataset": "arith"},
        "grid": {"objective": ["aicd"]},
        "annotate": {"k": 3},
    }
    with pytest.raises(ApiError) as info:
        api.create_sweep(body, name="annotated")
    assert info.value.status == 422 and info.value.field == "config.annotate", info.value.message


def test_data_used_names_split_and_items_per_dataset() -> None:
    df = _frame()
    assert results.data_used(df) == "Data: gsm8k (test split, 10 items); svamp (test split, 10 items)"
