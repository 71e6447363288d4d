"""Results exports: numeric mean / std / n columns in the CSV, and the accuracy resolution stated."""

from __future__ import annotations

import io

import pandas as pd

from ui.components import results as res


def test_csv_cells_are_numbers_with_n_and_no_std_for_one_run() -> None:
    cells = pd.DataFrame(
        [
            {
                "label": "AICD",
                "dataset": "svamp",
                "mean": 62.5,
                "std": 3.2,
                "n": 3,
                "n_values": 9,
                "text": "62.5 ± 3.2",
            },
            {
                "label": "LM",
                "dataset": "svamp",
                "mean": 6.25,
                "std": float("nan"),
                "n": 1,
                "n_values": 3,
                "text": "6.2",
            },
        ]
    )
    back = pd.read_csv(io.StringIO(res.numeric_cells(cells).to_csv(index=False)))
    assert list(back.columns) == ["objective", "dataset", "mean", "std", "n", "n_values"]
    assert back["mean"].tolist() == [62.5, 6.25] and back["n"].tolist() == [3, 1]
    assert back["std"].iloc[0] == 3.2 and pd.isna(back["std"].iloc[1])
    assert "±" not in res.numeric_cells(cells).to_csv(index=False)


def test_resolution_says_how_many_points_one_question_is() -> None:
    df = pd.DataFrame({"dataset": ["svamp", "svamp", "gsm8k"], "n": [16, 16, 200]})
    assert res.resolution(df) == (
        "Resolution per evaluation: gsm8k: one question = 0.5 points; svamp: one question = 6.25 points."
    )


def test_compare_labels_are_short_unique_and_ids_sort_numerically() -> None:
    from aicd import objective_registry
    from aicd.objective_registry import OMEGA_SCHEDULES
    from ui.components import plans

    registry = {"objectives": objective_registry.registry_dicts(), "omega_schedules": list(OMEGA_SCHEDULES)}
    cfg = {
        "objective": "aicd",
        "schedule": "paper",
        "omega": 0.1,
        "seed": 0,
        "n_shots": 4,
        "model": "tiny:gpt2",
    }
    runs = [
        {"id": 1, "config": cfg},
        {"id": 2, "config": {**cfg, "omega": 0.5}},
        {"id": 3, "config": {**cfg, "seed": 1}},
        {"id": 4, "config": {**cfg, "objective": "lm"}},
    ]
    assert plans.short_labels(runs, registry) == [
        "AICD ω=0.1 seed 0",
        "AICD ω=0.5 seed 0",
        "AICD ω=0.1 seed 1",
        "LM seed 0",
    ]
    twins = [{"id": 8, "config": cfg}, {"id": 9, "config": cfg}]
    assert plans.short_labels(twins, registry) == ["AICD #8", "AICD #9"]
    assert sorted(["10", "2", "1", "q10", "q2"], key=plans.natural_key) == ["1", "2", "10", "q2", "q10"]
