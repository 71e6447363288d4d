"""k-shot evaluation prompts, rendered and tokenized exactly like the training episodes.

A prompt is `Question: x1\\nAnswer: y1\\n\\n … Question: q\\nAnswer:`; every piece is tokenized on its own
(as `aicd.episodes.build_episode` does) so the student sees the same token boundaries it was trained on.
A demonstration's y is its rationale, or (`demonstrations="answer"`, for nocot students) its answer alone,
rendered by the same `shot_target` as the training episodes of that objective.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aicd.config import TemplateConfig
from aicd.data.record import Example
from aicd.episodes import render_prompt
from aicd.shot_selection import ShotSelection, ShotSelector

Demonstrations = Literal["rationale", "answer"]


@dataclass(frozen=True)
class Prompt:
    text: str
    input_ids: list[int] | None  # None when no tokenizer was given
    shot_ids: list[str]  # demonstrations that survived truncation, in prompt order


def demonstration_text(example: Example, demonstrations: Demonstrations = "rationale") -> str:
    """The text after `Answer:` of a demonstration, with its leading space, as in a training episode.

    "rationale": its first rationale (aicd/condgen/lm episodes), else its gold answer. "answer": its gold
    answer only, exactly as a `nocot` episode renders a shot.
    """
    if demonstrations == "rationale" and example.rationales:
        return " " + example.rationales[0].text.strip()
    if demonstrations not in ("rationale", "answer"):
        raise ValueError(f"demonstrations must be 'rationale' or 'answer', got '{demonstrations}'")
    if not example.answer:
        raise ValueError(f"demonstration {example.id} has no answer")
    return " " + example.answer


def sample_shots(pool: Sequence[Example], k: int, *, seed: int, item: Example) -> list[Example]:
    """k distinct demonstrations for one test item, seeded by (seed, item id); never the item itself
    (same id or same question, so a duplicate of the test question cannot leak its answer). An item with
    a `group` gets demonstrations of that group only (they share its hidden rule).

    Draws are nested: the shots for k are the first k of those for any larger k with the same seed, so
    accuracy across k compares prompts that differ only by the added demonstrations. Returns fewer than
    k shots when the pool is smaller.
    """
    if k <= 0:
        return []
    question = item.question.strip()
    if item.group is not None:  # demonstrations share the test item's hidden rule
        pool = [ex for ex in pool if ex.group == item.group]

    def allowed(ex: Example) -> bool:
        return ex.id != item.id and ex.question.strip() != question

    rng = random.Random(f"eval:{seed}:{item.id}")
    seen: set[int] = set()
    chosen: list[Example] = []
    while len(chosen) < k and len(seen) < len(pool):  # one draw at a time: smaller k = prefix
        i = rng.randrange(len(pool))
        if i not in seen and allowed(pool[i]):
            chosen.append(pool[i])
        seen.add(i)
    return chosen


def _encode(tokenizer: Any, text: str, cache: dict[str, list[int]]) -> list[int]:
    ids = cache.get(text)
    if ids is None:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        cache[text] = ids
    return ids


def build_prompt(
    question: str,
    shots: Sequence[Example],
    template: TemplateConfig,
    *,
    tokenizer: Any = None,
    max_length: int | None = None,
    max_new_tokens: int = 0,
    cache: dict[str, list[int]] | None = None,
    demonstrations: Demonstrations = "rationale",
) -> Prompt:
    """Render (and tokenize) the prompt; drop the earliest shots until prompt + max_new_tokens ≤ max_length.

    With a tokenizer, input_ids start with BOS when the tokenizer has one, as training episodes do.
    The test question itself is never cut, even when it alone exceeds the budget.
    """
    cache = {} if cache is None else cache
    shots = list(shots)
    while True:
        pieces: list[str] = []
        for i, ex in enumerate(shots):
            pieces.append(render_prompt(ex.question, template, first=(i == 0)))
            pieces.append(demonstration_text(ex, demonstrations))
        pieces.append(render_prompt(question, template, first=not shots))
        text = "".join(pieces)
        if tokenizer is None:
            return Prompt(text, None, [ex.id for ex in shots])
        bos = getattr(tokenizer, "bos_token_id", None)
        ids = ([bos] if bos is not None else []) + [t for p in pieces for t in _encode(tokenizer, p, cache)]
        if not shots or max_length is None or len(ids) + max_new_tokens <= max_length:
            return Prompt(text, ids, [ex.id for ex in shots])
        shots = shots[1:]


def select_demonstrations(
    pool: Sequence[Example],
    k: int,
    *,
    seed: int,
    item: Example,
    strategy: ShotSelection = "random",
    selector: ShotSelector | None = None,
) -> list[Example]:
    """k demonstrations for one test item by `strategy` (`aicd.shot_selection`), in prompt order; never the
    item itself (same id or same question). `selector` is the pool's BM25 index, built once per pool by the
    caller (built here when missing). Across k the chosen sets are nested for every strategy."""
    if strategy == "random":
        return sample_shots(pool, k, seed=seed, item=item)
    selector = selector or ShotSelector([ex.question for ex in pool])
    question = item.question.strip()
    picked = selector.select(
        item.question,
        k,
        strategy,
        seed=f"{seed}:{item.id}",
        allowed=lambda i: (
            pool[i].id != item.id
            and pool[i].question.strip() != question
            and (item.group is None or pool[i].group == item.group)
        ),  # demonstrations share its hidden rule
    )
    if strategy == "similar":  # the most similar last, next to the question (and the last to be truncated)
        picked = picked[::-1]
    return [pool[i] for i in picked]
