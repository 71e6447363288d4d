"""`annotate()`: ask the source for k rationales per question, store each as it arrives, then filter.

The CLI and the worker call the same function; they differ only in the sink (a JSONL file or DB rows) and the
stop check (Ctrl-C or a cancelled job). Keys already in the sink are never asked for again, so an interrupted run
continues where it stopped without paying twice; a request that still fails after its retries is stored as a
failure with its error and asked again on the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from aicd.annotate.client import (
    NSupportError,
    TeacherClient,
    TeacherError,
    describe_error,
    is_connect_failure,
    is_retryable,
)
from aicd.annotate.config import AnnotateConfig
from aicd.annotate.postprocess import FilterStats, infer_answer_kind, postprocess
from aicd.annotate.prices import cost_usd
from aicd.annotate.records import AnnotationRecord, RecordKey, Usage, latest_ok
from aicd.annotate.sinks import RationaleSink
from aicd.data.record import Example
from aicd.errors import DataError
from aicd.progress import NO_PROGRESS, Cancelled, Progress

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
STOP_GRACE_S = 5.0
"""After a stop, requests in flight get this long to finish (and be stored) before they are abandoned: a hung
teacher must not hold a cancel for a whole request timeout."""


class AnnotateReport(BaseModel):
    """What a run did: counts, tokens, cost, filter statistics, and the post-processed examples."""

    source: str
    writer: str
    prompt_hash: str
    questions: int = 0
    wanted: int = 0  # samples this run had to get (k × questions minus those already stored)
    already_stored: int = 0
    no_gold: int = 0  # source=gold: questions skipped for having no rationale with source "gold"
    ok: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    retry_errors: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    elapsed_s: float = 0.0
    stopped: bool = False
    failures: list[dict[str, Any]] = Field(
        default_factory=list, description="first failures (id, index, error)"
    )
    filters: FilterStats = Field(default_factory=FilterStats)
    examples: list[Example] = Field(default_factory=list, exclude=True)

    @property
    def complete(self) -> bool:
        return not self.stopped and self.failed == 0 and self.ok == self.wanted

    def summary(self) -> str:
        f = self.filters
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        lines = [
            f"{self.writer}: {self.ok} new rationales ({self.already_stored} already stored, {self.failed} failed"
            f"{', stopped early' if self.stopped else ''}) for {self.questions} questions in {self.elapsed_s:.1f}s",
            f"requests {self.requests}, retries {self.retries}; tokens {self.prompt_tokens} prompt + "
            f"{self.completion_tokens} completion; cost {cost}",
            f"filters: {f.total} samples -> truncated {f.truncated}, mention hint {f.hint_mention}, "
            f"two answers {f.contradiction}, no answer "
            f"{f.no_answer}, wrong answer {f.wrong_answer} -> kept {f.kept} ({f.normalized} endings normalised); "
            f"{f.examples_with_rationale}/{f.examples} questions have a rationale",
        ]
        if self.no_gold:
            lines.append(
                f"{self.no_gold} question{'' if self.no_gold == 1 else 's'} skipped: no gold rationale in the dataset"
            )
        return "\n".join(lines)


class _ThrottledStop:
    """Calls a possibly slow stop check (a DB/Redis lookup) at most every `interval` seconds; sticky once True."""

    def __init__(self, check: Callable[[], bool] | None, interval: float = 0.1):
        self.check, self.interval = check, interval
        self.last, self.value = 0.0, False

    def __call__(self) -> bool:
        if self.value or self.check is None:
            return self.value
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.value = bool(self.check())
        return self.value

    def set(self) -> None:
        self.value = True


@dataclass
class _Run:
    config: AnnotateConfig
    sink: RationaleSink
    report: AnnotateReport
    stop: _ThrottledStop
    on_progress: ProgressFn | None
    progress: Progress = NO_PROGRESS
    bar: Any = None
    secret: str | None = None
    done: int = 0
    new_records: list[AnnotationRecord] = field(default_factory=list)
    fatal: BaseException | None = None

    def _tick(self, tokens: int = 0) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            r = self.report
            self.bar.set_postfix(tokens=r.prompt_tokens + r.completion_tokens, failed=r.failed, refresh=False)
        if self.on_progress is not None:
            self.on_progress(self.done, self.report.wanted)
        self.progress.advance()

    def store(self, record: AnnotationRecord) -> None:
        self.sink.write(record)
        self.new_records.append(record)
        r = self.report
        r.ok += 1
        r.prompt_tokens += record.usage.prompt_tokens
        r.completion_tokens += record.usage.completion_tokens
        if record.cost_usd is None:
            r.cost_usd = None
        elif r.cost_usd is not None:
            r.cost_usd += record.cost_usd
        self._tick()

    def fail(
        self, question_id: str, index: int, error: str, attempts: int, usage: Usage | None = None
    ) -> None:
        """Store a failure; `usage` is what a paid but unusable reply cost (counted in the report)."""
        cfg = self.config
        usage = usage or Usage()
        cost = (
            cost_usd(cfg.teacher, usage.prompt_tokens, usage.completion_tokens, cfg.prices)
            if usage.total_tokens
            else None
        )
        record = AnnotationRecord(
            question_id=question_id,
            sample_index=index,
            teacher=cfg.writer,
            prompt_hash=cfg.prompt_hash,
            source=cfg.source,
            status="failed",
            error=error,
            attempts=attempts,
            usage=usage,
            cost_usd=cost,
        )
        self.sink.write_failure(record)
        r = self.report
        r.failed += 1
        if usage.total_tokens:
            r.prompt_tokens += usage.prompt_tokens
            r.completion_tokens += usage.completion_tokens
            if cost is None:
                r.cost_usd = None
            elif r.cost_usd is not None:
                r.cost_usd += cost
        if len(r.failures) < 20:
            r.failures.append({"question_id": question_id, "sample_index": index, "error": error})
        self._tick()


def _check_examples(examples: list[Example]) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise DataError(
                f"duplicate example id '{ex.id}': ids key the stored rationales, they must be unique"
            )
        seen.add(ex.id)


def _missing(
    config: AnnotateConfig, examples: list[Example], done: set[RecordKey]
) -> list[tuple[Example, list[int]]]:
    jobs = []
    for ex in examples:
        missing = [i for i in range(config.k) if (ex.id, i, config.writer, config.prompt_hash) not in done]
        if missing:
            jobs.append((ex, missing))
    return jobs


# ------------------------------------------------------------------------------------------------ teacher


async def _teacher_job(run: _Run, client: TeacherClient, ex: Example, missing: list[int]) -> None:
    cfg = run.config
    prompt = cfg.render(ex.question, ex.answer)

    def keep(indices: list[int], completion: Any) -> list[int]:
        """Store the returned choices under `indices`; return the indices still without one."""
        got = completion.choices[: len(indices)]
        n = max(len(got), 1)
        for j, ((text, finish), index) in enumerate(zip(got, indices, strict=False)):
            share = completion.completion_tokens // n + (completion.completion_tokens % n if j == 0 else 0)
            usage = Usage(prompt_tokens=completion.prompt_tokens if j == 0 else 0, completion_tokens=share)
            run.store(
                AnnotationRecord(
                    question_id=ex.id,
                    sample_index=index,
                    teacher=cfg.writer,
                    prompt_hash=cfg.prompt_hash,
                    source="teacher",
                    text=text,
                    finish_reason=finish,
                    usage=usage,
                    cost_usd=cost_usd(cfg.teacher, usage.prompt_tokens, usage.completion_tokens, cfg.prices),
                    attempts=completion.attempts,
                    latency_s=round(completion.latency_s, 4),
                    meta={"n": len(indices), "usage_estimated": True}
                    if completion.usage_estimated
                    else {"n": len(indices)},
                )
            )
        return indices[len(got) :]

    async def ask(indices: list[int], *, reask: bool = True) -> None:
        """One request for `indices`; failures are stored, fatal errors stop the run. A reply with fewer choices
        than asked for has the rest asked for once, one by one (`reask`); an empty reply is a failure."""
        if run.fatal is not None or run.stop():
            return  # no new request once stopping: what is missing is asked for by the next run
        try:
            completion = await client.complete(prompt, len(indices))
        except TeacherError as exc:
            run.fatal = run.fatal or exc
            run.stop.set()
            return
        except NSupportError:
            client.n_supported = False
            await asyncio.gather(*(ask([i], reask=False) for i in indices))
            return
        except Exception as exc:  # noqa: BLE001 - every other error is stored as this item's failure
            if run.fatal is not None or (run.stop() and is_retryable(exc)):
                return  # stopped mid-retry: not a failure, the next run asks again
            if client.stats.succeeded == 0 and is_connect_failure(exc):
                # nothing has ever got through: the endpoint is down or wrong, not this item
                run.fatal = TeacherError(
                    f"cannot reach the teacher server at {client.base_url} ({describe_error(exc, run.secret)})"
                )
                run.stop.set()
                return
            error = describe_error(exc, run.secret)
            for index in indices:
                run.fail(ex.id, index, error, attempts=getattr(exc, "attempts", 1))
            if is_retryable(exc) and (reason := client.breaker.sample_failed(error)) is not None:
                run.fatal = run.fatal or client.breaker_open(reason)  # the endpoint, not this item
                run.stop.set()
            return
        client.breaker.sample_ok()
        if not completion.choices:  # paid for (usage counted) but nothing to store: do not ask again
            usage = Usage(
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens
            )
            for j, index in enumerate(indices):
                run.fail(
                    ex.id,
                    index,
                    "no choices in reply",
                    attempts=completion.attempts,
                    usage=usage if j == 0 else None,
                )
            return
        rest = keep(indices, completion)
        if rest:
            if len(indices) > 1 and cfg.n_mode == "auto":
                client.n_supported = False  # the server ignores n (e.g. Ollama): ask one by one from now on
            if reask:
                await asyncio.gather(*(ask([i], reask=False) for i in rest))
            else:
                for index in rest:
                    run.fail(ex.id, index, "no choices in reply", attempts=completion.attempts)

    if len(missing) == 1 or client.n_supported is not False:
        await ask(missing)
    else:
        await asyncio.gather(*(ask([i], reask=False) for i in missing))


async def _abandon_after_stop(run: _Run, tasks: set[asyncio.Task[None]]) -> None:
    """Once the run stops, give the requests in flight `STOP_GRACE_S` to finish (and be stored), then cancel the
    rest: a hung teacher must not hold a cancel or a breaker stop for a whole request timeout. Runs beside the
    dispatch loop, so the hot path pays nothing for it."""
    while run.fatal is None and not run.stop():
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + STOP_GRACE_S
    while tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for task in list(tasks):
        task.cancel()  # their slots are released, so a dispatch loop waiting for one wakes and sees the stop


async def _run_teacher(run: _Run, jobs: list[tuple[Example, list[int]]]) -> None:
    cfg = run.config
    client = TeacherClient(cfg, should_stop=run.stop)
    tasks: set[asyncio.Task[None]] = set()
    watcher = asyncio.create_task(_abandon_after_stop(run, tasks))
    try:
        if cfg.preflight:
            await client.preflight()
        slots = asyncio.Semaphore(cfg.concurrency)
        for ex, missing in jobs:
            await slots.acquire()
            if run.stop():
                slots.release()
                break
            task = asyncio.create_task(_teacher_job(run, client, ex, missing))
            task.add_done_callback(lambda _t: slots.release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:  # abandoned (cancelled) requests are not errors; anything else is a bug to surface
            for outcome in await asyncio.gather(*list(tasks), return_exceptions=True):
                if isinstance(outcome, Exception):
                    raise outcome
    finally:
        watcher.cancel()
        run.report.requests = client.stats.requests
        run.report.retries = client.stats.retries
        run.report.retry_errors = dict(client.stats.errors)
        await client.close()
    if run.fatal is not None:
        raise run.fatal


async def annotate_async(
    config: AnnotateConfig,
    examples: list[Example],
    sink: RationaleSink,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: ProgressFn | None = None,
    progress: bool = False,
    hook: Progress = NO_PROGRESS,
) -> AnnotateReport:
    """`annotate` for callers already inside an event loop (source=teacher only)."""
    if config.source != "teacher":
        raise ValueError("annotate_async serves source='teacher'; use annotate() for gold/self")
    run, jobs = _prepare(config, examples, sink, should_stop, on_progress, hook)
    t0 = time.monotonic()
    try:
        with _bar(run, progress):
            await _run_teacher(run, jobs)
    finally:
        run.report.elapsed_s = time.monotonic() - t0
    return _finish(run, examples, sink)


# ------------------------------------------------------------------------------------------ gold and self


def _check_gold(examples: list[Example]) -> None:
    """`source=gold` stores only the dataset's own rationales; refuse a dataset that has none at all."""
    if any(r.source == "gold" for ex in examples for r in ex.rationales):
        return
    others = sorted({r.source for ex in examples for r in ex.rationales})
    held = f" (its rationales are marked source={'/'.join(others)})" if others else ""
    raise DataError(
        f"--source gold: none of the {len(examples)} questions has a gold rationale{held}; "
        "annotate with a teacher (--source teacher) or a local model (--source self) instead"
    )


def _run_gold(run: _Run, jobs: list[tuple[Example, list[int]]]) -> None:
    """The dataset's own rationales (GSM8K solutions, StrategyQA facts) as samples 0..m-1; no teacher.

    Only rationales with source "gold": those of another source (SVAMP/MultiArith's teacher-written ones) are
    not the dataset's and are never stored as gold; a question with none is skipped and counted."""
    cfg = run.config
    for ex, missing in jobs:
        if run.stop():
            return
        golds = [r for r in ex.rationales if r.source == "gold"]
        if not golds:
            run.report.no_gold += 1
        for index in missing:
            if index < len(golds):
                run.store(
                    AnnotationRecord(
                        question_id=ex.id,
                        sample_index=index,
                        teacher=cfg.writer,
                        prompt_hash=cfg.prompt_hash,
                        source="gold",
                        text=golds[index].text,
                        finish_reason="stop",
                        cost_usd=0.0,
                    )
                )
            else:
                run.report.wanted -= 1  # fewer gold rationales than k: nothing to get


def _run_self(run: _Run, jobs: list[tuple[Example, list[int]]]) -> None:
    """k samples per question from a local HF model, prompted with the hint (STaR's rationalisation)."""
    from aicd.annotate.selfgen import sample_continuations
    from aicd.models import load_model_and_tokenizer

    cfg = run.config
    model, tokenizer = load_model_and_tokenizer(str(cfg.model), seed=cfg.seed)
    flat = [(ex, index) for ex, missing in jobs for index in missing]
    stop = tuple(cfg.stop or ("Question:",))
    for start in range(0, len(flat), cfg.batch_size):
        if run.stop():
            return
        batch = flat[start : start + cfg.batch_size]
        prompts = [cfg.render(ex.question, ex.answer) for ex, _ in batch]
        outs = sample_continuations(
            model,
            tokenizer,
            prompts,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_tokens,
            stop=stop,
            seed=cfg.seed + start,
        )
        for (ex, index), (text, finish, n_prompt, n_new) in zip(batch, outs, strict=True):
            if not text:
                run.fail(ex.id, index, "empty generation", attempts=1)
                continue
            run.store(
                AnnotationRecord(
                    question_id=ex.id,
                    sample_index=index,
                    teacher=cfg.writer,
                    prompt_hash=cfg.prompt_hash,
                    source="self",
                    text=text,
                    finish_reason=finish,
                    usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_new),
                    cost_usd=0.0,
                )
            )


# ------------------------------------------------------------------------------------------------- driver


def _with_hook(should_stop: Callable[[], bool] | None, hook: Progress) -> Callable[[], bool]:
    """One stop check: the caller's `should_stop()`, or its `Progress.check()` raising `Cancelled`."""

    def stop() -> bool:
        if should_stop is not None and should_stop():
            return True
        try:
            hook.check()
        except Cancelled:
            return True
        return False

    return stop


def _prepare(
    config, examples, sink, should_stop, on_progress, hook: Progress = NO_PROGRESS
) -> tuple[_Run, list[tuple[Example, list[int]]]]:
    _check_examples(examples)
    done = sink.existing_keys()
    jobs = _missing(config, examples, done)
    wanted = sum(len(m) for _, m in jobs)
    report = AnnotateReport(
        source=config.source,
        writer=config.writer,
        prompt_hash=config.prompt_hash,
        questions=len(examples),
        wanted=wanted,
        already_stored=len(examples) * config.k - wanted,
    )
    run = _Run(
        config=config,
        sink=sink,
        report=report,
        stop=_ThrottledStop(_with_hook(should_stop, hook)),
        on_progress=on_progress,
        progress=hook,
        secret=config.resolved_api_key(),
    )
    hook.phase("annotation", wanted)
    return run, jobs


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): less CPU per request at high concurrency."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _bar:  # noqa: N801 - used as a context manager
    def __init__(self, run: _Run, enabled: bool):
        self.run, self.enabled = run, enabled

    def __enter__(self) -> None:
        if self.enabled and self.run.report.wanted:
            from tqdm import tqdm

            self.run.bar = tqdm(
                total=self.run.report.wanted,
                unit="rationale",
                dynamic_ncols=True,
                desc=f"annotate {self.run.config.writer}",
            )

    def __exit__(self, *exc: object) -> None:
        if self.run.bar is not None:
            self.run.bar.close()
            self.run.bar = None


def _finish(run: _Run, examples: list[Example], sink: RationaleSink) -> AnnotateReport:
    cfg, report = run.config, run.report
    report.stopped = run.stop.value and report.ok + report.failed < report.wanted
    stored: Iterable[AnnotationRecord] = getattr(sink, "existing_records", lambda: [])()
    records = latest_ok([*stored, *run.new_records])
    kind = cfg.answer_kind if cfg.answer_kind != "auto" else infer_answer_kind(examples)
    report.examples, report.filters = postprocess(examples, records, cfg, kind)
    return report


def annotate(
    config: AnnotateConfig,
    examples: list[Example],
    sink: RationaleSink,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: ProgressFn | None = None,
    progress: bool = False,
    hook: Progress = NO_PROGRESS,
) -> AnnotateReport:
    """Get `config.k` rationales per example from the configured source, writing each to `sink` as it arrives.

    Returns the report with post-processed examples (`report.examples`). `should_stop()` is polled: once True no
    new request starts, requests in flight finish and are stored (within `STOP_GRACE_S`), and the report says
    `stopped`; `hook` (an `aicd.progress.Progress`, e.g. the worker's job) sees the `annotation` phase advance
    per sample and stops the run like `should_stop`. Raises
    TeacherError (an AICDError) when the endpoint cannot serve the run at all (no/bad key, unreachable, unknown
    model) — before anything is written when the preflight catches it — and DataError for source=gold on a
    dataset without gold rationales.
    """
    if config.source == "gold":
        _check_gold(examples)
    run, jobs = _prepare(config, examples, sink, should_stop, on_progress, hook)
    t0 = time.monotonic()
    try:
        with _bar(run, progress):
            if config.source == "teacher":
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    pass
                else:
                    raise RuntimeError(
                        "annotate() called inside an event loop; await annotate_async() instead"
                    )
                with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                    runner.run(_run_teacher(run, jobs))
            elif config.source == "gold":
                _run_gold(run, jobs)
            else:
                _run_self(run, jobs)
    finally:
        run.report.elapsed_s = time.monotonic() - t0
    return _finish(run, examples, sink)
