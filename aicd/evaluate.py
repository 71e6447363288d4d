"""k-shot evaluation: greedy batched generation, answer extraction and accuracy per (shots, seed).

Every generated chain is kept (`GenerationRecord`) so results can be inspected item by item; the summary
gives mean ± sample std (ddof=1; 0 for a single seed) of accuracy over seeds for each shot count.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aicd.answers import answers_match, extract_answer
from aicd.config import EvalConfig
from aicd.data.record import Example
from aicd.errors import DataError
from aicd.prompts import Prompt, build_prompt, sample_shots

GenerateFn = Callable[[list[str]], list[str]]


@dataclass
class GenerationRecord:
    """One test item answered once: the prompt it saw, what it generated, and whether that was right."""

    example_id: str
    question: str
    gold: str
    shots: int
    seed: int
    shot_ids: list[str]  # demonstrations actually in the prompt (fewer than `shots` if some were dropped)
    prompt: str
    generation: str
    extracted: str | None
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EvalCallback:
    """Hooks for progress, streamed records and cancellation (all no-ops; subclass what you need)."""

    def on_progress(self, done: int, total: int) -> None:
        """`done` of `total` generations finished."""

    def on_items(self, records: list[GenerationRecord]) -> None:
        """Records of a finished generation batch, in completion order."""

    def should_stop(self) -> bool:
        """Return True to stop after the current batch; evaluate() then returns with `stopped=True`."""
        return False


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]  # per (shots, seed): shots, seed, accuracy, n, n_invalid
    summary: list[dict[str, Any]]  # per shots: shots, mean, std, n_seeds
    items: list[GenerationRecord]
    stopped: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # config, answer_kind, std definition

    def to_json(self) -> dict[str, Any]:
        """Everything but the items (those go to generations.jsonl)."""
        return {
            "rows": self.rows,
            "summary": self.summary,
            "stopped": self.stopped,
            "n_items": len(self.items),
            **self.meta,
        }

    def save(self, output_dir: str | Path) -> Path:
        """Write results.json and generations.jsonl (each atomically) into `output_dir`."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(
            out / "generations.jsonl",
            "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in self.items),
        )
        _atomic_write(out / "results.json", json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load(cls, output_dir: str | Path) -> EvalResult:
        out = Path(output_dir)
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        items = []
        gen_path = out / "generations.jsonl"
        if gen_path.exists():
            with gen_path.open(encoding="utf-8") as fh:
                items = [GenerationRecord(**json.loads(line)) for line in fh if line.strip()]
        meta = {k: v for k, v in data.items() if k not in ("rows", "summary", "stopped", "n_items")}
        return cls(
            rows=data["rows"],
            summary=data["summary"],
            items=items,
            stopped=data.get("stopped", False),
            meta=meta,
        )


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------- generation


def encode_prompt(tokenizer: Any, prompt: str | Sequence[int]) -> list[int]:
    """Token ids of a prompt; strings get BOS (when the tokenizer has one) like training episodes."""
    if not isinstance(prompt, str):
        return list(prompt)
    bos = getattr(tokenizer, "bos_token_id", None)
    return ([bos] if bos is not None else []) + list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def _cut(tokenizer: Any, new_ids: list[int], eos: set[int], stop: Sequence[str]) -> str:
    """Decoded continuation up to the first EOS or stop string (excluded), stripped."""
    for pos, tok in enumerate(new_ids):
        if tok in eos:
            new_ids = new_ids[:pos]
            break
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut].strip()


# (id(tokenizer), vocab size, chars) -> (tokenizer, mask); holding the tokenizer keeps its id unique.
_TRIGGERS: dict[tuple[int, int, str], tuple[Any, Any]] = {}


def _trigger_mask(tokenizer: Any, last_chars: str) -> Any:
    """Bool tensor over the vocabulary: tokens whose text contains one of `last_chars`.

    A stop string that was not in the continuation before this step can only end inside the newest
    token, so only rows whose newest token is a trigger need decoding. Built once per tokenizer.
    """
    import torch

    key = (id(tokenizer), len(tokenizer), last_chars)
    if key not in _TRIGGERS:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        flags = [any(c in text for c in last_chars) for text in texts] + [True]  # [n]: ids beyond the vocab
        _TRIGGERS[key] = (tokenizer, torch.tensor(flags, dtype=torch.bool))
    return _TRIGGERS[key][1]


def _stop_criterion(tokenizer: Any, stop: Sequence[str], prompt_len: int) -> Any:
    """A per-sequence StoppingCriteria: True for rows whose continuation contains a stop string."""
    import torch
    from transformers import StoppingCriteria

    stops = [s for s in stop if s]
    window = max(len(s) for s in stops) + 4  # tokens: each token of a stop string holds >= 1 of its chars
    last_chars = "".join(sorted({s[-1] for s in stops}))
    # Byte-level tokens of a multi-byte character decode to nothing alone: only prefilter ASCII endings.
    triggers = _trigger_mask(tokenizer, last_chars) if last_chars.isascii() else None

    class StopOnText(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if input_ids.shape[1] <= prompt_len:
                return done
            if triggers is None:
                rows = list(range(input_ids.shape[0]))
            else:
                newest = input_ids[:, -1].clamp(0, len(triggers) - 1).cpu()
                rows = triggers[newest].nonzero().flatten().tolist()
            if rows:
                tails = input_ids[rows, prompt_len:][:, -window:].tolist()
                texts = tokenizer.batch_decode(tails, skip_special_tokens=True)
                for row, text in zip(rows, texts, strict=True):
                    done[row] = any(s in text for s in stops)
            return done

    return StopOnText()


def _generate_batch(
    model: Any,
    tokenizer: Any,
    batch: list[list[int]],
    *,
    max_new_tokens: int,
    stop: Sequence[str],
    eos: set[int],
) -> list[str]:
    import torch
    from transformers import StoppingCriteriaList

    pad = tokenizer.pad_token_id
    if pad is None:
        pad = next(iter(eos)) if eos else 0
    width = max(len(ids) for ids in batch)
    # Left padding: every row's continuation starts at the same column; generate() derives position
    # ids from the attention mask, so a padded row is computed like the same row alone.
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], dtype=torch.long)
    device = getattr(model, "device", torch.device("cpu"))
    criteria = StoppingCriteriaList([_stop_criterion(tokenizer, stop, width)]) if any(stop) else None
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=pad,
        eos_token_id=sorted(eos) or None,
        stopping_criteria=criteria,
    )
    return [_cut(tokenizer, row[width:].tolist(), eos, stop) for row in out]


def iter_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str | Sequence[int]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: Sequence[str] = ("Question:",),
) -> Iterator[tuple[list[int], list[str]]]:
    """Like `generate` but yields (prompt indices, chains) per batch as soon as each batch finishes.

    Prompts are sorted by length (longest first, so an out-of-memory shows up at once) to limit padding.
    """
    import torch

    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    eos = eos_ids(model, tokenizer)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            with torch.inference_mode():
                chains = _generate_batch(
                    model,
                    tokenizer,
                    [encoded[i] for i in idx],
                    max_new_tokens=max_new_tokens,
                    stop=stop,
                    eos=eos,
                )
            yield idx, chains
    finally:
        model.train(was_training)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str | Sequence[int]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: Sequence[str] = ("Question:",),
) -> list[str]:
    """Greedy continuations of `prompts` (strings, or token id lists used as-is), in input order.

    Batched with left padding and a KV cache; each continuation ends at EOS or just before the first stop
    string, which is not included. In fp32 this gives the same chains as generating one prompt at a time
    (bf16 kernels round differently per batch shape, so a near-tied greedy choice can flip).
    """
    results: list[str] = [""] * len(prompts)
    for idx, chains in iter_generate(
        model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, stop=stop
    ):
        for i, chain in zip(idx, chains, strict=True):
            results[i] = chain
    return results


# --------------------------------------------------------------------------------------------- evaluation


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; 0 with one seed) of accuracy over seeds, per shot count."""
    by_shots: dict[int, list[float]] = {}
    for row in rows:
        by_shots.setdefault(row["shots"], []).append(row["accuracy"])
    return [
        {
            "shots": k,
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "n_seeds": len(accs),
        }
        for k, accs in by_shots.items()
    ]


def _answer_kind(config: EvalConfig, examples: Sequence[Example]) -> str:
    if config.answer_kind != "auto":
        return config.answer_kind
    try:
        from aicd.data.loaders import answer_kind_of
    except ImportError:
        answer_kind_of = None
    if answer_kind_of is not None:
        return answer_kind_of(config.dataset, list(examples))
    yesno = all(ex.answer.strip().lower() in ("yes", "no") for ex in examples)
    return "yesno" if examples and yesno else "number"


def _load(dataset: str, split: str, limit: int | None = None) -> list[Example]:
    from aicd.data.loaders import load_examples

    return load_examples(dataset, split, limit=limit)


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
    the model altogether (used by tests and to score precomputed chains). Identical prompts (e.g. 0-shot
    under every seed) are generated once. A model loaded here goes to `device` (default: cuda if
    available). Results are saved to `config.output_dir` when it is set.
    """
    callback = callback or EvalCallback()
    items = list(examples) if examples is not None else _load(config.dataset, config.split, config.limit)
    if examples is not None and config.limit is not None:
        items = items[: config.limit]
    if not items:
        raise DataError(f"dataset: '{config.dataset}' split '{config.split}' has no examples to evaluate")
    kind = _answer_kind(config, items)
    shot_counts = list(dict.fromkeys(config.shots))
    pool: list[Example] = []
    if max(shot_counts) > 0:
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

    if generate_fn is None and model is None:
        from aicd.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(config.model)
        model.to(device or default_device())
    elif model is not None and tokenizer is None:
        from aicd.models import load_tokenizer

        tokenizer = load_tokenizer(config.model)
    stop = (config.template.question_prefix.strip(),)

    def run(batch: list[Prompt]) -> list[str]:
        if generate_fn is not None:
            chains = list(generate_fn([p.text for p in batch]))
            if len(chains) != len(batch):
                raise ValueError(f"generate_fn returned {len(chains)} chains for {len(batch)} prompts")
            return chains
        return generate(
            model,
            tokenizer,
            [p.input_ids if p.input_ids is not None else p.text for p in batch],
            batch_size=len(batch),
            max_new_tokens=config.max_new_tokens,
            stop=stop,
        )

    total = len(shot_counts) * len(config.seeds) * len(items)
    bar = _progress_bar(total) if progress else None
    done = 0
    token_cache: dict[str, list[int]] = {}
    chain_cache: dict[Any, str] = {}
    records: list[GenerationRecord] = []
    rows: list[dict[str, Any]] = []
    stopped = False
    reuse = reuse or {}
    reused = 0

    def record(ex: Example, k: int, seed: int, prompt: Prompt, chain: str) -> GenerationRecord:
        extracted = extract_answer(chain, kind)
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
            correct=answers_match(extracted, ex.answer, kind),
        )

    def emit(batch: list[GenerationRecord]) -> None:
        nonlocal done
        if not batch:
            return
        done += len(batch)
        callback.on_items(batch)
        callback.on_progress(done, total)
        if bar is not None:
            bar.update(len(batch))

    try:
        for k in shot_counts:
            for seed in config.seeds:
                prompts = [
                    build_prompt(
                        ex.question,
                        sample_shots(pool, k, seed=seed, item=ex),
                        config.template,
                        tokenizer=tokenizer,
                        max_length=config.max_length,
                        max_new_tokens=config.max_new_tokens,
                        cache=token_cache,
                        demonstrations=config.demonstrations,
                    )
                    for ex in items
                ]
                keys = [tuple(p.input_ids) if p.input_ids is not None else p.text for p in prompts]
                combo: list[GenerationRecord | None] = [None] * len(items)
                cached = []
                for i, key in enumerate(keys):
                    chain = reuse.get((items[i].id, k, seed))
                    if chain is not None:
                        reused += 1
                        chain_cache.setdefault(key, chain)
                    elif key in chain_cache:
                        chain = chain_cache[key]
                    else:
                        continue
                    combo[i] = record(items[i], k, seed, prompts[i], chain)
                    cached.append(i)
                emit([combo[i] for i in cached])
                todo = sorted(set(range(len(items))) - set(cached), key=lambda i: -_length(prompts[i]))
                unique: dict[Any, list[int]] = {}
                for i in todo:
                    unique.setdefault(keys[i], []).append(i)
                groups = list(unique.values())
                for start in range(0, len(groups), config.batch_size):
                    if callback.should_stop():
                        stopped = True
                        break
                    chunk = groups[start : start + config.batch_size]
                    chains = run([prompts[g[0]] for g in chunk])
                    batch_records = []
                    for group, chain in zip(chunk, chains, strict=True):
                        chain_cache[keys[group[0]]] = chain
                        for i in group:
                            combo[i] = record(items[i], k, seed, prompts[i], chain)
                            batch_records.append(combo[i])
                    emit(batch_records)
                finished = [r for r in combo if r is not None]
                records.extend(finished)
                if stopped:
                    break
                rows.append(
                    {
                        "shots": k,
                        "seed": seed,
                        "accuracy": sum(r.correct for r in finished) / len(items),
                        "n": len(items),
                        "n_invalid": sum(r.extracted is None for r in finished),
                    }
                )
            if stopped:
                break
    finally:
        if bar is not None:
            bar.close()

    meta = {
        "config": config.model_dump(mode="json"),
        "answer_kind": kind,
        "std": "sample (ddof=1)",
        "reused": reused,
    }
    result = EvalResult(rows=rows, summary=summarize(rows), items=records, stopped=stopped, meta=meta)
    if config.output_dir:
        result.save(config.output_dir)
    return result


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _length(prompt: Prompt) -> int:
    return len(prompt.input_ids) if prompt.input_ids is not None else len(prompt.text)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eval", unit="item", dynamic_ncols=True)


def format_mean_std(mean: float, std: float) -> str:
    """Accuracy as a percentage: `45.3 ± 1.2`."""
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"
