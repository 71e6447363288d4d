"""The one results aggregator: each run averaged over its evaluation seeds, then mean ± std over runs."""

from __future__ import annotations

import statistics

import pytest

from aicd.results import aggregate, format_cell


def test_each_run_counts_once_whatever_its_number_of_evaluation_seeds() -> None:
    obs = [
        {"objective": "aicd", "shots": 0, "run": "a", "accuracy": 0.5},
        {"objective": "aicd", "shots": 0, "run": "a", "accuracy": 0.7},  # run a: 0.6 over 2 eval seeds
        {"objective": "aicd", "shots": 0, "run": "b", "accuracy": 0.9},  # run b: one eval seed
        {"objective": "lm", "shots": 0, "run": "c", "accuracy": 0.2},
        {"objective": "lm", "shots": 0, "run": "c", "accuracy": None},  # missing: skipped
    ]
    aicd, lm = aggregate(obs, ["objective", "shots"])
    assert aicd["mean"] == pytest.approx(0.75)  # not the pooled mean 0.7
    assert aicd["std"] == pytest.approx(statistics.stdev([0.6, 0.9]))
    assert (aicd["n"], aicd["n_values"], aicd["objective"], aicd["shots"]) == (2, 3, "aicd", 0)
    assert lm == {
        "objective": "lm",
        "shots": 0,
        "mean": pytest.approx(0.2),
        "std": None,
        "n": 1,
        "n_values": 1,
    }


def test_cell_text_shows_spread_only_over_several_runs() -> None:
    assert format_cell(0.75, 0.2121, 2) == "75.0 ± 21.2"
    assert format_cell(0.6, None, 1) == "60.0" and format_cell(None, None, 0) == "–"
    assert format_cell(61.25, 2.0, 3, scale=1) == "61.2 ± 2.0"
