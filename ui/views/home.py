"""Home: what the workbench is for and the four steps of a study, each a link to its page."""

from __future__ import annotations

import streamlit as st

from ui.client import ApiError
from ui.components import common as c

STEPS = [
    (
        "views/datasets.py",
        "1. Import",
        ":material/folder_open:",
        "a built-in dataset (SVAMP, GSM8K, MultiArith, StrategyQA) or your own JSONL/CSV questions.",
    ),
    (
        "views/annotate.py",
        "2. Annotate",
        ":material/edit_note:",
        "let a teacher LLM write k rationales per question, filtered to the ones that reach the gold answer.",
    ),
    (
        "views/launch.py",
        "3. Launch",
        ":material/rocket_launch:",
        "train students with AICD and the baselines from a preset (smoke test, tiny-scale study, paper); "
        "each run is evaluated on held-out questions.",
    ),
    (
        "views/compare.py",
        "4. Compare",
        ":material/compare:",
        "read the results table with its statistics, then the students' chains side by side.",
    ),
]


def main() -> None:
    st.title("AICD Workbench")
    st.markdown(
        "Distil chain-of-thought from a teacher LLM into a small student with **in-context** training "
        "episodes, and compare it with the baselines (CondGen, LM, no-CoT) on the same data and seeds."
    )
    for path, label, icon, what in STEPS:
        with st.container(border=True):
            st.page_link(path, label=label, icon=icon)
            st.caption(what)
    try:
        active = c.api().status()["active"]
    except ApiError:  # the home page stays readable without the API; the sidebar says why
        active = None
    if active:
        st.page_link(
            "views/runs.py", label=f"{active} job(s) queued or running", icon=":material/monitoring:"
        )


c.guarded(main)
