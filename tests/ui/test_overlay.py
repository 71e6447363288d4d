"""The Runs page's overlay of several runs: smoothing, log axis, loss units, differing hyper-parameters."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.ui.conftest import Backend, Comparison, app_test, no_traceback
from ui.components import charts, overlay


def test_smoothing_is_a_debiased_moving_average() -> None:
    assert charts.smooth([4.0, 2.0], 0.0) == [4.0, 2.0]
    assert charts.smooth([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])  # no start-up bias
    ema = charts.smooth([0.0, 10.0], 0.5)
    assert ema == pytest.approx([0.0, 10.0 * 0.5 / 0.75])


def test_loss_units_and_differing_hyperparameters() -> None:
    assert charts.loss_unit({"reduction": "token"}) == "per token"
    assert charts.loss_unit({}) == "per episode (sum)"
    runs = [
        {"name": "a", "config": {"objective": "aicd", "lr": 1e-3, "seed": 0, "distributed": {"n": 1}}},
        {"name": "b", "config": {"objective": "lm", "lr": 1e-3, "seed": 0, "distributed": {"n": 2}}},
    ]
    table = overlay.hyperparameters(runs)
    assert list(table.columns[:2]) == ["objective", "distributed.n"]  # the differing ones first
    assert charts.differing_columns(table) == ["objective", "distributed.n"]
    assert charts.differing_columns(pd.DataFrame({"x": [1, 1]})) == []


def test_overlay_a_sweep_in_one_click_with_log_axis(ui_env: Backend, comparison: Comparison) -> None:
    run = comparison.runs[0]
    at = app_test("runs")
    at.selectbox(key="runs_pick").set_value(run["id"]).run()
    at.button(key="runs_overlay_sweep").click().run()
    no_traceback(at)
    assert at.multiselect(key="runs_overlay").value == [r["id"] for r in comparison.runs]
    at.toggle(key="runs_overlay_log").set_value(True).run()
    no_traceback(at)
    figures = {
        json.loads(p.proto.spec)["layout"]["title"]["text"]: json.loads(p.proto.spec)
        for p in at.get("plotly_chart")
    }
    loss = figures["training loss, per episode (sum)"]
    named = [t["name"] for t in loss["data"] if t.get("showlegend") is not False]
    assert named == [f"#{r['id']} {r['name']}" for r in comparison.runs]
    assert loss["layout"]["yaxis"]["type"] == "log"
    assert "accuracy during training" in figures  # the comparison measured accuracy every step
    assert any("differing column(s) highlighted" in m.value for m in at.markdown)
