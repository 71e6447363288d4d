"""`aicd demo`: hidden-rule data → one cached pretrained base → 4 objectives × seeds → 0–3 shots → report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from aicd.data.jsonl import read_examples
from aicd.demo import FULL, base_config, demo_config, run_demo, vanilla_config
from aicd.sweep import plan_sweep


def test_demo_config_follows_the_paper_protocol(tmp_path):
    cfg = demo_config(tmp_path / "demo")
    runs = plan_sweep(cfg)
    assert {(r.train.objective, r.train.seed) for r in runs} == {
        (o, s) for o in ("aicd", "condgen", "lm", "nocot") for s in (0, 1)
    }
    base = base_config(tmp_path / "demo").run_dir / "final"
    assert base.parent.parent == tmp_path / "demo" / "pretrain"
    for run in runs:  # every objective: same base, same steps, 4-shot episodes, curve, scored at 0..3 shots
        assert run.train.model == str(base)
        assert run.train.max_steps == FULL["max_steps"] and run.train.n_shots == 4
        assert run.train.eval_every > 0 and run.evals[0].shots == [0, 1, 2, 3]
    assert cfg.name == "demo" and cfg.output_dir == str(tmp_path)
    vanilla = vanilla_config(cfg)
    assert vanilla.model == str(base) and vanilla.shots == [0, 1, 2, 3]
    assert vanilla.demonstrations == "rationale" and "/evals/vanilla/" in vanilla.output_dir
    assert demo_config(tmp_path / "demo", steps=11).train["max_steps"] == 11


def test_base_model_cache_key_follows_its_settings(tmp_path):
    quick, full = base_config(tmp_path / "d", quick=True), base_config(tmp_path / "d")
    assert quick.run_dir != full.run_dir and quick.run_dir.parent == full.run_dir.parent
    assert base_config(tmp_path / "d", quick=True).run_dir == quick.run_dir  # deterministic


def test_quick_demo_runs_end_to_end_from_one_base_and_cli_resumes(tmp_path, repo_root):
    out = tmp_path / "demo"
    result = run_demo(out, quick=True, progress=False)
    sweep = result.sweep
    assert {r["objective"] for r in sweep.table_rows} == {"aicd", "condgen", "lm", "nocot"}
    assert {r["shots"] for r in sweep.table_rows} == {0, 1, 2, 3}
    test = read_examples(out / "bonus" / "test.jsonl")
    assert len(test) == 6 and all(ex.group and len(ex.rationales) == 1 for ex in test)

    # every objective fine-tuned from the one cached base, whose weights no run changed
    from aicd.pretrain import ensure_base, weights_hash

    base = base_config(out, quick=True).run_dir / "final"
    assert result.base_trained_now and weights_hash(base) == result.base_hash
    again = ensure_base(base_config(out, quick=True), progress=False)  # cached: not trained again
    assert not again.trained_now and again.weights_hash == result.base_hash
    for run in sweep.runs:
        saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
        assert saved["model"] == str(base)
        metrics = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert any("eval_accuracy" in m for m in metrics)  # the accuracy-vs-steps curve
    # generations: one per test item per shot count, for each run and for the untuned base
    gens = (out / "evals" / "vanilla" / "bonus" / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 6 * 4

    report = result.report_path.read_text()
    assert report == result.report
    for needle in (
        "majority answer",
        "rule-blind",
        "Correct chains",
        "| vanilla |",
        "| nocot |",
        "cannot show",
    ):
        assert needle in report, needle

    # the CLI refuses to overwrite a finished demo; --resume reprints its report without retraining anything
    cmd = [sys.executable, "-m", "aicd", "demo", "--quick", "--out", str(out), "--no-progress"]
    res = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 2 and "--resume" in res.stderr and "Traceback" not in res.stderr
    stamp = (base / "model.safetensors").stat().st_mtime_ns
    ok = subprocess.run([*cmd, "--resume"], cwd=repo_root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert result.report in ok.stdout and "load average" in ok.stdout
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp and weights_hash(base) == result.base_hash


def test_demo_cli_passes_steps_and_help_states_the_real_default(tmp_path, monkeypatch, aicd_cli):
    import typer

    import aicd.demo
    from aicd.cli import app

    calls = []

    def fake_run_demo(out, **kwargs):  # no training: what the CLI hands over is under test
        calls.append(kwargs)
        raise aicd.demo.ConfigError("stop here")

    monkeypatch.setattr(aicd.demo, "run_demo", fake_run_demo)
    assert aicd_cli("demo", "--quick", "--steps", "7", "--out", str(tmp_path / "d"), "--no-progress") == 2
    assert calls[0]["steps"] == 7 and calls[0]["quick"] is True
    demo = typer.main.get_command(app).commands["demo"]
    steps_help = next(p.help for p in demo.params if p.name == "steps")
    assert f"default {FULL['max_steps']}" in steps_help


def test_demo_without_resume_refuses_an_existing_sweep_before_writing_anything(tmp_path, aicd_cli, capsys):
    out = tmp_path / "demo"
    (out / "runs" / "aicd").mkdir(parents=True)
    (out / "bonus").mkdir()
    train = out / "bonus" / "train.jsonl"
    train.write_text("earlier data\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert aicd_cli("demo", "--quick", "--out", str(out), "--no-progress") == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert train.read_text() == "earlier data\n"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_report_scores_chains_and_aggregates_over_training_seeds(tmp_path):
    from aicd.data.synthetic import generate_bonus
    from aicd.demo_report import build_report, score_eval

    cfg = demo_config(tmp_path / "demo")
    runs = [r for r in plan_sweep(cfg) if r.train.objective in ("aicd", "condgen")]
    test = generate_bonus("test", 2)
    a, b = test
    right = a.rationales[0].text  # the gold chain
    wrong_rule = int(a.group.removeprefix("bonus")) % 9 + 1
    lucky = f"bonus={wrong_rule}. 1+1=2. 2+{int(a.answer) - 2}={a.answer}."  # right answer, wrong chain
    outputs = {  # (objective, seed) -> per shots: [(item, generation, correct)]
        ("aicd", 0): {0: [(a, right, True), (b, "x", False)], 1: [(a, lucky, True), (b, "x", False)]},
        ("aicd", 1): {0: [(a, "x", False), (b, "x", False)], 1: [(a, right, True), (b, "x", False)]},
        ("condgen", 0): {0: [(a, "x", False), (b, "x", False)], 1: [(a, "x", False), (b, "x", False)]},
        ("condgen", 1): {0: [(a, "x", False), (b, "x", False)], 1: [(a, "x", False), (b, "x", False)]},
    }
    for run in runs:
        out = Path(run.evals[0].output_dir)
        out.mkdir(parents=True)
        recs = [
            {"example_id": ex.id, "shots": k, "generation": gen, "correct": ok, "gold": ex.answer}
            for k, items in outputs[(run.train.objective, run.train.seed)].items()
            for ex, gen, ok in items
        ]
        (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    cells = score_eval(Path(runs[0].evals[0].output_dir), "aicd", 0, {ex.id: ex for ex in test})
    assert [(c.shots, c.accuracy, c.chains, c.lucky, c.rule_step) for c in cells] == [
        (0, 0.5, 0.5, 0, 0.5),
        (1, 0.5, 0.0, 1, 0.0),
    ]
    vanilla = vanilla_config(cfg)  # never evaluated: no vanilla row
    report = build_report(
        cfg, runs, vanilla, base_hash="f" * 64, train=generate_bonus("train", 50), test=test
    )
    # accuracy: aicd seeds (50, 0) at 0 shots, (50, 50) at 1; chains (50, 0) and (0, 50)
    assert "| aicd | 25.0 ± 35.4 | 50.0 ± 0.0 |" in report
    assert "| aicd | 25.0 ± 35.4 | 25.0 ± 35.4 |" in report
    assert "| condgen | 0.0 ± 0.0 | 0.0 ± 0.0 |" in report and "| vanilla |" not in report
    assert "1-shot accuracy: aicd 50.0 % vs condgen 0.0 % → AICD above CondGen (gap +50.0 points" in report
    assert "0-shot accuracy" not in report and "2-shot" not in report
    assert "| aicd | 0 | 50 / 50 | 50 / 0 | 1 |" in report  # per seed, with the lucky answer counted
    # rule step: seed 0 (50, 0), seed 1 (0, 50); as in the chains table
    assert report.count("| aicd | 25.0 ± 35.4 | 25.0 ± 35.4 |") == 2
    assert "- aicd: accuracy 25.0 % at 0 shots → 50.0 % at 1; rule step 25.0 % → 25.0 %" in report
