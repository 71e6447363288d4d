"""Sweeps: grid expansion (no torch), a tiny end-to-end sweep with table + figures, resume, CLI errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aicd.config import SweepConfig, build_config, shipped_configs_dir
from aicd.errors import ConfigError
from aicd.sweep import SweepCallback, load_sweep_config, plan_sweep, run_sweep, table_markdown

TINY = "tiny:llama?num_hidden_layers=1&hidden_size=32&intermediate_size=64&num_attention_heads=2"


def _config(tmp_path: Path, **grid) -> SweepConfig:
    return build_config(
        SweepConfig,
        {
            "name": "tiny",
            "output_dir": str(tmp_path),
            "train": {
                "model": TINY,
                "dataset": "arith",
                "limit": 12,
                "max_steps": 2,
                "n_shots": 2,
                "lr": 1e-3,
                "batch_size": 2,
                "micro_batch_size": 2,
                "max_length": 512,
                "log_every": 1,
            },
            "eval": {"shots": [0, 1], "seeds": [0, 1], "limit": 3, "max_new_tokens": 8, "batch_size": 8},
            "grid": grid or {"objective": ["aicd", "nocot"], "seed": [0, 1]},
        },
    )


def test_plan_expands_the_product_with_unique_names(tmp_path):
    runs = plan_sweep(_config(tmp_path, objective=["aicd", "nocot"], omega=[0.0, 0.5], seed=[0, 1, 2]))
    assert len(runs) == 2 * 2 * 3
    assert len({r.name for r in runs}) == len(runs)
    r = next(r for r in runs if r.params == {"objective": "nocot", "omega": 0.5, "seed": 2})
    assert r.name == "nocot-omega0.5-seed2"
    assert (r.train.objective, r.train.omega, r.train.seed, r.train.limit) == ("nocot", 0.5, 2, 12)
    assert r.train.run_dir == tmp_path / "tiny" / "runs" / r.name
    assert r.evals[0].model == str(r.train.run_dir / "final")
    assert r.evals[0].shots == [0, 1] and r.evals[0].dataset == "arith"


def test_plan_demonstrates_answers_only_to_nocot_runs(tmp_path):
    runs = plan_sweep(_config(tmp_path, objective=["aicd", "condgen", "lm", "nocot"]))
    demos = {r.train.objective: {e.demonstrations for e in r.evals} for r in runs}
    assert demos == {
        "aicd": {"rationale"},
        "condgen": {"rationale"},
        "lm": {"rationale"},
        "nocot": {"answer"},
    }


def test_plan_tracks_accuracy_during_training_on_the_first_eval_dataset(tmp_path):
    cfg = _config(tmp_path, objective=["aicd"])
    cfg = cfg.model_copy(
        update={"train": {**cfg.train, "eval_every": 1}, "eval_datasets": ["svamp", "arith"]}
    )
    (run,) = plan_sweep(cfg)
    assert (run.train.eval_every, run.train.eval_dataset) == (1, "svamp")
    explicit = cfg.model_copy(update={"train": {**cfg.train, "eval_every": 1, "eval_dataset": "arith"}})
    assert plan_sweep(explicit)[0].train.eval_dataset == "arith"
    assert plan_sweep(_config(tmp_path, objective=["aicd"]))[0].train.eval_every == 0


def test_plan_collapses_omega_for_omega_free_objectives(tmp_path):
    runs = plan_sweep(_config(tmp_path, objective=["aicd", "condgen", "lm"], omega=[0.1, 0.5]))
    assert sorted(r.name for r in runs) == ["aicd-omega0.1", "aicd-omega0.5", "condgen", "lm"]


def _fake_results(runs, accuracy=0.5):
    """results.json for every planned evaluation, as evaluate() writes it (no training needed)."""
    import json

    for run in runs:
        for ev in run.evals:
            rows = [{"shots": k, "seed": s, "accuracy": accuracy} for k in ev.shots for s in ev.seeds]
            Path(ev.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(ev.output_dir) / "results.json").write_text(json.dumps({"rows": rows, "stopped": False}))


def test_plan_collapses_omega_for_schedules_that_ignore_it(tmp_path):
    from aicd.sweep import build_table

    cfg = _config(tmp_path, schedule=["paper", "constant", "linear"], omega=[0.1, 0.5])
    runs = plan_sweep(cfg)
    assert sorted(r.name for r in runs) == [
        "scheduleconstant",  # constant weights every shot 1: one run, not one per ω
        "schedulelinear-omega0.1",
        "schedulelinear-omega0.5",
        "schedulepaper-omega0.1",
        "schedulepaper-omega0.5",
    ]
    _fake_results(runs)
    omegas = {(r["schedule"], r["omega"]) for r in build_table(runs) if r["shots"] == 0}
    assert omegas == {("constant", None), ("linear", 0.1), ("linear", 0.5), ("paper", 0.1), ("paper", 0.5)}

    custom = cfg.model_copy(
        update={
            "train": {**cfg.train, "schedule": "custom", "weights": [0.3, 1.0]},
            "grid": {"omega": [0.1, 0.5, 1.0]},
        }
    )
    (run,) = plan_sweep(custom)  # explicit weights ignore ω: a single run
    assert run.params == {} and run.train.weights == [0.3, 1.0]


def test_plan_eval_datasets_and_template_follow_the_train_config(tmp_path):
    cfg = _config(tmp_path, objective=["aicd"])
    cfg = cfg.model_copy(
        update={
            "eval_datasets": ["arith", "svamp"],
            "train": {**cfg.train, "template": {"question_prefix": "Q: "}},
        }
    )
    (run,) = plan_sweep(cfg)
    assert [e.dataset for e in run.evals] == ["arith", "svamp"]
    assert all(e.template.question_prefix == "Q: " for e in run.evals)
    assert run.evals[0].output_dir != run.evals[1].output_dir


def test_plan_does_not_import_torch(tmp_path):
    code = (
        "import sys; from aicd.sweep import load_sweep_config, plan_sweep; "
        "runs = plan_sweep(load_sweep_config('configs/table1-svamp.yaml')); "
        "assert len(runs) == 16, len(runs); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_bad_grid_values_name_the_run_and_field(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep run 'aicd-lr-1'.*lr"):
        plan_sweep(_config(tmp_path, objective=["aicd"], lr=[-1]))
    with pytest.raises(ConfigError, match="grid"):
        _config(tmp_path, nonsense=[1])


def test_overrides_route_to_train_grid_and_sweep_fields():
    cfg = load_sweep_config(
        shipped_configs_dir() / "table1-svamp.yaml",
        ["model=Qwen/Qwen2.5-0.5B", "limit=null", "seed=1", "eval.shots=[0,2]", "name=x"],
    )
    assert cfg.train["model"] == "Qwen/Qwen2.5-0.5B" and cfg.train["limit"] is None
    assert cfg.grid["seed"] == [1] and cfg.eval["shots"] == [0, 2] and cfg.name == "x"


def test_every_shipped_config_validates():
    from aicd.config import TrainConfig, load_config

    files = sorted(shipped_configs_dir().glob("*.yaml"))
    assert {"svamp-aicd.yaml", "table1-svamp.yaml", "fig1-omega.yaml", "fig2-shots.yaml"} <= {
        f.name for f in files
    }
    for f in files:
        if f.name.startswith("paper-"):  # planned against a data root in tests/core/test_paper_configs.py
            assert load_sweep_config(f).train["full_data"] is True, f
        elif f.name.startswith(("table1", "fig")):
            assert plan_sweep(load_sweep_config(f)), f
        else:
            cfg = load_config(TrainConfig, f)
            assert cfg.lr == 7e-6 and cfg.n_shots == (6 if "strategyqa" in f.name else 4), f


class Recorder(SweepCallback):
    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.logs = 0
        self.eval_progress = 0

    def on_run_start(self, index, run):
        self.events.append(("start", run.name))

    def on_run_end(self, index, run, status):
        self.events.append((status, run.name))

    def on_train_log(self, run, step, total_steps, metrics):
        self.logs += 1
        assert total_steps == 2 and "loss" in metrics

    def on_eval_progress(self, run, dataset, done, total):
        self.eval_progress += 1


def test_tiny_sweep_end_to_end_then_resume_skips(tmp_path):
    cfg = _config(tmp_path)
    rec = Recorder()
    result = run_sweep(cfg, callback=rec, progress=False)
    names = ["aicd-seed0", "aicd-seed1", "nocot-seed0", "nocot-seed1"]
    assert [e for e in rec.events if e[0] == "done"] == [("done", n) for n in names]
    assert rec.logs == 4 * 2 and rec.eval_progress > 0 and not result.stopped

    # table: one row per (objective, dataset, shots), mean/std over the two training seeds
    rows = {(r["objective"], r["shots"]): r for r in result.table_rows}
    assert set(rows) == {("aicd", 0), ("aicd", 1), ("nocot", 0), ("nocot", 1)}
    for r in rows.values():
        assert r["n"] == 2 and r["n_values"] == 4 and r["std"] is not None  # std over the 2 runs
        assert 0.0 <= r["mean"] <= 1.0 and r["dataset"] == "arith"
    with result.csv_path.open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    md = result.md_path.read_text()
    assert "## 0-shot" in md and "## 1-shot" in md and "| aicd |" in md and "| nocot |" in md and "±" in md

    # figures exist, are PNGs and not empty
    assert [p.name for p in result.plots] == ["fig1_accuracy_vs_omega.png", "fig2_accuracy_vs_shots.png"]
    for p in result.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000

    # per-run artifacts
    for n in names:
        assert (tmp_path / "tiny" / "runs" / n / "final").is_dir()
        assert (tmp_path / "tiny" / "evals" / n / "arith" / "results.json").is_file()
    assert yaml.safe_load((tmp_path / "tiny" / "sweep.yaml").read_text())["name"] == "tiny"

    # resume: nothing re-runs, same table
    rec2 = Recorder()
    again = run_sweep(cfg, callback=rec2, progress=False)
    assert rec2.events == [("skipped", n) for n in names]
    assert again.table_rows == result.table_rows

    # without resume an existing sweep is refused
    from aicd.errors import AICDError

    with pytest.raises(AICDError, match="--resume"):
        run_sweep(cfg, resume=False, progress=False)


def test_stop_then_resume_finishes(tmp_path):
    cfg = _config(tmp_path, objective=["aicd"], seed=[0])

    class StopAtOnce(SweepCallback):
        def should_stop(self):
            return True

    first = run_sweep(cfg, callback=StopAtOnce(), progress=False)
    assert first.stopped and first.table_rows == []
    assert "No finished evaluations" in first.md_path.read_text()
    done = run_sweep(cfg, progress=False)
    assert not done.stopped and {r["shots"] for r in done.table_rows} == {0, 1}


def test_markdown_layout_rows_objectives_columns_datasets():
    table = [
        {
            "objective": "aicd",
            "variant": "",
            "dataset": "svamp",
            "shots": 0,
            "mean": 0.5,
            "std": 0.05,
            "n": 3,
        },
        {
            "objective": "aicd",
            "variant": "",
            "dataset": "gsm8k",
            "shots": 0,
            "mean": 0.25,
            "std": 0.0,
            "n": 3,
        },
        {
            "objective": "nocot",
            "variant": "",
            "dataset": "svamp",
            "shots": 0,
            "mean": 0.125,
            "std": None,
            "n": 1,
        },
    ]
    md = table_markdown(table)
    assert "| objective | svamp | gsm8k | n |" in md
    assert "| aicd | 50.0 ± 5.0 | 25.0 ± 0.0 | 3 |" in md
    assert "| nocot | 12.5 | – | 1 |" in md  # one training run: no spread to show


def test_cli_dry_run_and_bad_config(repo_root, tmp_path):
    env_cmd = [sys.executable, "-m", "aicd", "sweep"]
    ok = subprocess.run(
        [*env_cmd, "configs/table1-svamp.yaml", "--dry-run"], cwd=repo_root, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "16 run(s)" in ok.stdout and "nocot-seed2" in ok.stdout
    assert "star-seed2: train runs/table1-svamp/star/svamp.jsonl" in ok.stdout  # the STaR row's own data
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ngrid:\n  objective: [aicd, magic]\n")
    res = subprocess.run([*env_cmd, str(bad), "--dry-run"], cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 2 and "objective" in res.stderr and "Traceback" not in res.stderr


def _finished_sweep(tmp_path, name, dataset, base):
    """A sweep of the four objectives on one dataset whose evaluations are on disk (accuracy base + seed/10)."""
    import json

    from aicd.sweep import write_report

    cfg = _config(tmp_path, objective=["aicd", "condgen", "lm", "nocot"])
    cfg = cfg.model_copy(update={"name": name, "train": {**cfg.train, "dataset": dataset}})
    runs = plan_sweep(cfg)
    for i, run in enumerate(runs):
        for ev in run.evals:
            rows = [
                {"shots": k, "seed": s, "accuracy": base + i / 100 + s / 10}
                for k in ev.shots
                for s in ev.seeds
            ]
            Path(ev.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(ev.output_dir) / "results.json").write_text(json.dumps({"rows": rows, "stopped": False}))
    return write_report(cfg, runs)


def test_sweep_report_merges_one_dataset_sweeps_into_table_1(tmp_path, monkeypatch, capsys):
    from aicd.cli import main

    a = _finished_sweep(tmp_path, "table1-arith", "arith", 0.2)
    b = _finished_sweep(tmp_path, "table1-svamp", "svamp", 0.5)
    out = tmp_path / "table1"
    monkeypatch.setattr(
        sys, "argv", ["aicd", "sweep-report", str(a.sweep_dir), str(b.csv_path), "--out", str(out)]
    )
    main()
    printed = capsys.readouterr().out

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(a.table_rows) + len(b.table_rows) == 4 * 2 * 2
    assert {(r["objective"], r["dataset"]) for r in rows} == {
        (o, d) for o in ("aicd", "condgen", "lm", "nocot") for d in ("arith", "svamp")
    }
    md = (out / "results.md").read_text()
    assert md.startswith("# Table 1") and md in printed
    zero_shot = md.split("## 0-shot")[1].split("## 1-shot")[0]
    assert "| objective | arith | svamp |" in zero_shot
    # objectives as rows, datasets as columns; one training run each: its mean over the two evaluation seeds
    assert "| aicd | 25.0 | 55.0 | 1 |" in zero_shot
    assert "| nocot | 28.0 | 58.0 | 1 |" in zero_shot
    assert (out / "fig2_accuracy_vs_shots.png").stat().st_size > 5000


def test_sweep_report_refuses_missing_and_overlapping_tables(tmp_path, monkeypatch, capsys):
    from aicd.cli import main
    from aicd.errors import AICDError
    from aicd.sweep import merge_tables

    a = _finished_sweep(tmp_path, "one", "arith", 0.2)
    with pytest.raises(AICDError, match="both have aicd on arith at 0 shots"):
        merge_tables([a.sweep_dir, a.csv_path])
    monkeypatch.setattr(
        sys, "argv", ["aicd", "sweep-report", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no results.csv" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_parallel_sweep_runs_in_other_processes_and_matches_the_sequential_one(tmp_path, monkeypatch):
    """`run_sweep(parallel=2)` (`aicd sweep --parallel 2`) trains each run in a spawned process; the table is
    the one the in-order sweep writes (same seeds, same CPU maths)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seq = run_sweep(_config(tmp_path / "seq", objective=["aicd", "nocot"], seed=[0]), progress=False)
    rec = Recorder()
    par = run_sweep(
        _config(tmp_path / "par", objective=["aicd", "nocot"], seed=[0]),
        callback=rec,
        progress=False,
        parallel=2,
    )
    assert sorted(e for e in rec.events if e[0] == "done") == [
        ("done", "aicd-seed0"),
        ("done", "nocot-seed0"),
    ]
    assert rec.logs == 0  # training happened elsewhere: no log line reached this process's callback
    assert par.table_rows == seq.table_rows
    for name in ("aicd-seed0", "nocot-seed0"):
        assert (tmp_path / "par" / "tiny" / "runs" / name / "final").is_dir()
