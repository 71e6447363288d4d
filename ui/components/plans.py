"""Comparisons and evaluated runs launched from this browser session, followed in the sidebar.

The work itself runs on the server: a comparison (one training run per objective on the same data and seed,
each evaluated with the same settings) is submitted as one sweep job over the objectives, so closing the tab
or the browser changes nothing. The session only remembers which sweeps it launched, to show their progress.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.client import ApiClient

LAUNCHED_KEY = "launched_sweeps"
ENDED = ("succeeded", "failed", "cancelled", "lost")


def launched() -> list[dict[str, Any]]:
    return st.session_state.setdefault(LAUNCHED_KEY, [])


def remember(sweep: dict[str, Any]) -> None:
    launched().append({"id": sweep["id"], "name": sweep["name"], "status": sweep["status"]})


def sweep_body(
    train_cfg: dict[str, Any],
    objectives: list[str],
    train_dataset_id: int,
    eval_cfg: dict[str, Any],
    eval_dataset_id: int,
) -> dict[str, Any]:
    """A sweep config that trains one run per objective and evaluates each on `eval_dataset_id`, drawing the
    k-shot demonstrations from the training data (as a stand-alone evaluation of each run would)."""
    return {
        "train": {**train_cfg, "dataset": f"db:{train_dataset_id}", "objective": objectives[0]},
        "eval": {**eval_cfg, "shots_dataset": f"db:{train_dataset_id}"},
        "eval_datasets": [f"db:{eval_dataset_id}"],
        "grid": {"objective": list(objectives)},
    }


def refresh(client: ApiClient, item: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sweep and its runs as the server sees them now; remembers the status so ended ones stop polling."""
    sweep = client.sweep(item["id"])
    item["status"] = sweep["status"]
    return sweep, client.runs(sweep_id=item["id"])
