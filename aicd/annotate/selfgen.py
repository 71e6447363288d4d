"""Sampling rationales from a local HF model for `source=self` (STaR's rationalisation: the hint is in the prompt).

The evaluation's `generate` is greedy; rationalisation needs k diverse samples at a temperature, so this module
samples with `model.generate(do_sample=True)` in left-padded batches and cuts each continuation at EOS or a stop
string the way evaluation does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aicd.evaluate import encode_prompt, eos_ids


def sample_continuations(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    temperature: float,
    max_new_tokens: int,
    stop: Sequence[str] = ("Question:",),
    seed: int = 0,
) -> list[tuple[str, str, int, int]]:
    """One sampled continuation per prompt: (text, finish_reason, prompt_tokens, completion_tokens)."""
    import torch

    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    eos = sorted(eos_ids(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], dtype=torch.long)
    device = getattr(model, "device", torch.device("cpu"))
    torch.manual_seed(seed)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.inference_mode():
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                use_cache=True,
                pad_token_id=pad,
                eos_token_id=eos or None,
                **(sampling if temperature > 0 else {"do_sample": False}),
            )
    finally:
        model.train(was_training)
    results = []
    for ids, row in zip(encoded, out, strict=True):
        new = row[width:].tolist()
        finish = "length"
        for pos, tok in enumerate(new):
            if tok in eos:
                new, finish = new[:pos], "stop"
                break
        text = tokenizer.decode(new, skip_special_tokens=True)
        cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        results.append((text.strip(), finish, len(ids), len(new)))
    return results
