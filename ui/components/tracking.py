"""A run page's link to its MLflow run (TrainConfig.report_to = mlflow) when AICD_MLFLOW_TRACKING_URI is set.

Training logs through accelerate's MLflow tracker into the experiment "aicd" with the run's name as MLflow
run name; the link is resolved with MLflow's REST API (experiments/get-by-name, runs/search) and falls back to
the experiment list when the server cannot be asked.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import streamlit as st

EXPERIMENT = "aicd"  # aicd/train.py: accelerator.init_trackers("aicd", ...)


def tracking_uri() -> str | None:
    uri = os.environ.get("AICD_MLFLOW_TRACKING_URI", "").strip().rstrip("/")
    return uri if uri.startswith(("http://", "https://")) else None


@st.cache_data(ttl=60, show_spinner=False)
def mlflow_run_url(uri: str, run_name: str) -> str:
    """The MLflow UI page of the run named `run_name` (else of the experiment, else the run list)."""
    try:
        with httpx.Client(base_url=uri, timeout=3) as http:
            exp = (
                http.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT})
                .raise_for_status()
                .json()["experiment"]["experiment_id"]
            )
            found = (
                http.post(
                    "/api/2.0/mlflow/runs/search",
                    json={
                        "experiment_ids": [exp],
                        "filter": f"attributes.run_name = '{run_name}'",
                        "max_results": 1,
                        "order_by": ["attributes.start_time DESC"],
                    },
                )
                .raise_for_status()
                .json()
            )
    except (httpx.HTTPError, KeyError, ValueError):
        return f"{uri}/#/experiments"
    runs = found.get("runs") or []
    if not runs:
        return f"{uri}/#/experiments/{exp}"
    return f"{uri}/#/experiments/{exp}/runs/{runs[0]['info']['run_id']}"


def mlflow_link(run: dict[str, Any]) -> None:
    """A link button to the run in MLflow, for runs that report to MLflow when the UI knows the server."""
    uri = tracking_uri()
    if uri is None or (run.get("config") or {}).get("report_to") != "mlflow":
        return
    st.link_button("Open in MLflow", mlflow_run_url(uri, run["name"]), icon=":material/open_in_new:")
