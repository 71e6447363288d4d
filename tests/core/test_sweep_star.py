"""Table 1's STaR row inside the sweep: the student rationalises its own training data once (source self), then
condgen runs train on the kept chains for every seed and are evaluated like every other row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aicd.config import shipped_configs_dir
from aicd.data.jsonl import read_examples
from aicd.data.loaders import SAMPLES_DIR
from aicd.errors import AICDError, ConfigError
from aicd.results import STAR, VANILLA, row_rank
from aicd.sweep import load_sweep_config, plan_sweep, run_sweep

TINY_TABLE1 = [
    shipped_configs_dir() / f"table1-{d}.yaml" for d in ("gsm8k", "svamp", "multiarith", "strategyqa")
]
# the shipped tiny Table 1 config, reduced to seconds: a tiny student from config, 8 questions, 1 step per run
REDUCED = [
    "model=tiny:gpt2",
    "limit=8",
    "max_steps=1",
    "n_shots=2",
    "batch_size=2",
    "micro_batch_size=2",
    "max_length=1024",
    "grid.objective=[aicd]",
    "seed=[0,1]",
    "eval.limit=2",
    "eval.seeds=[0]",
    "eval.shots=[0,1]",
    "eval.max_new_tokens=4",
    "eval.batch_size=4",
    "star.k=2",
    "star.max_tokens=12",  # the tiny config keeps every chain (filter_correct: false): the row has data
]


def _sweep_cli(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    args = ["sweep", "configs/table1-svamp.yaml", "--no-progress", *flags, "--set", f"output_dir={out}"]
    for item in REDUCED:
        args += ["--set", item]
    env = {**os.environ, "AICD_DATA_DIR": str(SAMPLES_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "aicd", *args], cwd=out.parent, env=env, capture_output=True, text=True
    )


def test_cli_sweep_trains_the_star_row_on_the_students_own_chains_annotated_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _sweep_cli(out)
    assert res.returncode == 0, res.stderr[-3000:]
    root = out / "table1-svamp"
    star_data = root / "star" / "svamp.jsonl"

    # the row's data: the student's own chains (source self, written by the student), one file for both seeds
    examples = read_examples(star_data)
    rationales = [r for ex in examples for r in ex.rationales]
    assert rationales and {(r.source, r.model) for r in rationales} == {("self", "tiny:gpt2")}
    raw = [json.loads(line) for line in (root / "star" / "svamp.raw.jsonl").read_text().splitlines()]
    keys = {(r["question_id"], r["sample_index"]) for r in raw}
    assert len(raw) == len(keys) == 8 * 2  # k = 2 samples of 8 questions, once, not once per seed
    report = json.loads((root / "star" / "svamp.report.json").read_text())
    assert report["config"]["source"] == "self" and report["config"]["model"] == "tiny:gpt2"

    for seed in (0, 1):  # each seed trains condgen on that file
        trained = yaml.safe_load((root / "runs" / f"star-seed{seed}" / "config.yaml").read_text())
        assert (trained["objective"], trained["dataset"], trained["seed"]) == (
            "condgen",
            str(star_data),
            seed,
        )
    assert not (root / "annotated").exists()  # no teacher step in the tiny config: other rows train on svamp

    rows = list(csv_rows(root / "results.csv"))
    star = [r for r in rows if r["objective"] == STAR]
    assert {int(r["shots"]) for r in star} == {0, 1} and {r["n"] for r in star} == {"2"}
    assert {r["runs"] for r in star} == {"star-seed0;star-seed1"}
    assert [r["objective"] for r in rows if r["shots"] == "0"] == ["aicd", STAR, VANILLA]
    assert "| star |" in (root / "results.md").read_text()
    # same protocol: the STaR row is evaluated like the others (test split, shots, seeds, demonstrations)
    star_eval = json.loads((root / "evals" / "star-seed0" / "svamp" / "results.json").read_text())
    aicd_eval = json.loads((root / "evals" / "aicd-seed0" / "svamp" / "results.json").read_text())
    assert [(r["shots"], r["seed"]) for r in star_eval["rows"]] == [
        (r["shots"], r["seed"]) for r in aicd_eval["rows"]
    ]

    before = (root / "star" / "svamp.raw.jsonl").read_bytes()
    again = _sweep_cli(out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (root / "star" / "svamp.raw.jsonl").read_bytes() == before  # resumed: nothing re-annotated


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("path", TINY_TABLE1, ids=lambda p: p.stem)
def test_tiny_table1_configs_plan_a_star_row_per_seed_on_the_student(path: Path, tmp_path: Path) -> None:
    runs = plan_sweep(load_sweep_config(path, [f"output_dir={tmp_path}"]))
    star = [r for r in runs if r.row == STAR]
    assert {r.train.seed for r in star} == {0, 1, 2} and {r.train.objective for r in star} == {"condgen"}
    assert {r.train.model for r in star} == {r.train.model for r in runs}  # the sweep's one student
    assert {r.row for r in runs} == {"aicd", "condgen", "lm", "nocot", STAR, VANILLA}


def _config(tmp_path: Path, *overrides: str):  # noqa: ANN202
    return load_sweep_config(
        shipped_configs_dir() / "table1-svamp.yaml", [f"output_dir={tmp_path}", "model=tiny:gpt2", *overrides]
    )


def test_a_bad_star_section_names_its_field_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sweep star: k:"):
        plan_sweep(_config(tmp_path, "star.k=0"))
    with pytest.raises(ConfigError, match=r"sweep star: source: must be 'self'"):
        plan_sweep(_config(tmp_path, "star.source=teacher"))
    with pytest.raises(ConfigError, match=r"^star: .*one student.*grid.model"):
        plan_sweep(_config(tmp_path, "grid.model=[tiny:gpt2,tiny:llama]"))
    assert not tmp_path.joinpath("table1-svamp").exists()


def test_star_null_drops_the_row_and_rows_sort_objectives_then_star_then_vanilla(tmp_path: Path) -> None:
    assert STAR not in {r.row for r in plan_sweep(_config(tmp_path, "star=null"))}
    assert sorted([VANILLA, STAR, "nocot", "aicd", "other"], key=row_rank) == [
        "aicd",
        "nocot",
        STAR,
        VANILLA,
        "other",
    ]


def test_star_with_no_chain_left_by_the_filters_stops_before_training_and_says_why(tmp_path: Path) -> None:
    """STaR's own filter on a random student: nothing reaches the gold answer, so no row is trained on nothing."""
    cfg = _config(tmp_path, *REDUCED, "star.filter_correct=true", "star.drop_truncated=true")
    with pytest.raises(
        AICDError, match=r"^star: svamp: no rationale passed the filters \(dropped: \d+ "
    ) as exc:
        run_sweep(cfg, progress=False)
    assert "star.filter_correct" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "table1-svamp" / "runs").exists()  # stopped before any training
