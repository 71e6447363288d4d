"""The interface evaluation uses, whatever generates: prompts in, `(index, chain)` out as each one finishes.

Every backend decodes greedily, stops at EOS or at the first stop string (which the chain excludes) or after
`max_new_tokens`, and returns the continuation stripped (`aicd.generation.text`), so the same prompts give the
same saved records on any of them. Greedy means the argmax of the model's logits: penalties or sampling
defaults in a checkpoint's generation_config.json are not applied on any backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

PromptInput = str | Sequence[int]  # text, or token ids used as they are (what evaluation sends)


class GenerationBackend(Protocol):
    name: str

    def stream(self, prompts: Sequence[PromptInput], stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        """Yield `(index into prompts, chain)` once per prompt, in completion order."""
        ...

    def close(self) -> None:
        """Release what the backend holds (an engine, an HTTP client)."""
        ...


def generate_all(
    backend: GenerationBackend, prompts: Sequence[PromptInput], stop: Sequence[str]
) -> list[str]:
    """Every chain, in input order."""
    chains: list[str | None] = [None] * len(prompts)
    for i, chain in backend.stream(prompts, stop):
        chains[i] = chain
    missing = [i for i, c in enumerate(chains) if c is None]
    if missing:
        raise RuntimeError(f"{backend.name} backend returned no chain for {len(missing)} prompts")
    return [c for c in chains if c is not None]
