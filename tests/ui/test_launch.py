"""The Launch page's presets, held-out evaluation default, validation, default names and time estimate."""

from __future__ import annotations

import pytest

from aicd.config import EvalConfig, TrainConfig
from aicd.presets import DEFAULT_PRESET, PRESETS
from tests.ui.conftest import Backend, Seeded, app_test, no_traceback, texts
from ui.components import plans


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_train_and_eval_config(name: str) -> None:
    preset = PRESETS[name]
    train = TrainConfig(**preset.train)
    EvalConfig(model=train.model, **preset.eval)
    if train.model.startswith("tiny:"):  # from scratch: a large lr and a step cap, not the paper's 7e-6
        assert train.lr >= 1e-4 and train.max_steps
    assert DEFAULT_PRESET in PRESETS


def test_default_evaluation_data_is_held_out() -> None:
    train = {"id": 1, "name": "svamp-train", "source": "builtin:svamp/train"}
    datasets = [
        train,
        {"id": 2, "name": "gsm8k-test", "source": "builtin:gsm8k/test"},
        {"id": 3, "name": "svamp-test", "source": "builtin:svamp/test"},
        {"id": 4, "name": "mine", "source": "upload:x.jsonl"},
    ]
    assert plans.default_eval_dataset(datasets, train) == 3  # the same dataset's test split first
    assert plans.default_eval_dataset(datasets[:2], train) == 2
    assert plans.default_eval_dataset([train, datasets[3]], train) == 4  # never the training data
    assert plans.default_eval_dataset([train], train) is None


def test_time_estimate_uses_measured_throughput_of_the_same_model() -> None:
    runs = [
        {"status": "succeeded", "config": {"model": "tiny:gpt2"}, "last_metrics": {"tokens_per_s": v}}
        for v in (100.0, 300.0, 200.0)
    ] + [
        {"status": "succeeded", "config": {"model": "other"}, "last_metrics": {"tokens_per_s": 9e9}},
        {"status": "running", "config": {"model": "tiny:gpt2"}, "last_metrics": {"tokens_per_s": 1.0}},
    ]
    assert plans.measured_tokens_per_s(runs, "tiny:gpt2") == (200.0, 3)
    assert plans.measured_tokens_per_s(runs, "tiny:llama") is None
    seconds = plans.estimate_train_seconds(
        tokens_per_s=200.0, n_runs=4, n_questions=24, batch_size=4, max_length=512, epochs=10, max_steps=20
    )
    assert seconds == 4 * 20 * 4 * 512 / 200.0
    uncapped = plans.estimate_train_seconds(
        tokens_per_s=200.0, n_runs=1, n_questions=24, batch_size=4, max_length=512, epochs=2, max_steps=None
    )
    assert uncapped == 2 * 6 * 4 * 512 / 200.0


def test_presets_fill_the_form_and_evaluation_defaults_to_the_test_split(
    ui_env: Backend, seeded: Seeded
) -> None:
    at = app_test("launch")
    at.selectbox(key="launch_train_ds").set_value(seeded.train["id"]).run()
    no_traceback(at)
    assert at.selectbox(key="launch_preset").value == "smoke"
    assert at.number_input(key="launch_lr").value == pytest.approx(1e-3)
    assert at.number_input(key="launch_max_steps").value == 20
    assert at.text_input(key="launch_model").value == "tiny:gpt2"
    assert at.selectbox(key="launch_eval_ds").value == seeded.test["id"]  # held out, not the training data
    at.selectbox(key="launch_preset").set_value("paper").run()
    no_traceback(at)
    assert at.number_input(key="launch_lr").value == pytest.approx(7e-6)
    assert (
        at.number_input(key="launch_max_steps").value == 0
        and at.number_input(key="launch_eval_limit").value == 0
    )
    assert at.text_input(key="launch_model").value == "EleutherAI/gpt-j-6b"
    assert "GPT-J 6B" in texts(at)
    assert at.text_input(key="launch_name").value.startswith(f"{seeded.train['name']}-compare-paper-")


def test_launch_is_disabled_until_every_field_validates(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("launch")
    at.selectbox(key="launch_train_ds").set_value(seeded.train["id"]).run()
    assert not at.button(key="launch_go").disabled and not at.error
    at.text_input(key="launch_eval_shots").set_value("a, b").run()
    at.text_input(key="launch_eval_seeds").set_value("").run()
    at.text_input(key="launch_name").set_value("").run()
    at.selectbox(key="launch_eval_ds").set_value(seeded.train["id"]).run()
    no_traceback(at)
    shown = sorted(e.value for e in at.error)
    assert shown == [
        "Evaluate on: pick held-out questions (a test split or another dataset), not the training data.",
        "Name: give a name of letters, digits, '_', '-' or '.' (not only dots).",
        "evaluation seeds: give at least one whole number.",
        "shots: write whole numbers separated by commas (e.g. 0, 1, 2), not 'a, b'.",
    ], shown
    assert at.button(key="launch_go").disabled
    assert "Follow it on the Runs page" not in texts(at)


def test_default_name_follows_the_choices_until_typed(ui_env: Backend, seeded: Seeded) -> None:
    at = app_test("launch")
    at.selectbox(key="launch_train_ds").set_value(seeded.train["id"]).run()
    assert at.text_input(key="launch_name").value.startswith(f"{seeded.train['name']}-compare-smoke-")
    at.selectbox(key="launch_train_ds").set_value(seeded.bare["id"]).run()
    assert at.text_input(key="launch_name").value.startswith(f"{seeded.bare['name']}-compare-smoke-")
    at.segmented_control(key="launch_mode").set_value("run").run()
    assert at.text_input(key="launch_name").value.startswith(f"{seeded.bare['name']}-run-smoke-")
    at.text_input(key="launch_name").set_value("mine").run()
    at.selectbox(key="launch_train_ds").set_value(seeded.train["id"]).run()
    assert at.text_input(key="launch_name").value == "mine"  # a typed name is kept


def test_plan_preview_estimates_time_from_finished_runs(
    ui_env: Backend, seeded: Seeded, trained_run: dict
) -> None:
    at = app_test("launch")
    at.selectbox(key="launch_train_ds").set_value(seeded.train["id"]).run()
    no_traceback(at)
    assert trained_run["config"]["model"] == "tiny:gpt2"
    assert any("Estimated training time" in c.value and "An estimate" in c.value for c in at.caption)
    at.text_input(key="launch_model").set_value("tiny:llama").run()
    assert any("No time estimate yet" in c.value for c in at.caption)


def test_a_page_opened_just_after_an_import_elsewhere_offers_the_new_dataset(
    ui_env: Backend, seeded: Seeded
) -> None:
    """The dataset listing is cached for every viewer at once: a new session reads it past that cache, so a page
    opened a moment after an import through the API or the CLI offers it (the browser test once met a Launch
    page whose "Train on" lacked a dataset created seconds before)."""
    app_test("launch")  # another viewer fills the shared cache
    made = ui_env.client.upload_dataset(
        "imported-just-now",
        b'{"id": "n1", "question": "What is 1 plus 1?", "answer": "2"}\n',
        filename="now.jsonl",
    )
    try:
        at = app_test("launch")
        assert any("imported-just-now" in o for o in at.selectbox(key="launch_train_ds").options)
    finally:
        ui_env.client.delete_dataset(made["id"])
