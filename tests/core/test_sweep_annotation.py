"""A sweep whose config names an annotation step: the teacher annotates the training data (k samples at T,
filtered), every run trains on that output, evaluation stays on the original test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicd.config import SweepConfig, build_config
from aicd.data import write_examples
from aicd.data.jsonl import read_examples
from aicd.errors import ConfigError
from aicd.sweep import plan_sweep, run_sweep
from tests.annotate.conftest import make_examples
from tests.support.fake_teacher import start_fake_teacher


def _config(tmp_path: Path, data: Path, annotate: dict) -> SweepConfig:
    return build_config(
        SweepConfig,
        {
            "name": "ann",
            "output_dir": str(tmp_path / "out"),
            "train": {
                "model": "tiny:gpt2",
                "dataset": str(data),
                "max_steps": 1,
                "n_shots": 2,
                "batch_size": 2,
                "micro_batch_size": 2,
                "max_length": 256,
            },
            "eval": {"shots": [1], "limit": 2, "max_new_tokens": 4, "batch_size": 4},
            "eval_datasets": [str(data)],
            "annotate": annotate,
            "grid": {"objective": ["aicd"]},
        },
        source="t",
    )


def test_sweep_annotates_its_training_data_then_trains_on_it(tmp_path: Path) -> None:
    data = tmp_path / "plain.jsonl"
    write_examples(
        data, make_examples(8)
    )  # no rationales: only the annotation step can make the runs trainable
    base_url, teacher = start_fake_teacher()
    try:
        annotate = {
            "base_url": base_url,
            "api_key": "k",
            "teacher": "fake-teacher",
            "k": 3,
            "temperature": 1.0,
        }
        cfg = _config(tmp_path, data, annotate)
        (run,) = plan_sweep(cfg)
        annotated = tmp_path / "out" / "ann" / "annotated" / "plain.jsonl"
        assert run.train.dataset == str(annotated) and run.evals[0].dataset == str(data)
        assert run.evals[0].shots_dataset == str(annotated)

        result = run_sweep(cfg, progress=False)
        asked = len(teacher.requests)
    finally:
        teacher.close()
    examples = read_examples(annotated)
    assert len(examples) == 8 and any(ex.rationales for ex in examples)
    assert all(len(ex.rationales) <= 3 for ex in examples)  # k = 3, wrong chains filtered out
    assert asked > 0 and {r["shots"] for r in result.table_rows} == {1}
    report = json.loads(annotated.with_name("plain.report.json").read_text())
    assert report["config"]["k"] == 3 and report["config"]["temperature"] == 1.0
    data_json = json.loads((tmp_path / "out" / "ann" / "data.json").read_text())
    assert [d["dataset"] for d in data_json if d["role"] == "train"] == [str(annotated)]

    again = run_sweep(cfg, progress=False)  # resumed: the annotated file is reused, nothing re-asked
    assert again.table_rows == result.table_rows


def test_a_bad_annotation_step_names_its_field_before_anything_runs(tmp_path: Path) -> None:
    data = tmp_path / "plain.jsonl"
    write_examples(data, make_examples(4))
    with pytest.raises(ConfigError, match="k"):
        plan_sweep(_config(tmp_path, data, {"k": 0}))
    assert not (tmp_path / "out").exists()
