"""Compare chains (the paper's Table 2, live): each question with every run's chain side by side, ✔/✘, the
extracted answer, and the words where the chains differ highlighted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.components import common as c
from ui.components import diff, plans

MAX_ROWS = 5000


@st.cache_data(ttl=30, show_spinner="loading chains ...")
def compare_rows(
    base_url: str, evaluation_ids: tuple[int, ...], shots: int, seed: int
) -> list[dict[str, Any]]:
    """Every question of the first evaluation with all chains (500 per request; pages are then local)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while len(rows) < MAX_ROWS:
        page = c.api().compare(
            evaluation_ids=evaluation_ids, shots=shots, seed=seed, cursor=cursor, limit=500
        )
        rows.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return rows


def main() -> None:
    st.title("Compare chains")
    base = c.base()

    evaluations = [
        e
        for e in c.evaluations(base)
        if e.get("run_id") is not None
        and e["status"] in ("succeeded", "running", "cancelled", "failed", "lost")
        and e["progress_done"]
    ]
    if not evaluations:
        st.info(
            "Nothing to compare yet: chains appear once trained runs have been evaluated. Launch a comparison "
            "(it evaluates every run when it finishes) or evaluate runs on the Runs page.",
            icon=":material/calculate:",
        )
        st.page_link("views/launch.py", label="Launch a comparison", icon=":material/rocket_launch:")
        st.stop()
    runs = {r["id"]: r for r in c.runs(base)}
    names = {d["id"]: d["name"] for d in c.datasets(base)}

    def _ds_key(ev: dict[str, Any]) -> str:
        if ev.get("dataset_id") is not None:
            return names.get(ev["dataset_id"], f"dataset #{ev['dataset_id']}")
        return str(ev["config"].get("dataset", "?"))

    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for ev in evaluations:  # newest first: the first evaluation of a run on a dataset is its latest
        by_dataset.setdefault(_ds_key(ev), []).append(ev)

    a, b = st.columns([1, 3])
    c.from_url("dataset", "cmp_dataset", sorted(by_dataset))
    dataset = a.selectbox("Dataset", sorted(by_dataset), key="cmp_dataset")
    c.to_url("dataset", dataset)
    latest: dict[int, dict[str, Any]] = {}
    for ev in by_dataset[dataset]:
        if ev["run_id"] not in latest or (
            ev["status"] == "succeeded" and latest[ev["run_id"]]["status"] != "succeeded"
        ):
            latest[ev["run_id"]] = ev
    options = [rid for rid in latest if rid in runs]
    default = sorted(options[:4])  # the newest runs, oldest first (a comparison in launch order)
    linked = c.ids_from_url("runs")  # a shared comparison: exactly its runs
    if linked is not None:
        st.session_state["cmp_runs"] = [r for r in linked if r in options][:4]
        st.session_state["_url_runs"] = st.query_params.get("runs")
    if "cmp_runs" not in st.session_state or not set(st.session_state["cmp_runs"]) <= set(options):
        st.session_state["cmp_runs"] = default
    chosen = b.multiselect(
        "Runs (2–4)",
        options,
        max_selections=4,
        key="cmp_runs",
        format_func=lambda rid: c.run_label(runs[rid]),
    )
    chosen = list(dict.fromkeys(chosen))  # distinct runs
    c.to_url("runs", chosen)
    if len(chosen) < 2:
        if len(options) < 2:
            st.info(
                f"Only {len(options)} run has chains on **{c.md_escape(dataset)}**: comparing needs two to "
                "four runs evaluated on the same dataset. Evaluate another run on it (Runs page) or launch a "
                "comparison.",
                icon=":material/touch_app:",
            )
        else:
            st.info("Pick two to four different runs to compare.", icon=":material/touch_app:")
        st.stop()
    evs = [latest[rid] for rid in chosen]
    labels = plans.short_labels([runs[rid] for rid in chosen], c.registry(base))

    shots_options = sorted(set.intersection(*(set(e["config"].get("shots", [0])) for e in evs))) or [0]
    seed_options = sorted(set.intersection(*(set(e["config"].get("seeds", [0])) for e in evs))) or [0]
    a, b, cc, d = st.columns(4)
    shots = a.selectbox("Shots", shots_options, key="cmp_shots")
    seed = b.selectbox("Seed", seed_options, key="cmp_seed")
    rows = sorted(
        compare_rows(base, tuple(e["id"] for e in evs), int(shots), int(seed)),
        key=lambda r: plans.natural_key(r["example_id"]),  # 0, 1, 2, …, 10 (not as text)
    )
    if not rows:
        st.info(f"No chains at {shots} shots, seed {seed} for these runs yet.", icon=":material/schedule:")
        st.stop()
    if len(rows) >= MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS:,} questions (in id order) of these evaluations.")

    # --------------------------------------------------------------------------------------------- filters
    filters = ["all questions", "only disagreements", "A right, B wrong"]
    mode = cc.selectbox("Show", filters, key="cmp_filter")
    query = d.text_input("Search", key="cmp_search", placeholder="words in the question or a chain")
    run_a = run_b = 0
    if mode == "A right, B wrong":
        x, y, _ = st.columns([1, 1, 2])
        run_a = x.selectbox("A (right)", range(len(chosen)), format_func=lambda i: labels[i], key="cmp_a")
        run_b = y.selectbox(
            "B (wrong)", range(len(chosen)), index=1, format_func=lambda i: labels[i], key="cmp_b"
        )
        if run_a == run_b:
            st.warning("A and B are the same run: pick two different runs.", icon=":material/compare_arrows:")
            st.stop()

    def keep(row: dict[str, Any]) -> bool:
        entries = row["entries"]
        if mode == "only disagreements" and row["agree"]:
            return False
        if mode == "A right, B wrong" and not (
            entries[run_a]["correct"] is True and entries[run_b]["correct"] is False
        ):
            return False
        if query:
            q = query.lower()
            texts = [row["question"], *(e["generation"] or "" for e in entries)]
            if not any(q in t.lower() for t in texts):
                return False
        return True

    shown = [r for r in rows if keep(r)]

    # --------------------------------------------------------------------------------------------- summary
    acc = {
        labels[i]: sum(bool(r["entries"][i]["correct"]) for r in rows) / len(rows) for i in range(len(chosen))
    }
    m = st.columns(len(chosen) + 2)
    for col, (label, value) in zip(m, acc.items(), strict=False):
        col.metric(label, f"{value:.1%}")
    m[len(chosen)].metric("agree", f"{sum(r['agree'] for r in rows) / len(rows):.0%}")
    m[len(chosen) + 1].metric("shown", f"{len(shown)} / {len(rows)}")
    if not shown:
        st.info("No question matches these filters.", icon=":material/search:")
        st.stop()

    # --------------------------------------------------------------------------------------------- paging
    c.from_url("size", "cmp_size", [5, 10, 25, 50], 10)
    size = int(st.segmented_control("questions per page", [5, 10, 25, 50], key="cmp_size") or 10)
    c.to_url("size", size)
    n_pages = (len(shown) + size - 1) // size
    state_key = "cmp_page"
    linked_page = st.query_params.get("page")
    if linked_page is not None and linked_page != st.session_state.get("_url_page") and linked_page.isdigit():
        st.session_state[state_key] = int(linked_page)
    question = st.query_params.get("question")  # a shared link to one question: open its page
    if question is not None and question != st.session_state.get("_url_question"):
        at = next((i for i, r in enumerate(shown) if str(r["example_id"]) == question), None)
        if at is not None:
            st.session_state[state_key] = at // size + 1
        st.session_state["_url_question"] = question
    page = max(1, min(int(st.session_state.get(state_key, 1)), n_pages))
    c.to_url("page", page)

    def pager(where: str) -> None:
        p1, p2, p3 = st.columns([1, 2, 1])
        if p1.button("Previous", key=f"cmp_prev{where}", disabled=page <= 1, icon=":material/chevron_left:"):
            st.session_state[state_key] = page - 1
            st.rerun()
        p2.caption(
            f"page {page} of {n_pages} · questions {(page - 1) * size + 1}–{min(page * size, len(shown))}"
        )
        if p3.button(
            "Next", key=f"cmp_next{where}", disabled=page >= n_pages, icon=":material/chevron_right:"
        ):
            st.session_state[state_key] = page + 1
            st.rerun()

    pager("")
    st.html(diff.STYLE)
    for row in shown[(page - 1) * size : page * size]:
        entries = row["entries"]
        with st.container(border=True):
            agree = "" if row["agree"] else " · :orange[:material/call_split: disagree]"
            st.markdown(
                f"**{c.md_escape(row['example_id'])}** · gold answer **{c.md_escape(row['gold'])}**{agree}"
            )
            st.markdown(c.md_escape(row["question"]))  # literal text: "$80,000 … $50,000" is not LaTeX
            cols = st.columns(len(entries))
            for i, (col, entry) in enumerate(zip(cols, entries, strict=True)):
                ref = (
                    entries[1 if i == 0 and len(entries) > 1 else 0]["generation"]
                    if len(entries) > 1
                    else None
                )
                mark = ":green[✔]" if entry["correct"] else (":red[✘]" if entry["correct"] is False else "–")
                with col:
                    st.markdown(
                        f"{mark} **{c.md_escape(labels[i])}** · {c.md_escape(runs[chosen[i]]['name'])} → "
                        f"`{entry['extracted'] or '∅'}`"
                    )
                    st.html(diff.diff_html(entry["generation"], ref))

    pager("_bottom")  # the same pager under the chains: no scrolling back up to turn the page
    with st.expander("This page as a table"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": r["example_id"],
                        "gold": r["gold"],
                        **{
                            f"{labels[i]}": f"{'✔' if e['correct'] else '✘'} {e['extracted']}"
                            for i, e in enumerate(r["entries"])
                        },
                    }
                    for r in shown[(page - 1) * size : page * size]
                ]
            ),
            hide_index=True,
        )


c.guarded(main)
