"""Router of the workbench UI: `streamlit run ui/app.py` (the backend URL comes from AICD_API_URL)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `ui` importable without an editable install
    sys.path.insert(0, str(ROOT))

from ui.client import ApiError  # noqa: E402
from ui.components import live, plans  # noqa: E402
from ui.components.common import STATUS_ICONS, api, display_status, page_guard, settle_when_ended, show_error  # noqa: E402

FAVICON = ROOT / "ui" / "static" / "favicon.png"  # served by this app: no icon fetched from the internet
st.set_page_config(page_title="AICD Workbench", page_icon=str(FAVICON), layout="wide")

PAGES = {
    "Start": [
        st.Page("views/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    ],
    "Data": [
        st.Page(
            "views/datasets.py",
            title="Datasets",
            icon=":material/folder_open:",
            url_path="datasets",
        ),
        st.Page("views/annotate.py", title="Annotate", icon=":material/edit_note:", url_path="annotate"),
    ],
    "Experiments": [
        st.Page(
            "views/schedule.py", title="ω schedule designer", icon=":material/tune:", url_path="schedule"
        ),
        st.Page("views/launch.py", title="Launch", icon=":material/rocket_launch:", url_path="launch"),
        st.Page("views/runs.py", title="Runs", icon=":material/monitoring:", url_path="runs"),
    ],
    "Analysis": [
        st.Page("views/results.py", title="Results", icon=":material/table_chart:", url_path="results"),
        st.Page("views/compare.py", title="Compare chains", icon=":material/compare:", url_path="compare"),
    ],
}

page = st.navigation(PAGES)

with st.sidebar:
    client = api()
    try:
        health = client.health()
        st.caption(
            f":material/check_circle: backend {client.base_url} · {health.get('mode', '?')} · {health.get('database', '?')}"
        )
    except ApiError:
        st.caption(f":material/error: backend {client.base_url} unreachable")


SIDEBAR_EVERY = 3.0


def _sidebar_every() -> float | None:
    """Poll while a comparison launched here is still going; nothing to poll once they have all ended
    (the Launch page reruns the app after a launch, which starts the timer again)."""
    return SIDEBAR_EVERY if live.sidebar_sweeps() else None


sidebar_every = _sidebar_every()


@st.fragment(run_every=sidebar_every)
def launched() -> None:
    """Comparisons launched in this session: each run's status and how many runs are trained and evaluated."""
    items = plans.launched()
    following = live.sidebar_sweeps()
    status: dict[int, dict] = {}
    if following:
        try:  # what the page's live panel read this tick if it covers them, else one GET /status
            status = live.followed_sweeps(client, following)
        except ApiError as exc:  # the API restarted or is away: say so, the next tick tries again
            show_error(exc)
            return
    for item in items:
        sweep = status.get(item["id"])
        if sweep is not None:
            item["status"] = sweep["status"]
        if sweep is None or item["status"] in plans.ENDED and not sweep.get("runs"):
            st.caption(
                f"**{item['name']}** — " + ("done" if item["status"] == "succeeded" else item["status"])
            )
            continue
        runs = sweep["runs"]
        icons = " ".join(STATUS_ICONS.get(display_status(run), "•") for run in runs)
        done = sweep["progress_done"]
        total = sweep["progress_total"] or len(runs) or "?"
        ended = sweep["status"] in plans.ENDED
        tail = (" — done" if sweep["status"] == "succeeded" else f" — {sweep['status']}") if ended else ""
        if display_status(sweep) == "cancelling":
            tail = " — cancelling"
        st.caption(f"**{sweep['name']}** {icons} {done}/{total} trained and evaluated{tail}")
    settle_when_ended("sidebar", sidebar_every, _sidebar_every())


with st.sidebar:  # always there: a comparison launched during this run shows up at the next tick
    launched()

with page_guard():
    page.run()
