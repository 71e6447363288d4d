"""Paper-scale configs: faithful to the paper's protocol, never silently on the packaged samples, and every
sweep records the data it actually used (source, split, item count per dataset)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aicd.config import SweepConfig, build_config, shipped_configs_dir
from aicd.data.loaders import SAMPLES_DIR
from aicd.errors import DataError
from aicd.sweep import load_sweep_config, plan_sweep, write_report

PAPER_CONFIGS = sorted(shipped_configs_dir().glob("paper-*.yaml"))


@pytest.fixture
def full_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local data root other than the packaged samples (a stand-in for a full copy: same layout)."""
    root = tmp_path / "datasets"
    shutil.copytree(SAMPLES_DIR, root)
    monkeypatch.setenv("AICD_DATA_DIR", str(root))
    return root


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AICD_DATA_DIR": str(SAMPLES_DIR)}  # only the packaged samples are available
    return subprocess.run(
        [sys.executable, "-m", "aicd", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_paper_sweep_on_the_samples_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _cli(["sweep", "configs/paper-table1-svamp.yaml", "--set", f"output_dir={out}"], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert (
        "'svamp' resolves to the packaged 200/100-item samples" in res.stderr
        and "AICD_DATA_DIR" in res.stderr
    )
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_full_data_train_run_on_the_samples_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    res = _cli(
        ["train", "configs/svamp-aicd.yaml", "--set", "full_data=true", "--set", "output_dir=out"], tmp_path
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "full_data: 'svamp' resolves to the packaged" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_paper_configs_follow_the_paper(full_copy: Path) -> None:
    assert {p.stem for p in PAPER_CONFIGS} == {
        "paper-fig1-omega",
        "paper-fig2-shots",
        *(f"paper-table1-{d}" for d in ("gsm8k", "svamp", "multiarith", "strategyqa")),
    }
    for path in PAPER_CONFIGS:
        runs = plan_sweep(load_sweep_config(path))
        for run in runs:
            t = run.train
            assert t.full_data and t.batch_size == 16 and t.mixed_precision == "bf16", path
            assert t.model == "EleutherAI/gpt-j-6b" and t.lr == 7e-6 and t.schedule == "paper", path
            # trains on the annotation step's output (STaR: the student's own), evaluates on the test split
            (ev,) = run.evals
            teacher = str(Path("runs") / path.stem / "annotated" / f"{ev.dataset}.jsonl")
            data = (
                str(Path("runs") / path.stem / "star" / f"{ev.dataset}.jsonl")
                if run.row == "star"
                else teacher
            )
            assert t.dataset == data, path
            assert ev.split == "test" and ev.shots_dataset == teacher
        annotate = load_sweep_config(path).annotate
        assert annotate and (annotate["k"], annotate["temperature"], annotate["filter_correct"]) == (
            3,
            1.0,
            True,
        )
    fig1 = plan_sweep(load_sweep_config(shipped_configs_dir() / "paper-fig1-omega.yaml"))
    aicd = [r for r in fig1 if r.train.objective == "aicd"]
    assert {r.train.omega for r in aicd} == {0.0, 0.1, 0.5, 1.0}
    assert {r.train.seed for r in fig1} == {0, 1, 2, 3, 4} and {r.evals[0].dataset for r in fig1} == {
        "multiarith",
        "svamp",
    }
    baselines = [r for r in fig1 if r.train.objective != "aicd"]  # trained once per seed and dataset
    assert {r.train.objective for r in baselines} == {"condgen", "lm"} and len(baselines) == 2 * 5 * 2
    fig2 = plan_sweep(load_sweep_config(shipped_configs_dir() / "paper-fig2-shots.yaml"))
    assert {r.train.objective for r in fig2} == {"aicd", "condgen"} and {
        r.evals[0].dataset for r in fig2
    } == {"svamp"}
    assert all(r.evals[0].shots == [0, 1, 2, 3] for r in fig2)
    assert [r.name for r in fig2 if not r.trained] == ["vanilla"]  # the untuned student ("vanilla ICL")
    table1 = plan_sweep(load_sweep_config(shipped_configs_dir() / "paper-table1-svamp.yaml"))
    protocols = {
        json.dumps(r.evals[0].model_dump(exclude={"model", "output_dir", "demonstrations"})) for r in table1
    }
    assert len(protocols) == 1  # one evaluation protocol for every row
    assert {r.row for r in table1} == {"aicd", "condgen", "lm", "nocot", "star", "vanilla"}


@pytest.mark.parametrize("path", [p for p in PAPER_CONFIGS if p.stem.startswith("paper-table1-")], ids=str)
def test_every_paper_table1_config_has_the_star_row(path: Path, full_copy: Path) -> None:
    """Table 1's STaR row is part of each sweep: condgen on the student's own filtered chains, every seed."""
    config = load_sweep_config(path)
    assert config.star is not None and config.star["filter_correct"] and config.star["k"] == 3
    runs = plan_sweep(config)
    star = [r for r in runs if r.row == "star"]
    assert {r.train.seed for r in star} == {r.train.seed for r in runs if r.row == "aicd"} == {0, 1, 2}
    assert {r.train.objective for r in star} == {"condgen"}
    assert {r.train.dataset for r in star} == {
        str(Path("runs") / path.stem / "star" / f"{config.train['dataset']}.jsonl")
    }
    protocols = {
        json.dumps(r.evals[0].model_dump(exclude={"model", "output_dir"}))
        for r in runs
        if r.row in ("condgen", "star")
    }
    assert len(protocols) == 1  # STaR is evaluated exactly like CondGen
    assert "Not in this sweep" not in path.read_text()


def test_sweep_records_source_split_and_item_count_of_each_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICD_DATA_DIR", str(SAMPLES_DIR))
    cfg = build_config(
        SweepConfig,
        {
            "name": "prov",
            "output_dir": str(tmp_path),
            "train": {"model": "tiny:gpt2", "dataset": "svamp", "limit": 8},
            "eval": {"shots": [0, 1], "limit": 5},
            "eval_datasets": ["multiarith"],
            "grid": {"objective": ["aicd"]},
        },
        source="t",
    )
    (run,) = plan_sweep(cfg)
    (ev,) = run.evals
    Path(ev.output_dir).mkdir(parents=True)
    (Path(ev.output_dir) / "results.json").write_text(
        json.dumps({"rows": [{"shots": 0, "seed": 0, "accuracy": 0.4}], "stopped": False})
    )
    result = write_report(cfg, [run])
    data = json.loads((result.sweep_dir / "data.json").read_text())
    by_role = {d["role"]: d for d in data}
    assert by_role["train"] == {
        "role": "train",
        "dataset": "svamp",
        "split": "train",
        "items": 8,
        "source": f"packaged samples ({SAMPLES_DIR})",
    }
    assert (by_role["eval"]["dataset"], by_role["eval"]["split"], by_role["eval"]["items"]) == (
        "multiarith",
        "test",
        5,
    )
    assert by_role["shots"]["dataset"] == "multiarith" and by_role["shots"]["items"] > 5
    md = result.md_path.read_text()
    assert "## Data" in md and "| train | svamp | train | 8 |" in md


def test_samples_are_named_as_such_in_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aicd.provenance import dataset_source, require_full_data

    monkeypatch.setenv("AICD_DATA_DIR", str(SAMPLES_DIR))
    assert dataset_source("svamp").startswith("packaged samples")
    with pytest.raises(DataError, match="'gsm8k' resolves to the packaged"):
        require_full_data(["arith", "gsm8k"])
    require_full_data(["arith", None])  # generated data has no full copy to miss


def test_untuned_row_is_planned_per_training_dataset_and_evaluated_without_training(tmp_path: Path) -> None:
    from aicd.sweep import run_sweep

    base = {
        "name": "u",
        "output_dir": str(tmp_path),
        "train": {
            "model": "tiny:gpt2",
            "dataset": "arith",
            "limit": 8,
            "max_steps": 1,
            "n_shots": 2,
            "batch_size": 2,
            "micro_batch_size": 2,
            "max_length": 256,
        },
        "eval": {"shots": [0, 1], "seeds": [0, 1], "limit": 2, "max_new_tokens": 4, "batch_size": 4},
        "untuned": True,
    }
    two = plan_sweep(
        build_config(SweepConfig, {**base, "grid": {"dataset": ["arith", "svamp"], "seed": [0]}}, source="t")
    )
    untuned = [r for r in two if not r.trained]
    assert [r.name for r in untuned] == ["vanilla-arith", "vanilla-svamp"]
    assert all(e.model == "tiny:gpt2" and e.demonstrations == "rationale" for r in untuned for e in r.evals)

    cfg = build_config(SweepConfig, {**base, "grid": {"objective": ["aicd"], "seed": [0]}}, source="t")
    result = run_sweep(cfg, progress=False)
    rows = {(r["objective"], r["shots"]): r for r in result.table_rows}
    assert set(rows) == {("aicd", 0), ("aicd", 1), ("vanilla", 0), ("vanilla", 1)}
    assert (
        rows[("vanilla", 0)]["n"] == 1
        and rows[("vanilla", 0)]["n_values"] == 2
        and rows[("vanilla", 0)]["omega"] is None
    )
    assert not (tmp_path / "u" / "runs" / "vanilla").exists()  # nothing trained for it
    assert (tmp_path / "u" / "evals" / "vanilla" / "arith" / "results.json").is_file()
    assert "| vanilla |" in result.md_path.read_text()
