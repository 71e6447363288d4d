"""Router of the workbench UI: `streamlit run ui/app.py` (the backend URL comes from AICD_API_URL)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `ui` importable without an editable install
    sys.path.insert(0, str(ROOT))

from ui.client import ApiError  # noqa: E402
from ui.components import plans  # noqa: E402
from ui.components.common import STATUS_ICONS, api, page_guard, show_error  # noqa: E402

st.set_page_config(page_title="AICD Workbench", page_icon="🧪", layout="wide")

PAGES = {
    "Data": [
        st.Page("pages/datasets.py", title="Datasets", icon="📂", url_path="datasets", default=True),
        st.Page("pages/annotate.py", title="Annotate", icon="✍️", url_path="annotate"),
    ],
    "Experiments": [
        st.Page("pages/schedule.py", title="ω schedule designer", icon="🎚️", url_path="schedule"),
        st.Page("pages/launch.py", title="Launch", icon="🚀", url_path="launch"),
        st.Page("pages/runs.py", title="Runs", icon="📈", url_path="runs"),
    ],
    "Analysis": [
        st.Page("pages/results.py", title="Results", icon="📊", url_path="results"),
        st.Page("pages/compare.py", title="Compare chains", icon="🔍", url_path="compare"),
    ],
}

page = st.navigation(PAGES)

with st.sidebar:
    client = api()
    try:
        health = client.health()
        st.caption(
            f"🟢 backend {client.base_url} · {health.get('mode', '?')} · {health.get('database', '?')}"
        )
    except ApiError:
        st.caption(f"🔴 backend {client.base_url} unreachable")


@st.fragment(run_every=3)
def comparisons() -> None:
    """Comparisons launched in this session: progress, and their evaluations queued as runs finish."""
    for plan in plans.plans():
        if plan.get("done"):
            continue
        try:
            state = plans.advance(client, plan)
        except ApiError as exc:
            show_error(exc)
            return
        plan["done"] = plans.finished(plan, state)
        icons = " ".join(
            STATUS_ICONS.get(run["status"], "•") + (STATUS_ICONS.get(ev["status"], "") if ev else "")
            for run, ev in state.values()
        )
        st.caption(f"**{plan['name']}** {icons}" + (" — done" if plan["done"] else ""))
        for run_id, message in plan["errors"].items():
            st.caption(f"evaluation of run #{run_id} not queued: {message}")


if plans.plans():
    with st.sidebar:
        comparisons()

with page_guard():
    page.run()
