"""API access shared by every page: one cached client, cached reads, and errors rendered as messages.

Any `ApiError` that escapes a page body is caught by `page_guard` (used by the router around every page), so
an unreachable backend, a 4xx or a failed job shows a clear `st.error`, never a traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from ui.client import ApiClient, ApiError, api_token, api_url

T = TypeVar("T")

# plain symbols every DejaVu/Liberation font has: no emoji font needed (Debian servers, kiosks)
STATUS_ICONS = {
    "queued": "○",
    "running": "►",
    "cancelling": "◌",
    "succeeded": "✔",
    "failed": "✘",
    "cancelled": "■",
    "lost": "⚠",
}
ACTIVE = ("queued", "running")


def display_status(job: dict[str, Any]) -> str:
    """The state a user sees: `cancelling` from the cancel request until the server confirms `cancelled`
    (a running job keeps status `running` with `cancel_requested` meanwhile), else the server's status.
    The same rule for a stand-alone run, a run inside a sweep, a sweep, an evaluation and an annotation."""
    status = str(job.get("status", "?"))
    return "cancelling" if status == "running" and job.get("cancel_requested") else status


@st.cache_resource(show_spinner=False)
def _client(base_url: str, token: str | None) -> ApiClient:
    return ApiClient(base_url, token)


def api() -> ApiClient:
    """The httpx client for AICD_API_URL / AICD_API_TOKEN (one per process and setting)."""
    return _client(api_url(), api_token())


def show_error(exc: ApiError, what: str | None = None) -> None:
    prefix = f"{what}: " if what else ""
    if exc.unreachable:
        st.error(f"**Backend unreachable.** {exc.message}", icon=":material/power_off:")
    elif exc.status == 404:
        st.warning(f"{prefix}{exc.message}", icon=":material/search:")
    else:
        where = f" (field `{exc.field}`)" if exc.field else ""
        st.error(f"{prefix}{exc.message}{where}", icon=":material/block:")


@contextmanager
def page_guard() -> Iterator[None]:
    """Render any ApiError escaping the block as a message and end the script run there."""
    try:
        yield
    except ApiError as exc:
        show_error(exc)
        st.stop()


@contextmanager
def fragment_guard() -> Iterator[None]:
    """`page_guard` for the body of an `st.fragment`: its timed reruns (`run_every`) run the fragment alone,
    outside the page's guard, so an ApiError there must become a message here. Does not stop the script
    (a full run goes on with the rest of the page)."""
    try:
        yield
    except ApiError as exc:
        show_error(exc)


def guarded(main: Callable[[], None]) -> None:
    """Run a page body; an ApiError it lets escape becomes a message (pages also run outside the router)."""
    with page_guard():
        main()


def attempt(fn: Callable[..., T], *args: Any, what: str | None = None, **kwargs: Any) -> T | None:
    """Call `fn`; on ApiError show it and return None (for actions whose failure should not end the page)."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        show_error(exc, what)
        return None


# -- live panels: poll while something runs, stop once it has ended ----------------------------------------
LIVE_EVERY = 2.0  # seconds between refreshes of a panel whose job is queued or running
SLOW_EVERY = 15.0  # ... whose job has ended but whose sweep may still add to it (e.g. its evaluation)


def poll_every(*jobs: dict[str, Any] | None, waiting: bool = False) -> float | None:
    """The `run_every` of a panel showing `jobs`: fast while any is active, slow while `waiting` for more,
    else None (no polling: an ended job does not change)."""
    if any(j and j.get("status") in ACTIVE for j in jobs):
        return LIVE_EVERY
    return SLOW_EVERY if waiting else None


def settle_when_ended(key: str, every: float | None, still: float | None) -> None:
    """Called at the end of a polling fragment: when what it watches has ended (it polls slower now, or not
    at all) or woke up, rerun the page once with fresh reads so the fragment is registered again with the
    right timer and the rest of the page shows the new state (at most once per LIVE_EVERY per panel)."""
    if every is None or still == every:
        return
    stamps = st.session_state.setdefault("_settled_at", {})
    now = time.monotonic()
    if now - stamps.get(key, -1e9) < LIVE_EVERY:
        return
    stamps[key] = now
    clear_caches()
    st.rerun()


def live_caption(every: float | None) -> None:
    if every:
        st.caption(f"live · refreshes every {every:g} s")


# -- selections in the URL (st.query_params): a link opens the same thing, a reload keeps it ------------------


def fresh_listing(
    listing: Callable[[str], list[dict[str, Any]]], base_url: str, param: str
) -> list[dict[str, Any]]:
    """`listing(base_url)` (cached a few seconds), read again when it is empty or lacks the `?param=` id the
    page was opened with: a job launched a moment ago, or a shared link, must not meet a listing cached
    just before the job existed (that page would say "nothing yet" and never refresh)."""
    items = listing(base_url)
    wanted = st.query_params.get(param)
    if not items or (wanted is not None and all(str(i["id"]) != wanted for i in items)):
        listing.clear()  # type: ignore[attr-defined]  # st.cache_data's own
        items = listing(base_url)
    return items


def fresh_once_per_session(
    listing: Callable[[str], list[dict[str, Any]]], base_url: str
) -> list[dict[str, Any]]:
    """`listing(base_url)`, read past its cache the first time this browser session asks for it. The cache is
    shared by every viewer, so without this a page opened (or reloaded) just after a dataset was imported
    elsewhere (the CLI, the API, another tab) would offer the listing from before it, and a selectbox's options
    do not change until the page reruns."""
    flag = f"_fresh_{getattr(listing, '__name__', 'listing')}"
    if not st.session_state.get(flag):
        listing.clear()  # type: ignore[attr-defined]  # st.cache_data's own
        st.session_state[flag] = True
    return listing(base_url)


def from_url(param: str, key: str, options: Sequence[Any], default: Any = None) -> None:
    """Before the selection widget `key`: a `?param=` the page was opened with (a shared link, a reload, an
    edited URL) selects that option; else the current selection stays if still offered, else `default`.
    A value this session wrote itself (`to_url`) never overrides what the user picks afterwards."""
    wanted = st.query_params.get(param)
    written = st.session_state.get(f"_url_{param}")
    if wanted is not None and wanted != written:
        match = next((o for o in options if str(o) == wanted), None)
        if match is not None:
            st.session_state[key] = match
        st.session_state[f"_url_{param}"] = wanted
    if options and st.session_state.get(key) not in options:
        st.session_state[key] = options[0] if default is None else default


def to_url(param: str, value: Any) -> None:
    """After the widget: the selection into the address bar (what a user copies to share)."""
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    st.session_state[f"_url_{param}"] = text
    if st.query_params.get(param) != text:
        st.query_params[param] = text


def ids_from_url(param: str) -> list[int] | None:
    """`?param=3,5,9` as ids (None when absent or not ids)."""
    raw = st.query_params.get(param)
    if raw is None or raw == st.session_state.get(f"_url_{param}"):
        return None
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        return None


def default_run(runs: list[dict[str, Any]]) -> Any:
    """The run a page opens on: the one training now (newest first), else the newest."""
    running = [r for r in runs if r.get("status") == "running"]
    return (running or runs)[0]["id"] if runs else None


# -- markdown -------------------------------------------------------------------------------------------------
_MD_INLINE = re.compile(r"([\\`*_\[\]<>$~|])")
_MD_LINE_START = re.compile(r"^(\s*)(?:([#>+\-=])|(\d+)([.)]))", re.M)


def md_escape(text: Any) -> str:
    """User text (a question, a name) shown literally by st.markdown: no emphasis, links, HTML, lists or
    headings, and no `$...$` turned into LaTeX (GSM8K's "$80,000 ... $50,000")."""
    out = _MD_INLINE.sub(r"\\\1", str(text))

    def line_start(m: re.Match[str]) -> str:
        if m.group(2):
            return f"{m.group(1)}\\{m.group(2)}"
        return f"{m.group(1)}{m.group(3)}\\{m.group(4)}"

    return _MD_LINE_START.sub(line_start, out)


def status_label(job: dict[str, Any]) -> str:
    status = display_status(job)
    return f"{STATUS_ICONS.get(status, '•')} {status}"


def progress_fraction(job: dict[str, Any]) -> float:
    total = job.get("total_steps") or job.get("progress_total") or 0
    done = job.get("step") if job.get("total_steps") else job.get("progress_done")
    return min(1.0, max(0.0, (done or 0) / total)) if total else 0.0


# -- cached reads (short TTLs: pages poll; mutations call clear_caches) -------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def _datasets(base_url: str) -> list[dict[str, Any]]:
    return api().datasets()


def datasets(base_url: str) -> list[dict[str, Any]]:
    return fresh_once_per_session(_datasets, base_url)


@st.cache_data(ttl=30, show_spinner=False)
def dataset_stats(base_url: str, dataset_id: int) -> dict[str, Any]:
    return api().dataset_stats(dataset_id)


@st.cache_data(ttl=300, show_spinner=False)
def builtins(base_url: str) -> list[dict[str, Any]]:
    return api().builtins()


@st.cache_data(ttl=300, show_spinner=False)
def registry(base_url: str) -> dict[str, Any]:
    """The server's objective registry (`GET /objectives`): the UI keeps no copy of an objective's rules."""
    return api().objectives()


_last_registry: dict[str, Any] = {}  # the last registry read, for labels while the backend is away


def objectives() -> dict[str, dict[str, Any]]:
    """name → its record (label, target, weights, omega_free, demonstrations, color), in the paper's order."""
    served = registry(base())
    _last_registry.update(served)
    return {o["name"]: o for o in served["objectives"]}


def objective_label(name: Any) -> str:
    """The display label ("AICD", "no-CoT") for a format_func; an unknown name as given. Cosmetic, so it never
    raises: with the backend gone it uses the last registry read (else the name) and the page's own reads
    report the outage."""
    try:
        spec = objectives().get(name)
    except ApiError:
        spec = next((o for o in _last_registry.get("objectives", []) if o["name"] == name), None)
    return spec["label"] if spec else str(name)


@st.cache_data(ttl=300, show_spinner=False)
def presets(base_url: str) -> dict[str, Any]:
    """The server's launch presets (`GET /presets`, defined once in aicd.presets)."""
    return api().presets()


@st.cache_data(ttl=60, show_spinner=False)
def shipped_configs(base_url: str) -> list[dict[str, Any]]:
    return api().shipped_configs()


@st.cache_data(ttl=3, show_spinner=False)
def runs(base_url: str) -> list[dict[str, Any]]:
    return api().runs()


@st.cache_data(ttl=3, show_spinner=False)
def evaluations(base_url: str) -> list[dict[str, Any]]:
    return api().evaluations()


@st.cache_data(ttl=3, show_spinner=False)
def sweeps(base_url: str) -> list[dict[str, Any]]:
    return api().sweeps()


@st.cache_data(ttl=3, show_spinner=False)
def run_evaluations(base_url: str, run_id: int) -> list[dict[str, Any]]:
    """One run's evaluations (filtered on the server, not out of the newest 2000)."""
    return api().evaluations(run_id=run_id, max_items=200)


def clear_caches() -> None:
    for fn in (_datasets, dataset_stats, runs, evaluations, sweeps, run_evaluations):
        fn.clear()


def base() -> str:
    return api().base_url


def dataset_label(ds: dict[str, Any]) -> str:
    return f"{ds['name']}  (#{ds['id']}, {ds['n_examples']} questions)"


def pick_dataset(
    label: str, key: str, *, help: str | None = None, allow_none: bool = False
) -> dict[str, Any] | None:
    """A dataset selectbox; with no dataset stored it explains what to do and stops the page."""
    items = datasets(base())
    if not items:
        st.info(
            "No datasets yet. Import a built-in one or upload a JSONL/CSV on the **Datasets** page.",
            icon=":material/folder_open:",
        )
        st.page_link("views/datasets.py", label="Go to Datasets", icon=":material/folder_open:")
        st.stop()
    by_id = {d["id"]: d for d in items}
    options: list[int | None] = [*([None] if allow_none else []), *by_id]
    chosen = st.selectbox(
        label,
        options,
        key=key,
        help=help,
        format_func=lambda i: "(none)" if i is None else dataset_label(by_id[i]),
    )
    return by_id.get(chosen) if chosen is not None else None


def run_label(run: dict[str, Any]) -> str:
    cfg = run.get("config") or {}
    obj = objective_label(cfg.get("objective", "?"))
    return f"#{run['id']} {run['name']} · {obj} · {status_label(run)}"
