"""Annotate: ask a teacher (or the gold solutions, or the student itself) for rationales of a stored dataset."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.client import ApiError
from ui.components import charts, live
from ui.components import common as c

OPENAI_BASE_URL = "https://api.openai.com/v1"  # the endpoint a key belongs to when no base URL is given
PAPER_PROMPT = "Question: {question} Hint: The answer should be {answer}. Answer: Let's think step by step."


def main() -> None:
    st.title("Annotate")
    st.caption(
        "The paper's recipe: the teacher sees each training question with its gold answer as a hint and writes "
        "k step-by-step rationales at temperature 1.0; rationales reaching a wrong answer or mentioning the "
        "hint are filtered out."
    )
    client = c.api()
    ds = c.pick_dataset("Dataset to annotate", "ann_dataset")
    assert ds is not None
    if ds["n_examples"] == 0:
        st.warning("This dataset is empty: there is nothing to annotate.", icon=":material/inbox:")
        st.stop()

    st.session_state.setdefault("ann_template", PAPER_PROMPT)

    source = st.radio(
        "Rationales from",
        ["teacher", "gold", "self"],
        horizontal=True,
        key="ann_source",
        format_func={
            "teacher": "a teacher LLM (OpenAI-compatible endpoint)",
            "gold": "the dataset's gold solutions",
            "self": "a local model (self-rationalisation)",
        }.get,
    )
    config: dict[str, Any] = {"source": source}
    template_problem: str | None = None  # a template the server refuses keeps Start disabled
    if source == "teacher":
        a, b = st.columns(2)
        config["base_url"] = (
            a.text_input(
                "Base URL",
                key="ann_base_url",
                placeholder="https://api.openai.com/v1",
                help="any OpenAI-compatible server (vLLM, Ollama, ...); empty = OpenAI",
            )
            or None
        )
        config["teacher"] = b.text_input("Model", value="gpt-3.5-turbo", key="ann_teacher")
        endpoint = (config["base_url"] or OPENAI_BASE_URL).strip().rstrip("/")
        stored = {k["base_url"]: k for k in client.teacher_keys()}.get(endpoint)
        key = st.text_input(
            "API key" + (" (leave empty to use the stored one)" if stored else ""),
            type="password",
            key="ann_api_key",
            help="sent once and stored server-side for this endpoint, reused by later jobs; never shown again",
        )
        if key:
            config["api_key"] = key
        if stored:
            left, right = st.columns([4, 1])
            left.caption(
                f":material/key: A key for `{endpoint}` is stored on the server (set "
                f"{stored['updated_at'][:16].replace('T', ' ')} UTC); a new one entered here replaces it."
            )
            if right.button("Forget stored key", key="ann_forget_key"):
                try:
                    client.forget_teacher_key(config["base_url"])
                    st.rerun()
                except ApiError as exc:
                    c.show_error(exc, "forget the key")
        else:
            st.caption(
                f"No key stored for `{endpoint}`: enter one (it is kept server-side for this endpoint), or "
                "leave it empty if the server needs none or its workers have `$OPENAI_API_KEY`."
            )
    elif source == "self":
        config["model"] = st.text_input(
            "Local model", value="tiny:gpt2", key="ann_model", help="HF hub id, local path or tiny:<arch>"
        )

    if source != "gold":
        a, b, cc = st.columns(3)
        config["k"] = int(a.number_input("k rationales per question", 1, 128, 3, key="ann_k"))
        config["temperature"] = float(b.slider("temperature", 0.0, 2.0, 1.0, 0.05, key="ann_temperature"))
        config["max_tokens"] = int(
            cc.number_input("max tokens per rationale", 16, 8192, 512, key="ann_max_tokens")
        )

        st.subheader("Prompt template")
        left, right = st.columns(2)
        with left:
            template = st.text_area(
                "Template ({question} and {answer} are filled in)", key="ann_template", height=120
            )
            system = st.text_input("System prompt (optional)", key="ann_system")
            index = st.number_input(
                "Preview on question #", 0, max(0, ds["n_examples"] - 1), 0, key="ann_preview_idx"
            )
            if st.button("Paper's prompt", key="ann_reset_prompt"):
                st.session_state.pop("ann_template")
                st.rerun()
        with right:
            try:
                shown = client.preview_prompt(
                    {
                        "dataset_id": ds["id"],
                        "prompt_template": template,
                        "system_prompt": system or None,
                        "index": int(index),
                    }
                )
                st.caption(
                    f"What the teacher receives for question `{shown['example_id']}` (gold answer "
                    f"{shown['answer']}):"
                )
                if shown["system_prompt"]:
                    st.code(shown["system_prompt"], language=None, wrap_lines=True)
                st.code(shown["prompt"], language=None, wrap_lines=True)
            except ApiError as exc:
                c.show_error(exc, "template")
                if exc.status == 422:
                    template_problem = exc.message
        config["prompt_template"] = template
        if system:
            config["system_prompt"] = system

    with st.expander("Filters"):
        config["filter_correct"] = st.checkbox(
            "keep only rationales that reach the gold answer", True, key="ann_f1"
        )
        config["drop_hint_mentions"] = st.checkbox(
            "drop rationales that mention the hint", True, key="ann_f2"
        )
        config["normalize_ending"] = st.checkbox(
            "end every rationale with 'So, the answer is X.'", True, key="ann_f3"
        )

    if st.button(
        "Start annotation",
        key="ann_start",
        type="primary",
        disabled=template_problem is not None,
        help=f"fix the prompt template first: {template_problem}" if template_problem else None,
    ):
        job = c.attempt(client.create_annotation, ds["id"], config, what="start")
        if job:
            st.session_state["ann_job"] = job["id"]
            st.session_state.pop("ann_api_key", None)  # the key goes to the server once and leaves the page
            c.clear_caches()
            st.rerun()

    # ------------------------------------------------------------------------------------------------ jobs
    st.divider()
    st.subheader("Annotation jobs")
    jobs = client.annotations(dataset_id=ds["id"])
    if not jobs:
        st.info("No annotation job for this dataset yet.", icon=":material/schedule:")
        st.stop()
    by_id = {j["id"]: j for j in jobs}
    if st.session_state.get("ann_job") not in by_id:
        st.session_state["ann_job"] = jobs[0]["id"]
    job_id = st.selectbox(
        "Job",
        list(by_id),
        key="ann_job",
        format_func=lambda i: (
            f"#{i} · {by_id[i]['config'].get('source')} · "
            f"{by_id[i]['config'].get('teacher') if by_id[i]['config'].get('source') == 'teacher' else ''}"
            f" · {c.status_label(by_id[i])}"
        ),
    )

    def _filters(report: dict[str, Any]) -> None:
        f = report.get("filters") or {}
        stages = [
            ("samples", f.get("total", 0)),
            ("cut off (length)", f.get("truncated", 0)),
            ("mention the hint", f.get("hint_mention", 0)),
            ("announce two answers", f.get("contradiction", 0)),
            ("no answer", f.get("no_answer", 0)),
            ("wrong answer", f.get("wrong_answer", 0)),
            ("kept", f.get("kept", 0)),
        ]
        st.plotly_chart(
            charts.progress_bars([{"stage": s, "count": n} for s, n in stages], "filter statistics"),
            key="ann_filters_chart",
        )
        st.caption(
            f"{f.get('examples_with_rationale', 0)}/{f.get('examples', 0)} questions have at least one "
            f"rationale · {f.get('normalized', 0)} endings normalised · "
            f"{report.get('rationales_stored', report.get('ok', 0))} rationales stored"
        )

    every = c.poll_every(by_id[job_id])

    def job_panel(every: float | None) -> float | None:
        """One tick; on an API error it says so and keeps the timer (the next tick tries again)."""
        with c.fragment_guard():
            return _job_panel(job_id)
        return every

    def _job_panel(job_id: int) -> float | None:
        view = client.annotation_live(job_id, sweeps=live.sidebar_sweeps())
        job = view["job"]
        live.publish({}, [], view["followed"])
        report = job.get("report") or {}
        st.markdown(
            f"**{c.status_label(job)}** · key stored server-side: {'yes' if job['has_api_key'] else 'no'}"
        )
        done, total = job["progress_done"], job["progress_total"]
        st.progress(
            c.progress_fraction(job), text=f"{done}/{total} samples" if total else "waiting for a worker"
        )
        a, b, cc, d = st.columns(4)
        a.metric("prompt tokens", f"{report.get('prompt_tokens', 0):,}")
        b.metric("completion tokens", f"{report.get('completion_tokens', 0):,}")
        cost = report.get("cost_usd")
        cc.metric("cost", "n/a" if cost is None else f"${cost:.4f}")
        d.metric("requests / retries", f"{report.get('requests', 0)} / {report.get('retries', 0)}")
        if job["status"] == "failed":
            st.error(
                f"The annotation failed: {job.get('error') or 'no reason given'}", icon=":material/error:"
            )
        elif job["status"] == "lost":
            st.warning(job.get("error") or "The worker stopped responding.", icon=":material/warning:")
        if report:
            _filters(report)
            if report.get("failures"):
                st.dataframe(pd.DataFrame(report["failures"]), hide_index=True)
        live.actions(client, "annotations", job, "ann")  # the same Cancel/Cancelling…/Resume as every job
        with st.expander("Config (without the key)"):
            st.json(job["config"], expanded=False)
        now = c.poll_every(job)
        c.live_caption(now)
        return now

    live.follow(f"ann-{job_id}", every, job_panel)


c.guarded(main)
