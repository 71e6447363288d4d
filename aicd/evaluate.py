"""k-shot evaluation: prompts per (shots, seed), chains from a generation backend, answers, accuracy.

The loop reads top to bottom: load the items and the demonstration pool, open the backend the config
names (`aicd.generation`: hf, vllm or openai — all greedy, same stop strings), then for each shot count
and seed build the prompts, score what can be reused, stream the rest through the backend, and record
every chain (`aicd.eval_results`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aicd.answers import answers_match, extract_answer
from aicd.config import EvalConfig
from aicd.data.record import Example
from aicd.errors import DataError
from aicd.eval_results import EvalResult, GenerationRecord, format_mean_std, summarize
from aicd.generation.base import GenerationBackend, PromptInput
from aicd.generation.hf import generate, stream_generate
from aicd.generation.text import encode_prompt, eos_ids
from aicd.progress import StopCheck, checked_call
from aicd.prompts import Prompt, build_prompt, select_demonstrations
from aicd.shot_selection import ShotSelector
from aicd.threads import torch_threads

GenerateFn = Callable[[list[str]], list[str]]

__all__ = [  # what callers imported from here before the split stays importable from here
    "EvalCallback",
    "EvalResult",
    "GenerationRecord",
    "default_device",
    "encode_prompt",
    "eos_ids",
    "evaluate",
    "format_mean_std",
    "generate",
    "stream_generate",
    "summarize",
]


class EvalCallback:
    """Hooks for progress, streamed records and cancellation (all no-ops; subclass what you need)."""

    def on_progress(self, done: int, total: int) -> None:
        """`done` of `total` generations finished."""

    def on_items(self, records: list[GenerationRecord]) -> None:
        """Records of finished generations (up to batch_size at a time), in completion order."""

    def should_stop(self) -> bool:
        """Return True to stop after the current batch; evaluate() then returns with `stopped=True`."""
        return False


class FunctionBackend:
    """A `generate_fn(prompt_texts) -> chains` as a backend, called on batch_size prompts at a time."""

    name = "generate_fn"
    takes_text = True  # the seam's contract: prompt texts in, chains out

    def __init__(self, fn: GenerateFn, batch_size: int) -> None:
        self.fn, self.batch_size = fn, batch_size

    def stream(self, prompts: Sequence[PromptInput], stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        for start in range(0, len(prompts), self.batch_size):
            batch = [p if isinstance(p, str) else str(p) for p in prompts[start : start + self.batch_size]]
            chains = list(self.fn(batch))
            if len(chains) != len(batch):
                raise ValueError(f"generate_fn returned {len(chains)} chains for {len(batch)} prompts")
            yield from enumerate(chains, start)

    def close(self) -> None:
        """Nothing held."""


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _answer_kind(config: EvalConfig, examples: Sequence[Example]) -> str:
    if config.answer_kind != "auto":
        return config.answer_kind
    from aicd.data.loaders import answer_kind_of

    return answer_kind_of(config.dataset, list(examples))


def _load(dataset: str, split: str, limit: int | None = None) -> list[Example]:
    from aicd.data.loaders import load_examples

    return load_examples(dataset, split, limit=limit)


def _items(config: EvalConfig, examples: Sequence[Example] | None) -> list[Example]:
    items = list(examples) if examples is not None else _load(config.dataset, config.split, config.limit)
    if examples is not None and config.limit is not None:
        items = items[: config.limit]
    if not items:
        raise DataError(f"dataset: '{config.dataset}' split '{config.split}' has no examples to evaluate")
    return items


def _demonstration_pool(config: EvalConfig, shot_examples: Sequence[Example] | None) -> list[Example]:
    """The examples k-shot prompts draw from; not loaded at all when every shot count is 0."""
    if max(config.shots) == 0:
        return []
    pool = (
        list(shot_examples)
        if shot_examples is not None
        else _load(config.shots_dataset or config.dataset, config.shots_split)
    )
    if not pool:
        raise DataError("shots_dataset: no demonstrations available for k-shot prompts")
    if config.demonstrations == "rationale":
        # Students learnt from rationales: when the pool has some, demonstrate only with those.
        pool = [ex for ex in pool if ex.rationales] or pool
    return pool


def _open_backend(
    config: EvalConfig,
    model: Any,
    tokenizer: Any,
    generate_fn: GenerateFn | None,
    device: str | None,
    callback: EvalCallback,
) -> tuple[GenerationBackend, Any]:
    """(backend, tokenizer for the prompts): a model is loaded only for the hf backend, while `callback`'s
    should_stop() is polled (a stop during the load raises `Cancelled`)."""
    from aicd.generation.factory import build_backend

    if generate_fn is not None:
        return FunctionBackend(generate_fn, config.batch_size), tokenizer
    if config.backend == "hf" and model is None:
        from aicd.models import load_model_and_tokenizer

        model, tokenizer = checked_call(
            lambda: load_model_and_tokenizer(config.model), StopCheck(callback.should_stop)
        )
        model.to(device or default_device())
    elif tokenizer is None:
        from aicd.models import load_tokenizer

        tokenizer = load_tokenizer(config.model)
    return build_backend(config, model=model, tokenizer=tokenizer), tokenizer


class _Run:
    """The state of one evaluation: what is done, what can be reused, and how records are reported."""

    def __init__(
        self, config: EvalConfig, items: list[Example], kind: str, callback: EvalCallback, progress: bool
    ) -> None:
        self.config, self.items, self.kind, self.callback = config, items, kind, callback
        self.total = len(set(config.shots)) * len(config.seeds) * len(items)
        self.bar = _progress_bar(self.total) if progress else None
        self.done = 0
        self.reused = 0
        self.stopped = False
        self.token_cache: dict[str, list[int]] = {}
        self.chain_cache: dict[Any, str] = {}  # identical prompts (0-shot under every seed) generate once
        self.records: list[GenerationRecord] = []
        self.rows: list[dict[str, Any]] = []

    def record(self, ex: Example, k: int, seed: int, prompt: Prompt, chain: str) -> GenerationRecord:
        extracted = extract_answer(chain, self.kind)
        return GenerationRecord(
            example_id=ex.id,
            question=ex.question,
            gold=ex.answer,
            shots=k,
            seed=seed,
            shot_ids=prompt.shot_ids,
            prompt=prompt.text,
            generation=chain,
            extracted=extracted,
            correct=answers_match(extracted, ex.answer, self.kind),
        )

    def emit(self, batch: list[GenerationRecord]) -> None:
        """Report finished records, then ask whether to stop."""
        if batch:
            self.done += len(batch)
            self.callback.on_items(batch)
            self.callback.on_progress(self.done, self.total)
            if self.bar is not None:
                self.bar.update(len(batch))
        self.stopped = self.stopped or self.callback.should_stop()

    def prompts(self, k: int, seed: int, pool: list[Example], tokenizer: Any) -> list[Prompt]:
        strategy = self.config.shot_selection
        if strategy != "random" and getattr(self, "_selector_pool", None) is not pool:
            self._selector_pool, self._selector = pool, ShotSelector([ex.question for ex in pool])
        selector = self._selector if strategy != "random" else None
        return [
            build_prompt(
                ex.question,
                select_demonstrations(pool, k, seed=seed, item=ex, strategy=strategy, selector=selector),
                self.config.template,
                tokenizer=tokenizer,
                max_length=self.config.max_length,
                max_new_tokens=self.config.max_new_tokens,
                cache=self.token_cache,
                demonstrations=self.config.demonstrations,
            )
            for ex in self.items
        ]

    def combo(
        self,
        k: int,
        seed: int,
        prompts: list[Prompt],
        backend: GenerationBackend,
        reuse: Mapping[tuple[str, int, int], str],
    ) -> None:
        """Score one (shots, seed): reused and repeated prompts first, the rest as the backend finishes them."""
        keys = [tuple(p.input_ids) if p.input_ids is not None else p.text for p in prompts]
        combo: list[GenerationRecord | None] = [None] * len(self.items)
        todo: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            chain = reuse.get((self.items[i].id, k, seed))
            if chain is not None:
                self.reused += 1
                self.chain_cache.setdefault(key, chain)
            chain = self.chain_cache.get(key)
            if chain is None:
                todo.setdefault(key, []).append(i)
            else:
                combo[i] = self.record(self.items[i], k, seed, prompts[i], chain)
        self.emit([r for r in combo if r is not None])
        groups = list(todo.values())
        pending: list[GenerationRecord] = []
        if groups and not self.stopped:
            stop = (self.config.template.question_prefix.strip(),)
            as_text = getattr(backend, "takes_text", False)
            inputs = [prompts[g[0]].text if as_text else _input(prompts[g[0]]) for g in groups]
            stream = backend.stream(inputs, stop)
            try:
                for j, chain in stream:
                    self.chain_cache[keys[groups[j][0]]] = chain
                    for i in groups[j]:
                        combo[i] = self.record(self.items[i], k, seed, prompts[i], chain)
                        pending.append(combo[i])
                    if len(pending) >= self.config.batch_size:
                        self.emit(pending)
                        pending = []
                        if self.stopped:
                            break
            finally:
                if hasattr(stream, "close"):
                    stream.close()
            self.emit(pending)
        finished = [r for r in combo if r is not None]
        self.records.extend(finished)
        if len(finished) == len(self.items):
            self.rows.append(
                {
                    "shots": k,
                    "seed": seed,
                    "accuracy": sum(r.correct for r in finished) / len(self.items),
                    "n": len(self.items),
                    "n_invalid": sum(r.extracted is None for r in finished),
                }
            )
        else:
            self.stopped = True


def evaluate(
    config: EvalConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    examples: Sequence[Example] | None = None,
    shot_examples: Sequence[Example] | None = None,
    callback: EvalCallback | None = None,
    progress: bool = True,
    generate_fn: GenerateFn | None = None,
    device: str | None = None,
    reuse: Mapping[tuple[str, int, int], str] | None = None,
) -> EvalResult:
    """Accuracy of a model at each shot count in `config.shots`, for each seed in `config.seeds`.

    `reuse` maps (example id, shots, seed) to a chain generated earlier with the same config (an interrupted
    run's generations.jsonl, or the rows the service stored): those items are scored, not generated again, so
    a resumed evaluation only pays for what is missing. `meta["reused"]` counts them.

    `examples`/`shot_examples` replace loading `config.dataset`/`split` and the demonstration pool;
    `model`/`tokenizer` replace loading `config.model`. `generate_fn(prompt_texts) -> chains` replaces
    the backend altogether (used by tests and to score precomputed chains). A model loaded here goes to
    `device` (default: cuda if available). Results are saved to `config.output_dir` when it is set; a
    backend that cannot start (vLLM missing, server unreachable) raises before anything is written.
    """
    items = _items(config, examples)
    kind = _answer_kind(config, items)
    pool = _demonstration_pool(config, shot_examples)
    callback = callback or EvalCallback()
    backend, tokenizer = _open_backend(config, model, tokenizer, generate_fn, device, callback)
    run = _Run(config, items, kind, callback, progress)
    try:
        for k in dict.fromkeys(config.shots):
            for seed in config.seeds:
                run.combo(k, seed, run.prompts(k, seed, pool, tokenizer), backend, reuse or {})
                if run.stopped:
                    break
            if run.stopped:
                break
    finally:
        backend.close()
        if run.bar is not None:
            run.bar.close()

    meta = {
        "config": config.model_dump(mode="json"),
        "answer_kind": kind,
        "std": "sample (ddof=1)",
        "reused": run.reused,
        "threads": torch_threads(),
    }
    result = EvalResult(
        rows=run.rows, summary=summarize(run.rows), items=run.records, stopped=run.stopped, meta=meta
    )
    if config.output_dir:
        result.save(config.output_dir)
    return result


def _input(prompt: Prompt) -> PromptInput:
    return prompt.input_ids if prompt.input_ids is not None else prompt.text


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eval", unit="item", dynamic_ncols=True)
