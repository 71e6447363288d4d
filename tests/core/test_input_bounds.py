"""Hostile input to the core: non-finite numbers, out-of-range integers, deep JSON, NaN answers, the dataset
registry in a fresh process and `limit` on examples handed to `train` (issue 11, items 2-5 and 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aicd.annotate.config import AnnotateConfig
from aicd.config import MAX_SHOTS, EvalConfig, TrainConfig, build_config
from aicd.data.jsonl import MAX_LINE_DEPTH, read_examples
from aicd.data.record import MAX_JSON_DEPTH, Example, Rationale, json_problem
from aicd.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lr": "inf"}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"omega": "nan"}, "omega"),
        ({"epochs": "Infinity"}, "epochs"),
        ({"schedule": "custom", "n_shots": 2, "weights": [0.1, float("inf")]}, "weights.1"),
        ({"adam_betas": [0.9, float("nan")]}, "adam_betas.1"),
        ({"warmup_ratio": float("nan")}, "warmup_ratio"),
        ({"n_shots": MAX_SHOTS + 1}, "n_shots"),
        ({"max_steps": 2**31}, "max_steps"),
        ({"limit": 2**40}, "limit"),
        ({"seed": 2**63}, "seed"),
        ({"model": "x" * 5000}, "model"),
    ],
)
def test_train_config_refuses_non_finite_and_out_of_range_values(overrides, field):
    with pytest.raises(ConfigError) as err:
        build_config(TrainConfig, overrides)
    assert f"config: {field}: " in str(err.value)


def test_cli_override_inf_is_one_line_naming_the_field():
    with pytest.raises(ConfigError, match=r"^config: lr: Input should be a finite number$"):
        build_config(TrainConfig, {}, ["lr=.inf"])  # YAML's infinity


def test_eval_and_annotate_configs_refuse_non_finite_and_huge_values():
    with pytest.raises(ConfigError, match=r"shots\.0"):
        build_config(EvalConfig, {"model": "m", "shots": [MAX_SHOTS + 1]})
    with pytest.raises(ConfigError, match=r"seeds\.0"):
        build_config(EvalConfig, {"model": "m", "seeds": [2**31]})
    with pytest.raises(ConfigError, match="temperature"):
        build_config(AnnotateConfig, {"temperature": float("nan")})
    with pytest.raises(ConfigError, match="timeout"):
        build_config(AnnotateConfig, {"timeout": "inf"})
    assert TrainConfig(n_shots=MAX_SHOTS, seed=2**31 - 1).n_shots == MAX_SHOTS  # the bounds themselves pass


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "a", "question": "q?", "answer": 1}'


def test_a_line_nested_thousands_deep_is_a_data_error_naming_the_line(tmp_path):
    deep = '{"id": "b", "question": "q", "answer": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(DataError, match=rf"data.jsonl:2: JSON nested deeper than {MAX_LINE_DEPTH} levels"):
        read_examples(_write(tmp_path, GOOD, deep))
    medium = '{"id": "b", "question": "q", "answer": 1, "x": ' + "[" * 100 + "]" * 100 + "}"  # parses fine
    with pytest.raises(DataError, match=r"data.jsonl:2: JSON nested deeper"):
        read_examples(_write(tmp_path, GOOD, medium))


def _meta_line(depth: int) -> str:
    meta = '{"a": ' * depth + "1" + "}" * depth
    return '{"id": "m", "question": "q", "answer": 1, "rationales": [{"text": "t", "meta": ' + meta + "}]}"


def test_rationale_meta_depth_is_capped(tmp_path):
    assert read_examples(_write(tmp_path, _meta_line(MAX_JSON_DEPTH)))[0].rationales[0].meta
    with pytest.raises(
        DataError, match=rf"rationales.0.meta': is nested deeper than {MAX_JSON_DEPTH} levels"
    ):
        read_examples(_write(tmp_path, _meta_line(MAX_JSON_DEPTH + 1)))
    with pytest.raises(ValueError, match="nested deeper"):
        Rationale(text="t", meta={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_answer_is_refused_not_stored_as_nan(tmp_path, literal):
    line = '{"id": "n", "question": "q", "answer": ' + literal + "}"
    with pytest.raises(DataError, match=r"data.jsonl:1: field 'answer': must be a finite number"):
        read_examples(_write(tmp_path, line))
    with pytest.raises(ValueError, match="finite"):
        Example(id="n", question="q", answer=float(literal.lower().replace("infinity", "inf")))
    assert Example(id="n", question="q", answer=2.5).answer == "2.5"


def test_json_problem_finds_each_kind_of_unstorable_value():
    assert json_problem({"a": [1, 2.5, "x", None, True]}) is None
    assert json_problem({"a": {"b": float("nan")}}) == (
        "a.b",
        "must be a finite number (not NaN or infinity)",
    )
    assert json_problem({"a": [0, 2**63]}) == ("a.1", "is an integer outside the 64-bit range")
    assert json_problem({"k\x00": 1})[1].startswith("contains a NUL")
    deep: list = []
    node = deep
    for _ in range(50_000):  # deeper than the interpreter's recursion limit
        node.append([])
        node = node[0]
    assert json_problem({"d": deep})[1] == f"is nested deeper than {MAX_JSON_DEPTH} levels"


def test_registry_is_complete_in_a_fresh_process():
    """`arith` used to register itself only when aicd.data.synthetic happened to be imported."""
    code = (
        "from aicd.data.loaders import DATASETS\n"
        "from backend.services.datasets import load_builtin\n"
        "assert sorted(DATASETS) == ['arith', 'gsm8k', 'multiarith', 'strategyqa', 'svamp'], sorted(DATASETS)\n"
        "examples, kind = load_builtin('arith', 'train', 3, 0)\n"
        "print(len(examples), kind)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3", "number"]


def test_limit_holds_for_examples_handed_to_train(tmp_path):
    """A stored dataset reaches train() as `examples`: 64 of them, limit 8, batch 8, one epoch = 1 step."""
    from aicd.data.synthetic import generate
    from aicd.train import train

    config = TrainConfig(
        name="limited",
        output_dir=str(tmp_path),
        model="tiny:gpt2?n_layer=1&n_embd=16&n_head=2&n_positions=256",
        n_shots=2,
        limit=8,
        batch_size=8,
        micro_batch_size=8,
        epochs=1,
        max_length=128,
        mixed_precision="no",
    )
    result = train(config, examples=generate("train", 64, seed=0), progress=False)
    assert result.total_steps == 1 and result.step == 1


def test_train_itself_refuses_more_shots_than_its_examples(tmp_path):
    """What no boundary could count (a hub id, examples handed in) is checked once the examples are loaded:
    4 shots from 8 examples limited to 3 is the config error naming n_shots, before a model is loaded."""
    from aicd.data.synthetic import generate
    from aicd.train import train

    config = TrainConfig(
        name="too-many-shots",
        output_dir=str(tmp_path),
        model="no/such-model",  # never loaded: the check comes first
        n_shots=4,
        limit=3,
        mixed_precision="no",
    )
    with pytest.raises(ConfigError, match="n_shots: 4 shots but dataset .* has only 3 training examples"):
        train(config, examples=generate("train", 8, seed=0), progress=False)


def test_generic_files_refuse_a_nan_answer_too(tmp_path):
    from aicd.data.loaders import load_generic

    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "q1", "answer": 3}\n{"question": "q2", "answer": NaN}\n', encoding="utf-8")
    with pytest.raises(DataError, match="field 'answer' must be a finite number"):
        load_generic(path)


TINY_CLI = "tiny:gpt2?n_layer=1&n_embd=16&n_head=2&n_positions=256"


def test_split_size_counts_what_load_examples_returns_without_a_download(tmp_path):
    from aicd.data.jsonl import write_examples
    from aicd.data.loaders import load_examples, split_size
    from aicd.data.synthetic import generate

    assert split_size("arith", "test") == len(load_examples("arith", "test"))
    path = tmp_path / "d.jsonl"
    write_examples(path, generate("train", 3))
    assert split_size(str(path)) == 3
    write_examples(path, generate("train", 5))  # a changed file is counted afresh
    assert split_size(str(path)) == 5
    assert split_size("openai/gsm8k") is None and split_size(str(tmp_path / "later.jsonl")) is None


def test_cli_train_refuses_more_shots_than_the_training_set(tmp_path, aicd_cli, capsys):
    from aicd.data.jsonl import write_examples
    from aicd.data.synthetic import generate

    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: many\noutput_dir: {tmp_path / 'runs'}\nmodel: '{TINY_CLI}'\ndataset: arith\nlimit: 4\n"
        "n_shots: 5\nmax_steps: 1\n"
    )
    assert aicd_cli("train", str(config), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: n_shots: 5 shots but arith/train has only 4 training examples (limit 4)"
    data = tmp_path / "three.jsonl"
    write_examples(data, generate("train", 3))
    assert (
        aicd_cli("train", str(config), "--no-progress", "--set", f"dataset={data}", "--set", "limit=null")
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == f"error: n_shots: 5 shots but {data} has only 3 training examples"
    assert not (tmp_path / "runs").exists()


def test_cli_sweep_refuses_a_grid_n_shots_larger_than_the_training_set(tmp_path, aicd_cli, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"name: shots\noutput_dir: {tmp_path / 'runs'}\n"
        f"train: {{model: '{TINY_CLI}', dataset: arith, limit: 4, max_steps: 1}}\n"
        "grid: {n_shots: [2, 5]}\neval: {shots: [0], limit: 2}\n"
    )
    assert aicd_cli("sweep", str(config), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: sweep run '")
    assert "': grid.n_shots: 5 shots but arith/train has only 4 training examples (limit 4)" in err
    assert not (tmp_path / "runs").exists()
