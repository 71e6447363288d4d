"""`aicd demo`: the paper's experiment in miniature, on a CPU with no network (~7 min of one core's CPU).

What it runs (the paper's regime, shrunk):
1. data — the hidden-rule family of `aicd.data.synthetic` (`Ann has 5 pens, finds 3.` → `bonus=4. 5+3=8.
   8+4=12.`): each episode's shots share a bonus the question never mentions, so demonstrations carry
   information a student can use in context; 0-shot the rule can only be guessed (chance 1/9).
2. a pretrained student stand-in — `aicd.pretrain`: a tiny byte-level llama pre-trained once (LM loss on
   copying, key-value recall, arithmetic and the task's questions; never its episodes), cached under
   `<out>/pretrain/<hash>/final` and shared by every objective and seed.
3. the comparison — aicd, condgen, lm, nocot fine-tuned from that base with the same optimizer steps,
   4-shot episodes, 2 training seeds, an accuracy-vs-steps curve (`eval_every`, 1-shot), then scored at
   0, 1, 2, 3 shots; the untuned base is scored too ("vanilla").
4. the report — `aicd.demo_report`: accuracy and step-by-step chain correctness, mean ± std over training
   seeds, next to the majority-answer and rule-blind baselines, in `<out>/demo.md`.

It is an ordinary sweep (`aicd.sweep.run_sweep`) plus the base and vanilla steps, so `--resume` reuses
everything already finished. The student is far too small for the numbers to say anything about real
models; what the demo can show is whether, on a task where demonstrations matter, an objective's student
uses them (accuracy rising with shots) and whether AICD's earlier-shot supervision beats CondGen's.
Why these settings (bench/results/demo.md): with 300 pre-training steps the base learnt neither to copy
nor to add, and 200 fine-tuning steps at lr 3e-3 left a student writing one chain for every question; the
budgets below were raised once for that, before any objective was compared, and never to favour one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicd.config import EvalConfig, SweepConfig, TrainConfig, build_config
from aicd.errors import ConfigError
from aicd.pretrain import DEMO_MODEL  # noqa: F401 - the base models' settings live in aicd.pretrain.PRESETS
from aicd.sweep import SweepCallback, SweepResult, check_fresh, run_sweep

TEMPLATE = {"question_prefix": "Q: ", "answer_prefix": "\nA:", "separator": "\n\n"}
DATA_DIR = "bonus"  # <out>/bonus/{train,test}.jsonl
VANILLA = "vanilla"  # <out>/evals/vanilla/<data>/: the untuned base

FULL: dict[str, Any] = {
    "n_train": 4000,
    "n_test": 100,
    "max_steps": 300,
    "batch_size": 8,
    "lr": 1e-2,
    "seeds": [0, 1],
    "shots": [0, 1, 2, 3],
    "eval_every": 75,
    "eval_limit": 32,
    "max_new_tokens": 28,
}
QUICK: dict[str, Any] = {
    **FULL,
    "n_train": 64,
    "n_test": 6,
    "max_steps": 2,
    "batch_size": 4,
    "seeds": [0],
    "eval_every": 1,
    "eval_limit": 2,
    "max_new_tokens": 8,
}


@dataclass
class DemoResult:
    """The sweep's table and figures, plus the demo's own report (`demo.md`) and the base model."""

    sweep: SweepResult
    report_path: Path
    report: str
    base_hash: str
    base_trained_now: bool

    @property
    def stopped(self) -> bool:
        return self.sweep.stopped


def _settings(quick: bool, steps: int | None) -> dict[str, Any]:
    return {**(QUICK if quick else FULL), **({"max_steps": steps} if steps else {})}


def _check_out(out: Path) -> Path:
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise ConfigError(f"--out: give a folder name, got '{out}'")
    return out


def base_config(out: Path, *, quick: bool = False) -> TrainConfig:
    """The pre-training run of the student stand-in (cached by its hash under `out/pretrain/`)."""
    from aicd.pretrain import preset_config

    return preset_config(_check_out(out), "demo-quick" if quick else "demo")


def demo_config(out: Path, *, quick: bool = False, steps: int | None = None) -> SweepConfig:
    """The demo's sweep: objective × training seed, each fine-tuned from the cached base model."""
    p = _settings(quick, steps)
    out = _check_out(out)
    data = {
        "name": out.name,
        "output_dir": str(out.parent),
        "train": {
            "model": str(base_config(out, quick=quick).run_dir / "final"),
            "dataset": str(out / DATA_DIR),
            "n_shots": 4,
            "schedule": "paper",
            "omega": 0.1,
            "template": TEMPLATE,
            "lr": p["lr"],
            "warmup_ratio": 0.05,
            "weight_decay": 0.0,
            "batch_size": p["batch_size"],
            "micro_batch_size": p["batch_size"],
            "max_steps": p["max_steps"],
            "max_length": 512,
            "reduction": "token",
            "log_every": 10,
            "mixed_precision": "no",
            "eval_every": p["eval_every"],
            "eval_limit": p["eval_limit"],
            "eval_shots": 1,
            "eval_max_new_tokens": p["max_new_tokens"],
        },
        "eval": {
            "split": "test",
            "shots": p["shots"],
            "seeds": [0],
            "template": TEMPLATE,
            "max_new_tokens": p["max_new_tokens"],
            "batch_size": 100,
            "max_length": 512,
        },
        # seed first: every objective's first seed finishes before any second seed starts
        "grid": {"seed": p["seeds"], "objective": ["aicd", "condgen", "lm", "nocot"]},
    }
    return build_config(SweepConfig, data, source="demo")


def vanilla_config(config: SweepConfig) -> EvalConfig:
    """The untuned base scored like every fine-tuned student (rationale demonstrations)."""
    from aicd.sweep import plan_sweep, sweep_dir

    first = plan_sweep(config)[0].evals[0]
    return first.model_copy(
        update={
            "model": config.train["model"],
            "demonstrations": "rationale",
            "output_dir": str(sweep_dir(config) / "evals" / VANILLA / Path(first.output_dir).name),
        }
    )


def write_demo_data(out: Path, *, quick: bool = False, seed: int = 0) -> Path:
    """Generate the train/test JSONL files the demo reads (`out/bonus/{train,test}.jsonl`)."""
    from aicd.data.jsonl import write_examples
    from aicd.data.synthetic import generate_bonus

    p = QUICK if quick else FULL
    folder = Path(out) / DATA_DIR
    write_examples(folder / "train.jsonl", generate_bonus("train", p["n_train"], seed=seed))
    write_examples(folder / "test.jsonl", generate_bonus("test", p["n_test"], seed=seed))
    return folder


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    resume: bool = False,
    threads: int | None = 1,
    callback: SweepCallback | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> DemoResult:
    """Data → base model (cached) → the four objectives × seeds → vanilla → report.

    Without `resume`, an `out` that already holds runs is refused before anything is written; the base
    model is reused whenever `out/pretrain/` holds one with the same configuration.
    """
    import torch

    from aicd.demo_report import write_demo_report
    from aicd.evaluate import evaluate
    from aicd.pretrain import ensure_base
    from aicd.sweep import _eval_done

    if threads:
        torch.set_num_threads(threads)
    out = _check_out(Path(out))
    config = demo_config(out, quick=quick, steps=steps)
    if not resume:
        check_fresh(config)  # before the data files are rewritten, not only before training
    write_demo_data(out, quick=quick)
    base = ensure_base(base_config(out, quick=quick), progress=progress)
    vanilla = vanilla_config(config)
    if not _eval_done(vanilla.output_dir):
        evaluate(vanilla, progress=progress, device="cpu")
    result = run_sweep(config, callback=callback, resume=resume, progress=progress)
    path, text = write_demo_report(config, result, vanilla, base_hash=base.weights_hash)
    return DemoResult(result, path, text, base.weights_hash, base.trained_now)
