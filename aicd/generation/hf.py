"""Greedy generation on a local transformers model: a slot scheduler over one shared KV cache.

Rows retire as they stop and free their slot. `batch_size` slots share one left-padded `DynamicCache`;
each step decodes every active row by one token; a row that emits EOS, completes a stop string
(transformers' `StopStringCriteria`) or reaches `max_new_tokens` leaves at once (its cache rows are
dropped, so finished rows stop costing compute), and when a quarter of the slots are free the next
prompts — longest first, so an out-of-memory shows at once and neighbours pad little — are prefilled and
joined to the cache. Position ids follow each row's own length, so in fp32 a row computes what it would alone.

A decode step does little besides the model's kernels, because for small models on CPU the rest cost as
much as the kernels (profiled on bench/bench_eval.py's student): the padding is a count per row, not a
mask grown by `torch.cat`; the step's attention mask is built in one comparison in the form transformers'
mask builder would hand the attention (none for sdpa when no row is padded), so the model skips that
builder; positions advance in place; the prefill computes logits for the last position only; the stop-string
check runs only on rows whose newest token can end a stop string; and GPT-2 models decode through
`lean.GPT2Decode` (the same kernels without transformers' per-call plumbing, bit-identical logits).

Why not transformers' own continuous batching (`model.generate_batch`, paged attention, 5.x): on CPU it
measured ~5× slower than padded `generate` on the same prompts (bench/results/eval.md) and it has no stop
strings; on a GPU, use the `vllm` backend. The cache appends in place (`kv_cache.SpareRoomCache`) rather
than re-allocating every step as transformers' DynamicCache does.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aicd.errors import AICDError
from aicd.generation.base import PromptInput
from aicd.generation.lean import lean_decoder
from aicd.generation.text import decode_continuation, encode_prompt, eos_ids
from aicd.memory import is_out_of_memory

REFILL_FRACTION = (
    4  # admit new prompts once 1/REFILL_FRACTION of the slots are free (each join copies the cache)
)


@dataclass
class _Batch:
    """The rows in flight: request index, generated ids, left padding, next positions and the shared KV cache.

    The padding is kept as a count per row (in Python), not as a [rows, T] mask grown by `torch.cat` every
    step: a decode step builds its mask from it in one comparison, or passes none when no row is padded.
    """

    index: list[int] = field(default_factory=list)
    generated: list[list[int]] = field(default_factory=list)
    pad: list[int] = field(default_factory=list)  # leading cache columns each row does not attend to
    width: int = 0  # columns in the cache
    positions: Any = None  # [rows, 1] long: position id of each row's next input token
    cache: Any = None  # a SpareRoomCache over `width` columns, left-padded

    def __len__(self) -> int:
        return len(self.index)


def _left_pad(t: Any, width: int, dim: int) -> Any:
    """Zero-pad tensor `t` on the left of `dim` up to `width`."""
    import torch

    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _join(batch: _Batch, index: list[int], first: list[int], pad: list[int], width: int, cache: Any) -> None:
    """Append freshly prefilled rows (`width` cache columns, the first `pad[i]` of row i padding) to the
    batch, left-padding the narrower side to a common width."""
    import torch

    positions = torch.tensor([[width - p] for p in pad], dtype=torch.long, device=cache.layers[0].keys.device)
    batch.index += index
    batch.generated += [[t] for t in first]
    if batch.cache is None:
        batch.pad, batch.width, batch.positions, batch.cache = pad, width, positions, cache
        return
    common = max(batch.width, width)
    batch.pad = [p + common - batch.width for p in batch.pad] + [p + common - width for p in pad]
    batch.width = common
    batch.positions = torch.cat([batch.positions, positions], dim=0)
    for old, new in zip(batch.cache.layers, cache.layers, strict=True):
        _assign(
            old,
            torch.cat([_left_pad(old.keys, common, 2), _left_pad(new.keys, common, 2)], dim=0),
            torch.cat([_left_pad(old.values, common, 2), _left_pad(new.values, common, 2)], dim=0),
        )


def _assign(layer: Any, keys: Any, values: Any) -> None:
    """Give a cache layer new keys/values (into a buffer with spare room when the layer has one)."""
    if hasattr(layer, "assign"):
        layer.assign(keys, values)
    else:
        layer.keys, layer.values = keys, values


def _keep(batch: _Batch, rows: list[int]) -> None:
    """Keep only `rows` (positions in the batch), then drop leading columns no remaining row attends to."""
    import torch

    batch.index = [batch.index[r] for r in rows]
    batch.generated = [batch.generated[r] for r in rows]
    if not rows:
        batch.pad, batch.width, batch.positions, batch.cache = [], 0, None, None
        return
    keep = torch.tensor(rows, device=batch.positions.device)
    batch.positions = batch.positions[keep]
    batch.cache.batch_select_indices(keep)
    start = min(batch.pad[r] for r in rows)
    batch.pad = [batch.pad[r] - start for r in rows]
    if start:
        batch.width -= start
        for layer in batch.cache.layers:
            _assign(layer, layer.keys[:, :, start:], layer.values[:, :, start:])


def _plain_causal(config: Any) -> bool:
    """True when every layer attends causally to all earlier tokens (no sliding window or chunks), so the
    padding mask alone is the whole attention mask of a one-token decode step."""
    types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in types):
        return False
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return not getattr(config, "attention_chunk_size", None) and getattr(config, "is_causal", True)


def _stop_enders(criteria: Any) -> frozenset[int] | None:
    """Token ids that can be the last token of a `StopStringCriteria` match (None: cannot tell, check all).

    A match needs a positive end length for the newest token (its `initial_match`), so a row whose newest
    token has none cannot have just completed a stop string; checking only the others gives the same answer.
    """
    try:
        vec, positions, strings = (
            criteria.embedding_vec,
            criteria.max_valid_positions,
            criteria.num_stop_strings,
        )
    except AttributeError:
        return None
    ends = vec[:, positions * strings : -1] > 0
    return frozenset(ends.any(dim=-1).nonzero().flatten().tolist())


class SlotScheduler:
    """Greedy decoding of many prompts through `batch_size` slots (see the module docstring)."""

    def __init__(
        self, model: Any, tokenizer: Any, *, batch_size: int, max_new_tokens: int, stop: Sequence[str]
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.stop = [s for s in stop if s]
        self.eos = eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad = pad if pad is not None else (min(self.eos) if self.eos else 0)
        self.device = getattr(model, "device", None)
        params = inspect.signature(model.forward).parameters
        # transformers 5.x renamed forward's `past_key_values` to `cache` (the old name warns until 5.40)
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        # prefill: the LM head on the last position only, as generate() does
        self.prefill_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        config = getattr(model, "config", None)
        attention = getattr(config, "_attn_implementation", None)
        self.mask_kind = attention if attention in ("sdpa", "eager") and _plain_causal(config) else "2d"
        self.lean = lean_decoder(model) if self.mask_kind != "2d" else None
        self.criteria = None
        self.enders: frozenset[int] | None = None
        if self.stop:
            from transformers import StopStringCriteria

            self.criteria = StopStringCriteria(tokenizer, self.stop)
            self.enders = _stop_enders(self.criteria)
        # tokens of the continuation the stop check looks at: each token of a stop string holds >= 1 char
        self.window = max((len(s) for s in self.stop), default=0) + 2

    def run(self, prompts: Sequence[PromptInput]) -> Iterator[tuple[int, str]]:
        """Yield `(index, chain)` as rows finish; the model is in eval mode meanwhile, then restored."""
        import torch

        encoded = [encode_prompt(self.tokenizer, p) for p in prompts]
        queue = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        batch = _Batch()
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        try:
            while queue or batch:
                free = self.batch_size - len(batch)
                if queue and (not batch or free >= max(1, self.batch_size // REFILL_FRACTION)):
                    admitted, queue = queue[:free], queue[free:]
                    with torch.inference_mode():
                        self._prefill(batch, admitted, [encoded[i] for i in admitted])
                else:
                    with torch.inference_mode():
                        self._step(batch)
                yield from self._retire(batch)
        finally:
            self.model.train(was_training)

    def _forward(self, **inputs: Any) -> Any:
        return self._guarded(self.model, **inputs, use_cache=True)

    def _guarded(self, forward: Any, *args: Any, **kwargs: Any) -> Any:
        """`forward(...)`, with running out of memory turned into a one-line error naming batch_size."""
        try:
            return forward(*args, **kwargs)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise AICDError(
                f"batch_size: {self.batch_size} prompts at once do not fit in memory on "
                f"{self.device or 'this device'} ({detail}); try --batch-size {max(1, self.batch_size // 2)} "
                "or a smaller --max-length"
            ) from None

    def _prefill(self, batch: _Batch, index: list[int], ids: list[list[int]]) -> None:
        import torch

        from aicd.generation.kv_cache import SpareRoomCache

        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[self.pad] * (width - len(x)) + x for x in ids], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as generate() derives them
        out = self._forward(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            **{self.cache_kwarg: SpareRoomCache()},
            **self.prefill_kwargs,
        )
        first = out.logits[:, -1].argmax(-1).tolist()
        _join(batch, index, first, [width - len(x) for x in ids], width, out.past_key_values)

    def _decode_mask(self, batch: _Batch, columns: int) -> Any:
        """The attention mask of a one-token step over `columns` cache columns, in the form the model's own
        mask builder would hand its attention (so the numbers are the same), built without that builder:
        sdpa gets None when no row is padded, else a [rows, 1, 1, columns] bool mask; eager the same as an
        additive float mask; any other attention the plain [rows, columns] padding mask."""
        import torch

        if self.mask_kind == "sdpa" and not any(batch.pad):
            return None
        pad = torch.tensor(batch.pad, device=batch.positions.device)[:, None]
        attend = torch.arange(columns, device=pad.device)[None, :] >= pad
        if self.mask_kind == "2d":
            return attend.long()
        attend = attend[:, None, None, :]
        if self.mask_kind == "sdpa":
            return attend
        dtype = batch.cache.layers[0].keys.dtype
        zero = torch.tensor(0.0, dtype=dtype, device=pad.device)
        return torch.where(attend, zero, torch.finfo(dtype).min)

    def _step(self, batch: _Batch) -> None:
        import torch

        last = torch.tensor([g[-1] for g in batch.generated], dtype=torch.long, device=self.device)
        mask = self._decode_mask(batch, batch.width + 1)
        if self.lean is not None:
            logits = self._guarded(self.lean, last[:, None], batch.positions, mask, batch.cache)
        else:
            out = self._forward(
                input_ids=last[:, None],
                attention_mask=mask,
                position_ids=batch.positions,
                **{self.cache_kwarg: batch.cache},
            )
            batch.cache, logits = out.past_key_values, out.logits
        batch.width += 1
        batch.positions = batch.positions + 1
        for row, tok in enumerate(logits[:, -1].argmax(-1).tolist()):
            batch.generated[row].append(tok)

    def _stopped_rows(self, batch: _Batch) -> set[int]:
        """Rows whose newest token completes a stop string (transformers' StopStringCriteria), asked only
        about rows whose newest token can end one."""
        import torch

        if self.criteria is None:
            return set()
        rows = [r for r, g in enumerate(batch.generated) if self.enders is None or g[-1] in self.enders]
        if not rows:
            return set()
        tails = [batch.generated[r][-self.window :] for r in rows]
        width = max(len(t) for t in tails)
        ids = torch.tensor([[self.pad] * (width - len(t)) + t for t in tails], dtype=torch.long)
        return {rows[i] for i in self.criteria(ids, None).nonzero().flatten().tolist()}

    def _retire(self, batch: _Batch) -> Iterator[tuple[int, str]]:
        stopped = self._stopped_rows(batch)
        keep = []
        done = []
        for row, gen in enumerate(batch.generated):
            if row in stopped or gen[-1] in self.eos or len(gen) >= self.max_new_tokens:
                done.append((batch.index[row], gen))
            else:
                keep.append(row)
        if done:
            _keep(batch, keep)
        for i, gen in done:
            yield i, decode_continuation(self.tokenizer, gen, self.eos, self.stop)


def stream_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[PromptInput],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: Sequence[str] = ("Question:",),
) -> Iterator[tuple[int, str]]:
    """Greedy chains of `prompts` (strings, or token id lists used as-is) as `(index, chain)` in finishing order."""
    scheduler = SlotScheduler(
        model, tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens, stop=stop
    )
    return scheduler.run(prompts)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[PromptInput],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: Sequence[str] = ("Question:",),
) -> list[str]:
    """Greedy continuations of `prompts` in input order, each ending at EOS or just before the first stop string.

    In fp32 this gives the same chains as generating one prompt at a time (bf16 kernels round differently
    per batch shape, so a near-tied greedy choice can flip).
    """
    chains = [""] * len(prompts)
    for i, chain in stream_generate(
        model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, stop=stop
    ):
        chains[i] = chain
    return chains


class HFBackend:
    """The `hf` backend: a local transformers model (loaded by the caller) and the slot scheduler."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int, max_new_tokens: int) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens

    def stream(self, prompts: Sequence[PromptInput], stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        return stream_generate(
            self.model,
            self.tokenizer,
            prompts,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
            stop=stop,
        )

    def close(self) -> None:
        """Nothing to release: the caller owns the model."""
