"""`aicd demo`: the whole method end to end on a laptop CPU with no network.

A tiny byte-level student (`tiny:llama`, 2 layers, d=64, trained from scratch) learns synthetic 3-step
arithmetic word problems (`aicd.data.synthetic`) under each objective — aicd, condgen, lm, nocot — and is
evaluated 0-shot and 1-shot with greedy decoding. It is an ordinary sweep (`aicd.sweep.run_sweep`), so it
writes the same Table-1-style results.csv/.md and figures as a paper-scale sweep.

Why these settings: every character is a token for the byte-level student, so questions are short, the
template is `Q: …\nA: …` and episodes hold 2 shots. The questions use the fixed-width layout (same-length
words, single digits) so that every number sits at a fixed offset. The student sits on a plateau (it writes
the format but does not yet copy numbers out of the question) for ~500 steps; 1,000 steps of 16 episodes get
past it in about 85 s per objective on 2 cores (bench/results/demo.md). One rationale per question (k=1) keeps the layout of the target fixed
too. The learning rate (1e-2) is far above the paper's 7e-6 because the student starts from random weights.
`nocot` must compute a±b±c±d in one go; the CoT objectives write one single-digit step at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aicd.config import SweepConfig, build_config
from aicd.data.jsonl import write_examples
from aicd.data.synthetic import ArithSpec, generate
from aicd.errors import ConfigError
from aicd.sweep import SweepCallback, SweepResult, check_fresh, run_sweep

DEMO_SPEC = ArithSpec(min_steps=3, max_steps=3, max_operand=9, max_value=9, k=1, fixed_width=True)
DEMO_MODEL = "tiny:llama?num_hidden_layers=2&hidden_size=64&intermediate_size=192&num_attention_heads=4&num_key_value_heads=4"

FULL = {
    "n_train": 4000,
    "n_test": 150,
    "max_steps": 1000,
    "batch_size": 16,
    "shots": [0, 1],
    "model": DEMO_MODEL,
    "max_new_tokens": 60,
}
QUICK = {
    "n_train": 64,
    "n_test": 8,
    "max_steps": 3,
    "batch_size": 8,
    "shots": [0, 1],
    "max_new_tokens": 12,
    "model": "tiny:llama?num_hidden_layers=1&hidden_size=32&intermediate_size=64&num_attention_heads=2",
}


def demo_config(out: Path, *, quick: bool = False, steps: int | None = None) -> SweepConfig:
    """The demo's sweep: the four objectives on the generated data in `out/arith/`."""
    p = {**(QUICK if quick else FULL), **({"max_steps": steps} if steps else {})}
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise ConfigError(f"--out: give a folder name, got '{out}'")
    template = {"question_prefix": "Q: ", "answer_prefix": "\nA:", "separator": "\n\n"}
    data = {
        "name": out.name,
        "output_dir": str(out.parent),
        "train": {
            "model": p["model"],
            "dataset": str(out / "arith"),
            "n_shots": 2,
            "schedule": "paper",
            "omega": 0.1,
            "template": template,
            "lr": 1e-2,
            "warmup_ratio": 0.05,
            "weight_decay": 0.0,
            "batch_size": p["batch_size"],
            "micro_batch_size": p["batch_size"],
            "max_steps": p["max_steps"],
            "max_length": 512,
            "reduction": "token",
            "log_every": 10,
            "mixed_precision": "no",
            "seed": 0,
        },
        "eval": {
            "split": "test",
            "shots": p["shots"],
            "seeds": [0],
            "template": template,
            "max_new_tokens": p["max_new_tokens"],
            "batch_size": 50,
            "max_length": 512,
        },
        "grid": {"objective": ["aicd", "condgen", "lm", "nocot"]},
    }
    return build_config(SweepConfig, data, source="demo")


def write_demo_data(out: Path, *, quick: bool = False, seed: int = 0) -> Path:
    """Generate the train/test JSONL files the demo sweep reads (`out/arith/{train,test}.jsonl`)."""
    p = QUICK if quick else FULL
    folder = Path(out) / "arith"
    write_examples(folder / "train.jsonl", generate("train", p["n_train"], seed=seed, spec=DEMO_SPEC))
    write_examples(folder / "test.jsonl", generate("test", p["n_test"], seed=seed, spec=DEMO_SPEC))
    return folder


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    resume: bool = False,
    threads: int | None = 2,
    callback: SweepCallback | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Generate the data, run the four-objective sweep, and return its table/plots.

    Without `resume`, an `out` that already holds runs is refused before anything is written.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    config = demo_config(out, quick=quick, steps=steps)
    if not resume:
        check_fresh(config)  # before the data files are rewritten, not only before training
    write_demo_data(out, quick=quick)
    return run_sweep(config, callback=callback, resume=resume, progress=progress)


def describe(result: SweepResult) -> list[dict[str, Any]]:
    """(objective, shots, accuracy %) rows for printing and the benchmark notes."""
    return [
        {"objective": r["objective"], "shots": r["shots"], "accuracy": round(100 * r["mean"], 1)}
        for r in result.table_rows
    ]
