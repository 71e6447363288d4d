"""What every backend does the same way: prompt token ids, EOS ids, and cutting a continuation at a stop string."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def encode_prompt(tokenizer: Any, prompt: str | Sequence[int]) -> list[int]:
    """Token ids of a prompt; strings get BOS (when the tokenizer has one) like training episodes."""
    if not isinstance(prompt, str):
        return list(prompt)
    bos = getattr(tokenizer, "bos_token_id", None)
    return ([bos] if bos is not None else []) + list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids of the tokenizer and of the model's generation config (either may list several)."""
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


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to the first stop string (excluded), stripped: the chain every backend returns."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut].strip()


def decode_continuation(tokenizer: Any, new_ids: Sequence[int], eos: set[int], stop: Sequence[str]) -> str:
    """Generated ids -> chain: up to the first EOS (excluded), decoded without specials, cut at a stop string."""
    ids = list(new_ids)
    for pos, tok in enumerate(ids):
        if tok in eos:
            ids = ids[:pos]
            break
    return cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop)
