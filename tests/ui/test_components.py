"""Pure pieces of the UI: chain diff highlighting, episode shading, the Table-1 pivot and its exports, upload mapping,
and the HTTP client's error messages."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.ui.conftest import free_port
from ui.client import ApiClient, ApiError
from ui.components import diff, episode, results, upload


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


def _frame() -> pd.DataFrame:
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
    return results.accuracy_frame(evaluations, runs, {7: "svamp"})


def test_table1_is_mean_and_sample_std_over_seeds_in_paper_order() -> None:
    table = results.table1(_frame(), shots=0)
    assert list(table.index) == ["AICD", "LM", "no-CoT"] and list(table.columns) == ["gsm8k", "svamp"]
    assert table.loc["AICD", "svamp"] == "60.0 ± 14.1"  # mean(50, 70), sample std
    assert table.loc["LM", "gsm8k"] == "–"
    md = results.to_markdown(table)
    assert md.splitlines()[0] == "| objective | gsm8k | svamp |" and "| AICD | – | 60.0 ± 14.1 |" in md
    tex = results.to_latex(table)
    assert "\\begin{tabular}{lcc}" in tex and "60.0 $\\pm$ 14.1" in tex and "no-CoT" in tex


def test_table1_splits_aicd_rows_by_omega_when_several() -> None:
    df = _frame()
    extra = df[df["objective"] == "AICD"].assign(omega=0.5, accuracy=90.0)
    table = results.table1(pd.concat([df, extra]), shots=0)
    assert list(table.index)[:2] == ["AICD (ω=0.1)", "AICD (ω=0.5)"]


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
