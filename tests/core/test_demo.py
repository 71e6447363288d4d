"""`aicd demo --quick` runs the whole pipeline (data → 4 objectives → evaluation → table → figures)."""

from __future__ import annotations

import subprocess
import sys

from aicd.data.jsonl import read_examples
from aicd.demo import demo_config, run_demo


def test_demo_config_compares_the_four_objectives(tmp_path):
    cfg = demo_config(tmp_path / "demo")
    assert cfg.grid["objective"] == ["aicd", "condgen", "lm", "nocot"]
    assert cfg.train["model"].startswith("tiny:") and cfg.train["dataset"] == str(tmp_path / "demo" / "arith")
    assert cfg.name == "demo" and cfg.output_dir == str(tmp_path)


def test_quick_demo_runs_end_to_end_and_cli_resumes(tmp_path, repo_root):
    out = tmp_path / "demo"
    result = run_demo(out, quick=True, progress=False)
    assert {r["objective"] for r in result.table_rows} == {"aicd", "condgen", "lm", "nocot"}
    assert {r["shots"] for r in result.table_rows} == {0, 1}
    assert all(0.0 <= r["mean"] <= 1.0 for r in result.table_rows)
    assert len(read_examples(out / "arith" / "train.jsonl")) == 64
    test = read_examples(out / "arith" / "test.jsonl")
    assert len(test) == 8 and all(len(ex.rationales) == 1 for ex in test)
    assert result.md_path == out / "results.md" and "| lm |" in result.md_path.read_text()
    assert sorted(p.name for p in result.plots) == [
        "fig1_accuracy_vs_omega.png",
        "fig2_accuracy_vs_shots.png",
    ]
    assert all(p.stat().st_size > 5000 for p in result.plots)
    # generations were produced by the trained students, one per test item per shot count
    gens = (out / "evals" / "aicd" / "arith" / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 8 * 2

    # the CLI refuses to overwrite a finished demo, and --resume reprints its table without retraining
    cmd = [sys.executable, "-m", "aicd", "demo", "--quick", "--out", str(out)]
    res = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 2 and "--resume" in res.stderr and "Traceback" not in res.stderr
    ok = subprocess.run([*cmd, "--resume"], cwd=repo_root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "| aicd |" in ok.stdout and "fig2_accuracy_vs_shots.png" in ok.stdout
    assert result.md_path.read_text() in ok.stdout


def test_demo_steps_option_reaches_every_run_and_help_states_the_real_default(
    tmp_path, monkeypatch, aicd_cli
):
    import typer

    import aicd.demo
    from aicd.cli import app
    from aicd.demo import FULL
    from aicd.sweep import plan_sweep, write_report

    planned = []

    def fake_run_sweep(config, **kwargs):  # no training: the planned runs' configs are what --steps must set
        planned.extend(plan_sweep(config))
        return write_report(config, planned)

    monkeypatch.setattr(aicd.demo, "run_sweep", fake_run_sweep)
    assert aicd_cli("demo", "--quick", "--steps", "7", "--out", str(tmp_path / "d"), "--no-progress") == 0
    assert len(planned) == 4 and {r.train.max_steps for r in planned} == {7}
    planned.clear()
    assert aicd_cli("demo", "--steps", "11", "--out", str(tmp_path / "e"), "--no-progress") == 0
    assert {r.train.max_steps for r in planned} == {11}

    demo = typer.main.get_command(app).commands["demo"]
    steps_help = next(p.help for p in demo.params if p.name == "steps")
    assert f"default {FULL['max_steps']}" in steps_help
    assert demo_config(tmp_path / "f").train["max_steps"] == FULL["max_steps"]


def test_demo_without_resume_refuses_an_existing_sweep_before_writing_anything(tmp_path, aicd_cli, capsys):
    out = tmp_path / "demo"
    (out / "runs" / "aicd").mkdir(parents=True)
    (out / "arith").mkdir()
    train = out / "arith" / "train.jsonl"
    train.write_text("earlier data\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert aicd_cli("demo", "--quick", "--out", str(out), "--no-progress") == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert train.read_text() == "earlier data\n"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
