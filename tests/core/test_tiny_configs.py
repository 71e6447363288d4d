"""The tiny-scale sweep configs start from the demo's cached pretrained base (`pretrained:demo`), not a
random init: the plan resolves the spec to the base's folder, the sweep builds it once and records its hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aicd.config import SweepConfig, build_config, shipped_configs_dir
from aicd.demo import base_config
from aicd.errors import AICDError, ConfigError
from aicd.pretrain import preset_config, weights_hash
from aicd.sweep import load_sweep_config, plan_sweep, run_sweep

TINY = ["fig1-omega", "fig2-shots", *(f"table1-{d}" for d in ("gsm8k", "svamp", "multiarith", "strategyqa"))]


@pytest.mark.parametrize("name", TINY)
def test_shipped_tiny_configs_plan_from_the_demo_base(name, tmp_path):
    config = load_sweep_config(shipped_configs_dir() / f"{name}.yaml", [f"output_dir={tmp_path}"])
    base = base_config(tmp_path / "demo").run_dir.name  # the hash `aicd demo` caches its base under
    want = str(tmp_path / "pretrain" / base / "final")
    runs = plan_sweep(config)
    assert runs and all(r.train.model == want for r in runs)
    assert not (tmp_path / "pretrain").exists()  # planning builds nothing


def _sweep(out: Path, name: str, model: str) -> SweepConfig:
    data = {
        "name": name,
        "output_dir": str(out),
        "train": {
            "model": model,
            "dataset": "svamp",
            "limit": 8,
            "max_steps": 1,
            "batch_size": 2,
            "micro_batch_size": 2,
            "n_shots": 1,
            "max_length": 1024,
            "lr": 7e-6,
        },
        "eval": {"split": "test", "shots": [0], "seeds": [0], "limit": 2, "max_new_tokens": 4},
        "grid": {"objective": ["aicd"]},
    }
    return build_config(SweepConfig, data, source="test")


def test_sweep_fine_tunes_from_the_cached_base_and_records_its_hash(tmp_path):
    from safetensors.torch import load_file

    result = run_sweep(_sweep(tmp_path, "a", "pretrained:demo-quick"), progress=False)
    base_dir = preset_config(tmp_path, "demo-quick").run_dir / "final"
    [used] = json.loads((tmp_path / "a" / "base.json").read_text())
    assert used["spec"] == "pretrained:demo-quick" and used["path"] == str(base_dir)
    assert used["weights_hash"] == weights_hash(base_dir) and used["trained_now"]
    [run] = result.runs
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"] == str(base_dir)
    base = load_file(base_dir / "model.safetensors")
    tuned = load_file(run.run_dir / "final" / "model.safetensors")
    assert base.keys() == tuned.keys()  # the base's architecture, not the default tiny:llama
    assert all((base[k] - tuned[k]).abs().max() < 1e-3 for k in base)  # one step at lr 7e-6 from the base

    run_sweep(_sweep(tmp_path, "b", "pretrained:demo-quick"), progress=False)  # a second sweep: cached
    [again] = json.loads((tmp_path / "b" / "base.json").read_text())
    assert again["weights_hash"] == used["weights_hash"] and not again["trained_now"]


def test_unknown_base_and_unbuildable_base_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^model: unknown pretrained base 'pretrained:nope' \(choose from"):
        plan_sweep(_sweep(tmp_path, "a", "pretrained:nope"))
    (tmp_path / "pretrain").write_text("not a folder")  # the base cannot be written where it is cached
    with pytest.raises(
        AICDError, match=r"^model: cannot build the pretrained base 'pretrained:demo-quick'"
    ) as exc:
        run_sweep(_sweep(tmp_path, "a", "pretrained:demo-quick"), progress=False)
    assert "\n" not in str(exc.value)
