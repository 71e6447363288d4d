"""Dataset parsers, splits, data-root resolution, generic mapping and the `aicd data` CLI, on the packaged samples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicd.data import loaders, sources
from aicd.data.jsonl import read_examples
from aicd.data.loaders import (
    DATASETS,
    SAMPLES_DIR,
    DatasetInfo,
    answer_kind_of,
    data_root,
    load_examples,
    load_generic,
    register_dataset,
    seeded_split,
)
from aicd.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "data"
BUILTINS = ("gsm8k", "svamp", "multiarith", "strategyqa")


@pytest.fixture(autouse=True)
def _samples_only(monkeypatch):
    """Every test reads the packaged samples, never ../shared, so it passes on any machine."""
    monkeypatch.setenv("AICD_DATA_DIR", str(SAMPLES_DIR))


def _raw_list(rel: str) -> list[dict]:
    return json.loads((SAMPLES_DIR / rel).read_text(encoding="utf-8"))


def _raw_lines(rel: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLES_DIR / rel).read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------- samples and parsers


def test_samples_are_small_and_licensed():
    files = [p for p in SAMPLES_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_500_000
    for folder in (
        "gsm8k",
        "svamp",
        "multiarith",
        "strategyqa",
        "cot_llm_adapters_gpt35",
        "splits_reasoning_teacher",
    ):
        assert (SAMPLES_DIR / folder / "LICENSE").is_file(), folder
    assert (SAMPLES_DIR / "README.md").is_file()


@pytest.mark.parametrize("name", BUILTINS)
def test_split_sizes_disjoint_and_deterministic(name):
    train, test = load_examples(name, "train"), load_examples(name, "test")
    assert (len(train), len(test)) == (200, 100)
    ids_train, ids_test = [e.id for e in train], [e.id for e in test]
    assert len(set(ids_train)) == len(ids_train) and len(set(ids_test)) == len(ids_test)
    assert not set(ids_train) & set(ids_test)
    assert [e.model_dump() for e in load_examples(name, "train")] == [e.model_dump() for e in train]
    assert [e.id for e in load_examples(name, "dev")] == ids_test  # dev / validation are aliases of test
    for ex in train + test:
        for r in ex.rationales:
            assert r.text.endswith(f"So, the answer is {ex.answer}."), (ex.id, r.text)
            assert "\n\n" not in r.text


def test_gsm8k_answer_after_hashes_and_gold_rationale_without_calculator_marks():
    raw = _raw_lines("gsm8k/train.jsonl")
    train = load_examples("gsm8k", "train")
    first = train[0]
    assert first.id == "gsm8k/train/0" and first.question == raw[0]["question"]
    assert first.answer == raw[0]["answer"].split("####")[-1].strip() == "72"
    assert first.rationales[0].source == "gold"
    assert first.rationales[0].text == (
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May. "
        "So, the answer is 72."
    )
    assert sum("<<" in r["answer"] for r in raw) > 100  # the raw data does carry calculator marks …
    for ex in train:  # … and none survive
        assert "<<" not in ex.rationales[0].text and ">>" not in ex.rationales[0].text
        assert "####" not in ex.rationales[0].text


def test_numbers_are_normalised():
    assert sources.normalize_number("1,080") == "1080"
    assert sources.normalize_number(51.0) == "51"
    assert sources.normalize_number(" $3 ") == "3"
    assert sources.normalize_number("2.50") == "2.5"
    assert sources.normalize_number("-7") == "-7"
    with pytest.raises(DataError, match="field 'x' is not a number"):
        sources.normalize_number("seven", "f.json record 3", "x")
    ex = sources.gsm8k_example(
        {"question": "q?", "answer": "1,000 + 80 = <<1000+80=1080>>1,080\n#### 1,080"}, "g/0", "w"
    )
    assert ex.answer == "1080" and ex.rationales[0].text == "1,000 + 80 = 1,080. So, the answer is 1080."


def test_svamp_question_is_body_plus_question_and_teacher_kept_only_when_correct():
    raw = {r["ID"]: r for r in _raw_list("svamp/SVAMP.json")}
    cots = {c["ID"]: c for c in _raw_list("cot_llm_adapters_gpt35/svamp_1.json")}
    examples = {e.id: e for e in load_examples("svamp", "train") + load_examples("svamp", "test")}
    assert len(examples) == len(raw) == 300
    ex = examples["svamp/chal-1"]
    assert ex.question == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack. "
        "How much do you have to pay to buy each pack?"
    )
    assert ex.answer == "51"
    (teacher,) = ex.rationales
    assert teacher.source == "teacher" and teacher.model == "gpt-3.5-turbo (LLM-Adapters)"
    assert teacher.text == (
        "Each pack of dvds costs 76 dollars. With the discount of 25 dollars, the cost of each pack is "
        "76 - 25 = 51 dollars. So, the answer is 51."
    )
    correct = {i for i, c in cots.items() if c["pred"] == c["answer"]}
    assert 0 < len(correct) < len(cots)
    for raw_id in raw:
        assert bool(examples[f"svamp/{raw_id}"].rationales) == (raw_id in correct)
        assert examples[f"svamp/{raw_id}"].answer == sources.format_number(raw[raw_id]["Answer"])


def test_svamp_and_multiarith_follow_reasoning_teacher_split():
    for name, raw_file in (("svamp", "svamp/SVAMP.json"), ("multiarith", "multiarith/MultiArith.json")):
        split = json.loads((SAMPLES_DIR / f"splits_reasoning_teacher/split/{name}__default.json").read_text())
        raw = _raw_list(raw_file)
        key = "ID" if name == "svamp" else "iIndex"
        for part in ("train", "test"):
            assert [e.id for e in load_examples(name, part)] == [f"{name}/{raw[i][key]}" for i in split[part]]


def test_multiarith_record():
    raw = _raw_list("multiarith/MultiArith.json")
    ex = load_examples("multiarith", "train")[0]
    assert ex.id == f"multiarith/{raw[0]['iIndex']}"
    assert ex.question == raw[0]["sQuestion"].strip() and not ex.question.startswith(" ")
    assert ex.answer == sources.format_number(raw[0]["lSolutions"][0]) == "39"
    assert ex.rationales[0].text.endswith(
        "so now they have 74 - 35 = 39 pieces of candy left. So, the answer is 39."
    )
    cots = _raw_list("cot_llm_adapters_gpt35/multiarith_1.json")
    n_correct = sum(c["pred"] == c["answer"] for c in cots)
    everything = load_examples("multiarith", "train") + load_examples("multiarith", "test")
    assert sum(bool(e.rationales) for e in everything) == n_correct


def test_strategyqa_bool_answer_and_facts_rationale():
    raw = _raw_list("strategyqa/train.json")
    train = load_examples("strategyqa", "train")
    assert [e.id for e in train] == [f"strategyqa/{r['qid']}" for r in raw]
    assert [e.answer for e in train] == ["yes" if r["answer"] else "no" for r in raw]
    assert {"yes", "no"} == {e.answer for e in train}
    first = train[0]
    assert first.rationales[0].source == "gold"
    assert first.rationales[0].text.startswith(
        "Julius Caesar had three children. Genghis Khan had sixteen children."
    )
    assert first.rationales[0].text.endswith("So, the answer is yes.")
    assert [e.id for e in load_examples("strategyqa", "test")] == [
        f"strategyqa/{r['qid']}" for r in _raw_list("strategyqa/dev.json")
    ]


def test_normalize_ending_variants():
    assert (
        sources.normalize_ending("He had $12 left, so the answer is $3.", "3")
        == "He had $12 left. So, the answer is 3."
    )
    assert (
        sources.normalize_ending("6 - 2 = 4. The answer is 4 hours.", "4")
        == "6 - 2 = 4. So, the answer is 4."
    )
    assert sources.normalize_ending("6 - 2 = 4", "4") == "6 - 2 = 4. So, the answer is 4."


def test_bad_raw_record_names_file_record_and_field(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLES_DIR, root)
    records = _raw_list("svamp/SVAMP.json")
    del records[5]["Body"]
    (root / "svamp" / "SVAMP.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"SVAMP\.json record 5: missing field 'Body'"):
        load_examples("svamp", data_dir=root)
    lines = (root / "gsm8k" / "test.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"question": "q", "answer": "no final line"})
    (root / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:3: field 'answer' has no '#### <number>' line"):
        load_examples("gsm8k", "test", data_dir=root)


# ---------------------------------------------------------------- splits and data root


def test_seeded_split_is_disjoint_covering_and_seeded():
    items = list(range(101))
    train, test = seeded_split(items, "train", seed=3), seeded_split(items, "test", seed=3)
    assert sorted(train + test) == items and not set(train) & set(test)
    assert len(test) == round(101 * loaders.TEST_FRACTION)
    assert seeded_split(items, "test", seed=3) == test
    assert seeded_split(items, "test", seed=4) != test
    with pytest.raises(DataError, match="split 'holdout'"):
        seeded_split(items, "holdout")


def test_missing_split_file_falls_back_to_seeded_split(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLES_DIR, root)
    shutil.rmtree(root / "splits_reasoning_teacher")
    train, test = (
        load_examples("svamp", "train", data_dir=root),
        load_examples("svamp", "test", data_dir=root),
    )
    assert (len(train), len(test)) == (210, 90)
    assert not {e.id for e in train} & {e.id for e in test}
    assert [e.id for e in load_examples("svamp", "test", data_dir=root, seed=1)] != [e.id for e in test]


def test_data_root_resolution(tmp_path, monkeypatch):
    assert data_root() == SAMPLES_DIR  # the autouse fixture points AICD_DATA_DIR at the samples
    assert data_root(tmp_path) == tmp_path  # the argument wins over the environment
    monkeypatch.setenv("AICD_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="AICD_DATA_DIR: data folder not found"):
        load_examples("gsm8k")
    with pytest.raises(DataError, match=r"gsm8k[/\\]train\.jsonl: file not found"):
        load_examples("gsm8k", data_dir=tmp_path)
    monkeypatch.delenv("AICD_DATA_DIR")
    monkeypatch.setattr(loaders, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    assert data_root() == SAMPLES_DIR  # nothing shaped like shared/datasets around: packaged samples
    (tmp_path / "shared" / "datasets" / "gsm8k").mkdir(parents=True)
    assert data_root() == tmp_path / "shared" / "datasets"


def test_limit_unknown_dataset_and_bad_split():
    assert [e.id for e in load_examples("gsm8k", "test", limit=3)] == [f"gsm8k/test/{i}" for i in range(3)]
    with pytest.raises(DataError, match="unknown dataset 'gsm9k'"):
        load_examples("gsm9k")
    with pytest.raises(DataError, match="split 'holdout'"):
        load_examples("svamp", "holdout")
    with pytest.raises(DataError, match="limit"):
        load_examples("svamp", limit=0)


# ---------------------------------------------------------------- registry


def test_registry_info_and_answer_kinds():
    assert {n: (DATASETS[n].answer_kind, DATASETS[n].n_shots) for n in BUILTINS} == {
        "gsm8k": ("number", 4),
        "svamp": ("number", 4),
        "multiarith": ("number", 4),
        "strategyqa": ("yesno", 6),
    }
    assert answer_kind_of("strategyqa") == "yesno"
    assert answer_kind_of(str(FIXTURES / "examples.jsonl")) == "number"
    yesno = load_generic(FIXTURES / "generic.jsonl", question="q", answer="label")
    assert answer_kind_of("whatever.jsonl", yesno) == "yesno"


def test_register_dataset_and_plugin_import(monkeypatch):
    monkeypatch.setitem(loaders.PLUGINS, "toyplug", "tests.data.toy_plugin")
    monkeypatch.delitem(sys.modules, "tests.data.toy_plugin", raising=False)
    try:
        assert "toyplug" not in DATASETS
        examples = load_examples("toyplug", "test", seed=7, limit=2)  # importing the module registers it
        assert [e.id for e in examples] == ["toy/test/7/0", "toy/test/7/1"]
        assert DATASETS["toyplug"].n_shots == 6 and answer_kind_of("toyplug") == "yesno"
        register_dataset(DatasetInfo("toy2", "number", 4, "inline"), lambda split, seed: [])
        assert load_examples("toy2") == []
    finally:
        for name in ("toyplug", "toy2"):
            DATASETS.pop(name, None)
            loaders._LOADERS.pop(name, None)


# ---------------------------------------------------------------- generic files and the hub


def test_generic_csv_mapping():
    examples = load_generic(
        FIXTURES / "generic.csv", question="problem", answer="solution", rationale="explanation", id="qid"
    )
    assert [(e.id, e.answer) for e in examples] == [("a1", "5"), ("a2", "1000"), ("a3", "4.5")]
    assert examples[0].question == "Tom has 3 apples and buys 2 more. How many apples?"
    assert [len(e.rationales) for e in examples] == [1, 1, 0]
    assert (
        examples[1].rationales[0].text == "1200 - 200 = 1000. So, the answer is 1000."
        and examples[1].rationales[0].source == "gold"
    )


def test_generic_jsonl_mapping_yesno_and_rationale_lists():
    examples = load_generic(FIXTURES / "generic.jsonl", question="q", answer="label", rationale="why")
    assert [(e.id, e.answer) for e in examples] == [
        ("generic/0", "no"),
        ("generic/1", "yes"),
        ("generic/2", "yes"),
    ]
    assert [len(e.rationales) for e in examples] == [2, 1, 0]


def test_generic_split_is_seeded_and_disjoint():
    a = load_generic(FIXTURES / "generic.csv", question="problem", answer="solution", split="train")
    b = load_generic(FIXTURES / "generic.csv", question="problem", answer="solution", split="test")
    assert len(a) + len(b) == 3 and not {e.question for e in a} & {e.question for e in b}


def test_generic_bad_rows_name_line_and_field(tmp_path):
    with pytest.raises(DataError, match=r"bad_missing_answer\.csv:3: missing field 'answer'"):
        load_generic(FIXTURES / "bad_missing_answer.csv")
    with pytest.raises(DataError, match=r"generic\.csv:2: missing field 'question'"):
        load_generic(FIXTURES / "generic.csv")  # default mapping: the file has no 'question' column
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "ok?", "a": 1}\n{"q": ["not", "a", "string"], "a": 2}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'q' should be a non-empty string"):
        load_generic(bad, question="q", answer="a")
    bad.write_text('{"q": "ok?", "a": 1}\n{"q": "two?", "a": "many"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'a' is not a number"):
        load_generic(bad, question="q", answer="a")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_generic(tmp_path / "x.txt")


def test_load_examples_paths(tmp_path):
    examples = load_examples(str(FIXTURES / "examples.jsonl"))
    assert [(e.id, e.answer) for e in examples] == [("ex-1", "5"), ("ex-2", "2.5")]
    plain = tmp_path / "plain.csv"
    plain.write_text("question,answer\nIs it?,yes\nTwo?,2\n")
    assert [(e.id, e.answer) for e in load_examples(str(plain))] == [("plain/0", "yes"), ("plain/1", "2")]
    with pytest.raises(DataError, match=r"bad_missing_answer\.csv:3"):  # a limit never hides a bad row
        load_examples(str(FIXTURES / "bad_missing_answer.csv"), limit=1)
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "examples.jsonl", folder / "test.jsonl")
    assert [e.id for e in load_examples(str(folder), "test")] == ["ex-1", "ex-2"]
    with pytest.raises(DataError, match="no such file"):
        load_examples(str(FIXTURES / "absent.jsonl"))


def test_hub_path_uses_datasets_and_the_gsm8k_parser(tmp_path, monkeypatch):
    """The hub code path with a local folder standing in for `openai/gsm8k` (no network here)."""
    local = tmp_path / "gsm8k_hub"
    local.mkdir()
    for split in ("train", "test"):
        shutil.copyfile(SAMPLES_DIR / "gsm8k" / f"{split}.jsonl", local / f"{split}.jsonl")
    monkeypatch.setitem(loaders.HUB_PARSERS, str(local), (None, sources.gsm8k_example))
    from_hub = loaders.load_hub(str(local), "test")
    from_files = load_examples("gsm8k", "test")
    assert [(e.question, e.answer, e.rationales[0].text) for e in from_hub] == [
        (e.question, e.answer, e.rationales[0].text) for e in from_files
    ]
    generic = load_generic(f"hf:{local}", split="train")
    assert len(generic) == 200 and generic[0].answer == "72"  # generic mapping on the same raw answer field


def test_unreachable_hub_id_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", os.devnull + "-nohome")
    with pytest.raises(DataError, match="hub dataset 'openai/gsm8k': could not load"):
        load_examples("openai/gsm8k", "test")


# ---------------------------------------------------------------- CLI


def test_cli_list_show_export(tmp_path):
    from aicd.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["data", "list"])
    assert listed.exit_code == 0, listed.output
    assert "strategyqa" in listed.output and "yesno" in listed.output
    shown = runner.invoke(app, ["data", "show", "svamp", "--split", "test", "--limit", "2"])
    assert shown.exit_code == 0 and "2 record(s) shown" in shown.output
    out = tmp_path / "out" / "mult.jsonl"
    exported = runner.invoke(
        app, ["data", "export", "multiarith", "--split", "test", "--limit", "7", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert [e.model_dump() for e in read_examples(out)] == [
        e.model_dump() for e in load_examples("multiarith", "test", limit=7)
    ]
    csv_out = tmp_path / "csv.jsonl"
    mapped = runner.invoke(
        app,
        [
            "data",
            "export",
            str(FIXTURES / "generic.csv"),
            "--question-field",
            "problem",
            "--answer-field",
            "solution",
            "--id-field",
            "qid",
            "--out",
            str(csv_out),
        ],
    )
    assert mapped.exit_code == 0, mapped.output
    assert [e.id for e in read_examples(csv_out)] == ["a1", "a2", "a3"]


def _aicd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AICD_DATA_DIR": str(SAMPLES_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "aicd", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, repo_root):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q", "answer": "1"}\n{"id": "2", "answer": "2"}\n')
    out = tmp_path / "out.jsonl"
    result = _aicd("data", "export", str(bad), "--out", str(out), cwd=repo_root)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad}:2: missing field 'question'"]
    assert "Traceback" not in result.stderr and not out.exists()
    unknown = _aicd("data", "show", "nope", cwd=repo_root)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "unknown dataset 'nope'" in unknown.stderr
