"""Datasets: browse stored datasets page by page, see questions and rationales by source, upload or import."""

from __future__ import annotations

import json
import re

import pandas as pd
import plotly.express as px
import streamlit as st

from ui.components import common as c
from ui.components.upload import NONE, ROWNUM, guess, read_table, to_records


def main() -> None:
    st.title("Datasets")
    client = c.api()
    base = c.base()

    browse, upload, builtin = st.tabs(["Browse", "Upload JSONL / CSV", "Import a built-in"])

    # ----------------------------------------------------------------------------------------------------- browse
    with browse:
        items = c.datasets(base)
        if not items:
            st.info(
                "No datasets yet: import a built-in one (GSM8K, SVAMP, MultiArith, StrategyQA) or upload your own "
                "in the other tabs.",
                icon=":material/inbox:",
            )
        else:
            overview = pd.DataFrame(
                [
                    {
                        "id": d["id"],
                        "name": d["name"],
                        "questions": d["n_examples"],
                        "answers": d["answer_kind"],
                        "source": d["source"],
                        "created": d["created_at"],
                    }
                    for d in items
                ]
            )
            st.dataframe(overview, hide_index=True, height=min(300, 40 + 35 * len(items)))
            by_id = {d["id"]: d for d in items}
            c.from_url("dataset", "ds_pick", list(by_id))
            ds_id = st.selectbox(
                "Dataset", list(by_id), key="ds_pick", format_func=lambda i: c.dataset_label(by_id[i])
            )
            c.to_url("dataset", ds_id)
            ds = by_id[ds_id]
            stats = c.dataset_stats(base, ds_id)
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("questions", stats["questions"])
            m2.metric("with a rationale", stats["with_rationale"])
            m3.metric("rationales", stats["rationales"])
            m4.metric("answer kind", ds["answer_kind"] or "?")
            if stats["questions"] == 0:
                st.warning(
                    "This dataset is empty: it has no questions to annotate, train or evaluate on.",
                    icon=":material/inbox:",
                )
            elif stats["rationales"] == 0:
                st.warning(
                    "No rationales yet: AICD, CondGen and LM training need them. Annotate it on the "
                    "**Annotate** page (or train the no-CoT baseline).",
                    icon=":material/edit_note:",
                )
            else:
                src = pd.DataFrame(stats["by_model"])
                left, right = st.columns([3, 2])
                fig = px.bar(
                    src,
                    x="rationales",
                    y="source",
                    color="model",
                    orientation="h",
                    title="rationales by source and writer",
                )
                fig.update_layout(height=220, margin={"t": 40, "b": 30, "l": 10, "r": 10})
                left.plotly_chart(fig, key="ds_sources_chart")
                cover = stats["with_rationale"] / max(1, stats["questions"])
                right.metric("questions covered", f"{cover:.0%}")
                right.metric(
                    "rationales per covered question",
                    f"{stats['rationales'] / max(1, stats['with_rationale']):.2f}",
                )

            st.subheader("Preview")
            size = st.segmented_control("rows per page", [10, 25, 50], default=10, key="ds_page_size") or 10
            state_key = f"ds_cursors_{ds_id}_{size}"
            cursors: list[str | None] = st.session_state.setdefault(state_key, [None])
            page = client.examples(ds_id, cursor=cursors[-1], limit=size)
            rows = [
                {
                    "id": e["ext_id"],
                    "question": e["question"],
                    "answer": e["answer"],
                    "rationales": len(e["rationales"]),
                    "sources": ", ".join(sorted({r["source"] for r in e["rationales"]})),
                    "first rationale": e["rationales"][0]["text"] if e["rationales"] else "",
                }
                for e in page["items"]
            ]
            if rows:
                st.dataframe(
                    pd.DataFrame(rows),
                    hide_index=True,
                    column_config={
                        "question": st.column_config.TextColumn(width="large"),
                        "first rationale": st.column_config.TextColumn(width="large"),
                    },
                )
            else:
                st.info("No questions on this page.", icon=":material/inbox:")
            prev_col, info_col, next_col = st.columns([1, 3, 1])
            if prev_col.button("◀ Previous", key="ds_prev", disabled=len(cursors) == 1):
                cursors.pop()
                st.rerun()
            first = (len(cursors) - 1) * size + 1
            info_col.caption(
                f"questions {first}–{first + len(rows) - 1} of {ds['n_examples']}"
                if rows
                else f"no questions (of {ds['n_examples']})"
            )
            if next_col.button("Next ▶", key="ds_next", disabled=not page.get("next_cursor")):
                cursors.append(page["next_cursor"])
                st.rerun()

            with st.expander("Delete this dataset"):
                sure = st.checkbox(
                    f"Yes, delete '{ds['name']}' with its questions and rationales", key="ds_del_sure"
                )
                if st.button("Delete", key="ds_delete", type="primary", disabled=not sure):
                    if c.attempt(lambda: client.delete_dataset(ds_id) or True, what="delete"):
                        c.clear_caches()
                        st.session_state.pop("ds_pick", None)
                        st.rerun()

    # ----------------------------------------------------------------------------------------------------- upload
    with upload:
        st.caption(
            "One record per line (JSONL) or per row (CSV). Map your fields to question / answer / rationale; "
            "the records are checked here and again by the server before anything is stored."
        )
        file = st.file_uploader("File", type=["jsonl", "json", "csv"], key="up_file")
        if file is not None:
            try:
                table = read_table(file.name, file.getvalue())
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                st.error(f"Cannot read {file.name}: {exc}", icon=":material/block:")
                table = None
            if table is not None:
                cols = [str(x) for x in table.columns]
                st.caption(f"{len(table)} records, fields: {', '.join(cols)}")
                a, b, cc, d = st.columns(4)
                mapping = {
                    "id": a.selectbox(
                        "id", [ROWNUM, *cols], key="up_map_id", index=guess([ROWNUM, *cols], "id")
                    ),
                    "question": b.selectbox(
                        "question", cols, key="up_map_q", index=guess(cols, "question", "body", "input", "q")
                    ),
                    "answer": cc.selectbox(
                        "answer", cols, key="up_map_a", index=guess(cols, "answer", "label", "target", "a")
                    ),
                    "rationale": d.selectbox(
                        "rationale",
                        [NONE, *cols],
                        key="up_map_r",
                        index=guess([NONE, *cols], "rationales", "rationale", "cot", "explanation"),
                    ),
                }
                e, f = st.columns(2)
                source = e.selectbox("rationale source", ["teacher", "gold", "self"], key="up_src")
                writer = f.text_input("written by (model)", key="up_writer", placeholder="e.g. gpt-3.5-turbo")
                try:
                    records = to_records(table, mapping, source, writer)
                except (ValueError, KeyError) as exc:
                    st.error(f"Field mapping: {exc}", icon=":material/block:")
                    records = []
                if records:
                    st.dataframe(
                        pd.DataFrame([{**r, "rationales": len(r["rationales"])} for r in records[:5]]),
                        hide_index=True,
                    )
                default = re.sub(r"[^A-Za-z0-9_.\-]", "-", file.name.rsplit(".", 1)[0])[:60] or "dataset"
                name = st.text_input("Name", value=default, key="up_name")
                desc = st.text_input("Description", key="up_desc")
                if st.button("Upload", key="up_go", type="primary", disabled=not records):
                    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
                    created = c.attempt(
                        client.upload_dataset,
                        name,
                        body,
                        filename=f"{name}.jsonl",
                        description=desc,
                        what="upload",
                    )
                    if created:
                        c.clear_caches()
                        st.success(
                            f"Stored **{created['name']}** with {created['n_examples']} questions.",
                            icon=":material/check_circle:",
                        )

    # ------------------------------------------------------------------------------------------------------ built-in
    with builtin:
        infos = c.builtins(base)
        if not infos:
            st.warning("The backend offers no built-in datasets.")
        else:
            by_name = {i["name"]: i for i in infos}
            src = st.selectbox(
                "Built-in dataset",
                list(by_name),
                key="imp_src",
                format_func=lambda n: f"{n} — {by_name[n]['description']}",
            )
            a, b, cc = st.columns(3)
            split = a.selectbox("Split", ["train", "test"], key="imp_split")
            limit = b.number_input("Limit (0 = all)", min_value=0, value=0, step=50, key="imp_limit")
            seed = cc.number_input("Seed", min_value=0, value=0, key="imp_seed")
            name = st.text_input(
                "Name", value=f"{src}-{split}" + (f"-{limit}" if limit else ""), key="imp_name"
            )
            if st.button("Import", key="imp_go", type="primary"):
                with st.spinner(f"importing {src}/{split} ..."):
                    created = c.attempt(
                        client.import_dataset,
                        name,
                        src,
                        split=split,
                        limit=int(limit) or None,
                        seed=int(seed),
                        what="import",
                    )
                if created:
                    c.clear_caches()
                    st.success(
                        f"Imported **{created['name']}**: {created['n_examples']} questions.",
                        icon=":material/check_circle:",
                    )


c.guarded(main)
