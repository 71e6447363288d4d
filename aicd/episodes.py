"""n-shot training episodes: sampling from an annotated train set and tokenization with per-token weights."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aicd.config import TemplateConfig
from aicd.data.record import Example

SpanKind = Literal["bos", "prompt", "target", "eos"]


@dataclass(frozen=True)
class Shot:
    """One (question, rationale) demonstration; `answer` is the target of the `nocot` objective."""

    question: str
    rationale: str = ""
    answer: str | None = None


@dataclass(frozen=True)
class Span:
    """Tokens [start, end) of one part of an episode, for inspection and the UI's weight shading."""

    start: int
    end: int
    kind: SpanKind
    shot: int  # index into the surviving shots
    weight: float
    text: str


@dataclass
class Episode:
    input_ids: list[int]
    loss_weights: list[float]  # loss_weights[t] weights predicting input_ids[t] from input_ids[:t]
    n_shots: int  # shots that survived truncation
    n_dropped: int = 0  # earliest shots dropped to fit max_length
    spans: list[Span] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


class EpisodeTooLong(ValueError):
    """Even the final shot alone does not fit max_length (the final rationale is never cut)."""


def shot_target(shot: Shot, objective: str) -> str:
    """The text after `Answer:` that the student must produce."""
    if objective == "nocot":
        if shot.answer is None or shot.answer == "":
            raise ValueError("objective 'nocot' needs Shot.answer")
        return " " + shot.answer
    if not shot.rationale:
        raise ValueError(f"objective '{objective}' needs Shot.rationale")
    return " " + shot.rationale.strip()


def render_prompt(shot_question: str, template: TemplateConfig, first: bool) -> str:
    """`Question: x\\nAnswer:` with the separator in front of every shot but the first."""
    sep = "" if first else template.separator
    return f"{sep}{template.question_prefix}{shot_question.strip()}{template.answer_prefix}"


def _encode(tokenizer: Any, text: str, cache: dict[str, list[int]] | None) -> list[int]:
    if cache is not None and text in cache:
        return cache[text]
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if cache is not None:
        cache[text] = ids
    return ids


def _target_weight(objective: str, i: int, n: int, weights: Sequence[float]) -> float:
    if objective == "condgen":
        return 1.0 if i == n - 1 else 0.0
    return float(weights[i])  # aicd, nocot (answers), lm (overridden below)


def _assemble(
    tokenizer: Any,
    shots: Sequence[Shot],
    objective: str,
    weights: Sequence[float],
    template: TemplateConfig,
    cache: dict[str, list[int]] | None,
) -> Episode:
    ids: list[int] = []
    w: list[float] = []
    spans: list[Span] = []

    def add(tokens: list[int], weight: float, kind: SpanKind, shot: int, text: str) -> None:
        spans.append(Span(len(ids), len(ids) + len(tokens), kind, shot, weight, text))
        ids.extend(tokens)
        w.extend([weight] * len(tokens))

    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        add([bos], 0.0, "bos", 0, tokenizer.bos_token or "")
    n = len(shots)
    for i, shot in enumerate(shots):
        prompt = render_prompt(shot.question, template, first=(i == 0))
        target = shot_target(shot, objective)
        add(_encode(tokenizer, prompt, cache), 0.0, "prompt", i, prompt)
        add(_encode(tokenizer, target, cache), _target_weight(objective, i, n, weights), "target", i, target)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:  # teaches the student to stop after the final rationale
        add([eos], _target_weight(objective, n - 1, n, weights), "eos", n - 1, tokenizer.eos_token or "")
    if objective == "lm":
        w = [0.0] + [1.0] * (len(ids) - 1)
        spans = [Span(s.start, s.end, s.kind, s.shot, 1.0 if s.start > 0 else 0.0, s.text) for s in spans]
    return Episode(input_ids=ids, loss_weights=w, n_shots=n, spans=spans)


def build_episode(
    tokenizer: Any,
    shots: Sequence[Shot],
    objective: str = "aicd",
    weights: Sequence[float] | None = None,
    *,
    template: TemplateConfig | None = None,
    max_length: int | None = None,
    cache: dict[str, list[int]] | None = None,
) -> Episode:
    """Tokenize `Question: x1 Answer: y1 … Question: xn Answer: yn` with a weight per token.

    aicd: rationale i weighted ω_i (`weights`, default the paper schedule). condgen: only the last
    rationale. lm: every token after the first. nocot: answers instead of rationales, weighted ω_i.
    If the episode exceeds `max_length`, the earliest shots are dropped first; `n_dropped` says how many.
    """
    from aicd.config import OBJECTIVES
    from aicd.objectives import omega_weights

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; got '{objective}'")
    if not shots:
        raise ValueError("an episode needs at least one shot")
    n = len(shots)
    weights = list(weights) if weights is not None else omega_weights("paper", n)
    omega_weights("custom", n, weights=weights)  # validates length and sign
    template = template or TemplateConfig()
    for start in range(n):
        ep = _assemble(tokenizer, shots[start:], objective, weights[start:], template, cache)
        if max_length is None or len(ep) <= max_length:
            ep.n_dropped = start
            return ep
    raise EpisodeTooLong(f"the final shot alone needs {len(ep)} tokens, more than max_length={max_length}")


def sample_episode_shots(
    examples: Sequence[Example], n_shots: int, *, seed: int, epoch: int = 0, objective: str = "aicd"
) -> list[list[Shot]]:
    """One episode per example per epoch, with that example as the final shot.

    The other n−1 shots are distinct other examples, and each shot uses one of its example's
    rationales at random; all draws are seeded by (seed, epoch). Examples without a rationale are
    skipped for CoT objectives.
    """
    rng = random.Random(f"{seed}:{epoch}")
    usable = [ex for ex in examples if objective == "nocot" or ex.rationales]
    if not usable:
        raise ValueError("no example has a rationale; annotate the dataset first or use objective 'nocot'")
    order = list(range(len(usable)))
    rng.shuffle(order)
    k = min(n_shots - 1, len(usable) - 1)
    episodes = []
    for idx in order:
        others = rng.sample(range(len(usable) - 1), k)
        context = [usable[j if j < idx else j + 1] for j in others]  # skip idx itself
        episodes.append([_to_shot(ex, rng, objective) for ex in [*context, usable[idx]]])
    return episodes


def _to_shot(ex: Example, rng: random.Random, objective: str) -> Shot:
    rationale = rng.choice(ex.rationales).text if ex.rationales and objective != "nocot" else ""
    return Shot(question=ex.question, rationale=rationale, answer=ex.answer)
