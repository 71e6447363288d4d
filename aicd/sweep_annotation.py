"""The paper's data pipeline as a sweep step: annotate each training dataset, then train on its output.

A sweep whose config has an `annotate:` section (AnnotateConfig fields: teacher, prompt, k = 3, T = 1.0,
filters) first asks the teacher for k rationales per training question, keeps those that pass the filters,
and writes `<sweep>/annotated/<dataset>.jsonl`; every run then trains on that file (an episode draws one of a
question's kept rationales at random) and takes its demonstrations from it, while evaluation stays on the
original dataset's test split. Raw samples go to `<dataset>.raw.jsonl` as they arrive, so a resumed sweep asks
only for what is missing; a finished file is reused as is.

A `star:` section adds Table 1's STaR row the same way: the student itself rationalises each training dataset
(source self, the gold answer as a hint, k samples, wrong chains dropped) into `<sweep>/star/<dataset>.jsonl`,
once per sweep, and the row's runs (one per seed) train on it with `STAR_OBJECTIVE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicd.errors import AICDError, ConfigError

if TYPE_CHECKING:
    from aicd.annotate import AnnotateConfig
    from aicd.config import SweepConfig

ANNOTATED_DIR = "annotated"
STAR_DIR = "star"
STAR_OBJECTIVE = "condgen"
"""How the STaR row trains on its chains: conventional fine-tuning, only the final shot's rationale supervised."""
_DROPS = ("truncated", "hint_mention", "contradiction", "no_answer", "wrong_answer")  # FilterStats counts


def annotated_path(sweep_root: Path, dataset: str) -> Path:
    """Where the annotated copy of training dataset `dataset` goes."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(dataset.rstrip("/")).stem or dataset)
    return sweep_root / ANNOTATED_DIR / f"{safe}.jsonl"


def training_datasets(config: SweepConfig) -> list[str]:
    """The original training datasets of a sweep: the grid's `dataset` values, else the train section's."""
    from aicd.config import TrainConfig

    if "dataset" in config.grid:
        return [str(d) for d in dict.fromkeys(config.grid["dataset"])]
    return [str(config.train.get("dataset", TrainConfig.model_fields["dataset"].default))]


def check_annotate_config(config: SweepConfig) -> None:
    """Validate the `annotate:` section (ConfigError naming the field) without contacting the teacher."""
    from aicd.annotate import AnnotateConfig
    from aicd.config import build_config

    if config.annotate is not None:
        build_config(AnnotateConfig, dict(config.annotate), source="sweep annotate")


def annotate_training_data(config: SweepConfig, sweep_root: Path) -> list[Path]:
    """Annotate every training dataset of the sweep that has no finished annotated file yet; their paths."""
    if config.annotate is None:
        return []
    from aicd.annotate import AnnotateConfig
    from aicd.config import build_config

    settings = build_config(AnnotateConfig, dict(config.annotate), source="sweep annotate")
    return [
        _annotate_dataset(config, settings, dataset, annotated_path(sweep_root, dataset), "annotate")
        for dataset in training_datasets(config)
    ]


def star_path(sweep_root: Path, dataset: str) -> Path:
    """Where the STaR row's training data for `dataset` goes: the student's own kept chains."""
    return sweep_root / STAR_DIR / annotated_path(sweep_root, dataset).name


def star_settings(config: SweepConfig, student: str) -> AnnotateConfig:
    """The `star:` section as an AnnotateConfig: source self, model the student unless the section names one;
    ConfigError naming the field, without loading anything."""
    from aicd.annotate import AnnotateConfig
    from aicd.config import build_config

    data = dict(config.star or {})
    if data.get("source", "self") != "self":
        raise ConfigError(
            f"sweep star: source: must be 'self' (the STaR row trains on the student's own chains), "
            f"got '{data['source']}'"
        )
    return build_config(AnnotateConfig, {"model": student, **data, "source": "self"}, source="sweep star")


def annotate_star_data(config: SweepConfig, sweep_root: Path, student: str) -> list[Path]:
    """The STaR row's data: the student rationalises each training dataset once (hint in the prompt, k samples,
    chains with a wrong answer dropped), for every seed of the row; finished files are reused."""
    if config.star is None:
        return []
    settings = star_settings(config, student)
    return [
        _annotate_dataset(config, settings, dataset, star_path(sweep_root, dataset), "star")
        for dataset in training_datasets(config)
    ]


def _annotate_dataset(
    config: SweepConfig, settings: AnnotateConfig, dataset: str, out: Path, step: str
) -> Path:
    """Annotate the training split of `dataset` into `out` (kept examples), `<out>.raw.jsonl` (every sample, so a
    resumed sweep asks only for what is missing) and `<out>.report.json`; a finished `out` is reused as is."""
    from aicd.annotate import JsonlSink, annotate
    from aicd.config import TrainConfig
    from aicd.data import write_examples
    from aicd.data.loaders import answer_kind_of, load_examples

    if out.is_file():
        return out
    split = str(config.train.get("split", TrainConfig.model_fields["split"].default))
    examples = load_examples(dataset, split, limit=config.train.get("limit"))
    if not examples:
        raise AICDError(f"{step}: dataset '{dataset}' split '{split}' has no examples")
    run_settings = settings.model_copy()
    if run_settings.answer_kind == "auto":
        run_settings.answer_kind = answer_kind_of(dataset, examples)
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = JsonlSink(out.with_name(out.name.removesuffix(".jsonl") + ".raw.jsonl"))
    try:
        report = annotate(run_settings, examples, sink)
    finally:
        sink.close()
    if not (report.ok or report.already_stored) or report.stopped:
        raise AICDError(f"{step}: {dataset}: {report.summary()} (resume the sweep to retry)")
    kept = [ex for ex in report.examples if ex.rationales]
    if not kept:
        dropped = {k: v for k, v in report.filters.model_dump().items() if k in _DROPS and v}
        why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items()) or "no samples"
        raise AICDError(
            f"{step}: {dataset}: no rationale passed the filters (dropped: {why}); ask for more samples "
            f"({step}.k) or relax {step}.filter_correct / {step}.drop_truncated"
        )
    write_examples(out, report.examples)
    summary: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "questions": len(report.examples),
        "with_rationale": len(kept),
        "rationales": sum(len(ex.rationales) for ex in kept),
        "config": run_settings.public_dict(),
    }
    out.with_name(out.name.removesuffix(".jsonl") + ".report.json").write_text(
        json.dumps(summary, indent=1), encoding="utf-8"
    )
    return out
