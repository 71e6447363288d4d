"""Greedy generation on a local transformers model: a slot scheduler over one shared KV cache.

Rows retire as they stop and free their slot. `batch_size` slots share one left-padded `DynamicCache`;
each step decodes every active row by one token; a row that emits EOS, completes a stop string
(transformers' `StopStringCriteria`) or reaches `max_new_tokens` leaves at once (its cache rows are
dropped, so finished rows stop costing compute), and when a quarter of the slots are free the next
prompts — longest first, so an out-of-memory shows at once and neighbours pad little — are prefilled and
joined to the cache. Position ids follow the attention mask, so in fp32 a row computes what it would alone.

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
from aicd.generation.text import decode_continuation, encode_prompt, eos_ids
from aicd.memory import is_out_of_memory

REFILL_FRACTION = (
    4  # admit new prompts once 1/REFILL_FRACTION of the slots are free (each join copies the cache)
)


@dataclass
class _Batch:
    """The rows in flight: their request index, generated ids, attention mask and KV cache."""

    index: list[int] = field(default_factory=list)
    generated: list[list[int]] = field(default_factory=list)
    mask: Any = None  # [rows, T] long, left-padded
    cache: Any = None  # DynamicCache over the same T columns

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


def _join(batch: _Batch, index: list[int], first: list[int], mask: Any, cache: Any) -> None:
    """Append freshly prefilled rows to the batch, left-padding the narrower side to a common width."""
    import torch

    batch.index += index
    batch.generated += [[t] for t in first]
    if batch.cache is None:
        batch.mask, batch.cache = mask, cache
        return
    width = max(batch.mask.shape[1], mask.shape[1])
    batch.mask = torch.cat([_left_pad(batch.mask, width, 1), _left_pad(mask, width, 1)], dim=0)
    for old, new in zip(batch.cache.layers, cache.layers, strict=True):
        _assign(
            old,
            torch.cat([_left_pad(old.keys, width, 2), _left_pad(new.keys, width, 2)], dim=0),
            torch.cat([_left_pad(old.values, width, 2), _left_pad(new.values, width, 2)], dim=0),
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
        batch.mask = batch.cache = None
        return
    keep = torch.tensor(rows, device=batch.mask.device)
    batch.mask = batch.mask[keep]
    batch.cache.batch_select_indices(keep)
    used = batch.mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else 0
    if start:
        batch.mask = batch.mask[:, start:]
        for layer in batch.cache.layers:
            _assign(layer, layer.keys[:, :, start:], layer.values[:, :, start:])


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
        # transformers 5.x renamed forward's `past_key_values` to `cache` (the old name warns until 5.40)
        self.cache_kwarg = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self.criteria = None
        if self.stop:
            from transformers import StopStringCriteria

            self.criteria = StopStringCriteria(tokenizer, self.stop)
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
        try:
            return self.model(**inputs, use_cache=True)
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
        )
        first = out.logits[:, -1].argmax(-1).tolist()
        _join(batch, index, first, mask.to(self.device), out.past_key_values)

    def _step(self, batch: _Batch) -> None:
        import torch

        last = torch.tensor([g[-1] for g in batch.generated], dtype=torch.long, device=self.device)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch), 1)], dim=1)
        positions = batch.mask.sum(-1, keepdim=True) - 1
        out = self._forward(
            input_ids=last[:, None],
            attention_mask=batch.mask,
            position_ids=positions,
            **{self.cache_kwarg: batch.cache},
        )
        batch.cache = out.past_key_values
        for row, tok in enumerate(out.logits[:, -1].argmax(-1).tolist()):
            batch.generated[row].append(tok)

    def _stopped_rows(self, batch: _Batch) -> set[int]:
        """Rows whose newest token completes a stop string (transformers' StopStringCriteria)."""
        import torch

        if self.criteria is None:
            return set()
        tails = [g[-self.window :] for g in batch.generated]
        width = max(len(t) for t in tails)
        ids = torch.tensor([[self.pad] * (width - len(t)) + t for t in tails], dtype=torch.long)
        return set(self.criteria(ids, None).nonzero().flatten().tolist())

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
