"""Results: Table 1 (objectives × datasets, mean ± std over seeds), accuracy vs shots (Fig. 2) and vs ω (Fig. 1)."""

from __future__ import annotations

import streamlit as st

from ui.components import charts
from ui.components import common as c
from ui.components import results as res

ALL_RUNS = "all"


def main() -> None:
    st.title("Results")
    base = c.base()

    evaluations = [e for e in c.evaluations(base) if e["status"] == "succeeded" and e.get("rows")]
    if not evaluations:
        st.info(
            "No finished evaluations yet. Launch a comparison or a sweep; results appear here as soon as the "
            "evaluations finish.",
            icon=":material/calculate:",
        )
        st.page_link("views/launch.py", label="Launch", icon=":material/rocket_launch:")
        st.stop()
    names = {d["id"]: d["name"] for d in c.datasets(base)}
    registry = c.registry(base)
    client = c.api()
    df = res.accuracy_frame(evaluations, c.runs(base), names, registry)

    sweeps = {s["id"]: s["name"] for s in c.sweeps(base)}
    a, f, b, cc = st.columns(4)
    # newest sweep (a comparison, an ω sweep, ...) first: runs of unrelated experiments are not averaged
    # together unless the reader asks for "all runs"
    sweep_ids = sorted((int(x) for x in df["sweep_id"].dropna().unique()), reverse=True)
    scope_options: list[int | str] = [*sweep_ids, ALL_RUNS]
    c.from_url("sweep", "res_scope", scope_options)
    scope = a.selectbox(
        "Runs",
        scope_options,
        key="res_scope",
        format_func=lambda s: "all runs" if s == ALL_RUNS else f"sweep #{s} {sweeps.get(int(s), '')}",
        help="the newest sweep by default; 'all runs' pools every evaluated run",
    )
    c.to_url("sweep", scope)
    if scope != ALL_RUNS:
        df = df[df["sweep_id"] == scope]
    pattern = f.text_input("Run names containing", key="res_filter", placeholder="e.g. a comparison's name")
    if pattern:
        df = df[df["run"].str.contains(pattern, case=False, regex=False)]
    datasets = sorted(df["dataset"].unique())
    chosen = b.multiselect("Datasets", datasets, default=datasets, key="res_datasets")
    df = df[df["dataset"].isin(chosen)]
    if df.empty:
        st.info("Nothing to show for this selection.", icon=":material/search:")
        st.stop()
    shot_values = sorted(df["shots"].unique())
    shots = cc.selectbox("Shots for the table", shot_values, index=0, key="res_shots")

    # runs of one objective whose settings differ (model, n, ω, lr, steps, data, ...) get rows of their own
    varying = res.varying_fields(df)
    fields = sorted({k for ks in varying.values() for k in ks})
    split = fields
    if fields:
        split = st.multiselect(
            "Separate rows by",
            fields,
            default=fields,
            key="res_split",
            help="settings that differ between runs of the same objective in this selection",
        )
        mixed = [k for k in fields if k not in split]
        if mixed:
            st.warning(
                "Some cells average runs with different settings: "
                + "; ".join(
                    f"{obj} differs in {', '.join(k for k in ks if k in mixed)}"
                    for obj, ks in varying.items()
                    if any(k in mixed for k in ks)
                )
                + ". Separate the rows by them, or narrow the selection.",
                icon=":material/warning:",
            )
        else:
            st.caption(
                "Rows are split by the settings that differ between runs of one objective: "
                + "; ".join(f"{obj}: {', '.join(ks)}" for obj, ks in varying.items())
            )
    df = res.with_labels(df, split)

    st.subheader(f"Table 1 — accuracy (%) at {shots} shot(s), mean ± std over training runs")
    table = res.table1(df, int(shots), client, registry)
    st.dataframe(table)
    at_shots = df[df["shots"] == shots]
    st.caption(" ".join(part for part in (res.data_used(at_shots), res.resolution(at_shots)) if part))
    cells = res.summarize(df[df["shots"] == shots], ["label", "dataset"], client)
    caption = client.aggregate_results([], ["label"])["caption"]
    st.caption(
        caption
        + " Runs per cell: "
        + ", ".join(
            f"{o}/{d}: {int(n)}" for o, d, n in cells[["label", "dataset", "n"]].itertuples(index=False)
        )
    )
    x, y, z, _ = st.columns([1, 1, 1, 3])
    x.download_button(
        "CSV", res.numeric_cells(cells).to_csv(index=False).encode(), "table1.csv", "text/csv", key="res_csv"
    )
    y.download_button("Markdown", res.to_markdown(table).encode(), "table1.md", "text/markdown", key="res_md")
    z.download_button(
        "LaTeX", res.to_latex(table, caption).encode(), "table1.tex", "application/x-tex", key="res_tex"
    )
    with st.expander("Markdown / LaTeX source"):
        st.code(res.to_markdown(table), language="markdown")
        st.code(res.to_latex(table, caption), language="latex")

    st.subheader("Fig. 2 — accuracy vs number of shots")
    by_shots = res.summarize(df, ["label", "dataset", "shots"], client)
    colors = {o["label"]: o["color"] for o in registry["objectives"]}
    st.plotly_chart(charts.accuracy_by_shots(by_shots, color="label", colors=colors), key="res_fig2")

    st.subheader("Fig. 1 — accuracy vs ω")
    aicd = df[df["uses_omega"] & df["omega"].notna()]  # runs whose loss depends on ω (the registry's rule)
    if aicd["omega"].nunique() < 2:
        st.info(
            "Fig. 1 needs AICD runs with at least two ω values (launch an ω sweep).", icon=":material/tune:"
        )
    else:
        omega_shots = st.selectbox("at shots", sorted(aicd["shots"].unique()), key="res_omega_shots")
        at_shots = res.with_labels(aicd[aicd["shots"] == omega_shots], [k for k in split if k != "omega"])
        if at_shots["label"].nunique() > 1:  # one line per dataset and other differing setting
            at_shots = at_shots.assign(dataset=at_shots["dataset"] + " · " + at_shots["label"])
        by_omega = res.summarize(at_shots, ["dataset", "omega"], client)
        st.plotly_chart(charts.accuracy_by_omega(by_omega), key="res_fig1")
        st.caption("error bars: ± one standard deviation over training runs (none with a single run)")

    with st.expander("All accuracies (one row per evaluation, shots and seed)"):
        st.dataframe(df, hide_index=True)
        st.download_button(
            "CSV", df.to_csv(index=False).encode(), "accuracies.csv", "text/csv", key="res_all_csv"
        )


c.guarded(main)
