"""n-shot training episodes: sampling from an annotated train set and tokenization with per-token weights."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aicd.config import TemplateConfig
from aicd.data.record import Example
from aicd.objective_registry import answer_only_objectives, objective_spec, shot_weight
from aicd.progress import NO_PROGRESS, Progress
from aicd.shot_selection import ShotSelector

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
    """The text after `Answer:` that the student must produce (the objective's `target` rule)."""
    if objective_spec(objective).target == "answer":
        if shot.answer is None or shot.answer == "":
            raise ValueError(f"objective '{objective}' needs Shot.answer")
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


@dataclass(frozen=True)
class _EncodedShot:
    """One shot's texts and token ids: its prompt as a later shot (with the separator) and its target."""

    prompt: str
    prompt_ids: list[int]
    target: str
    target_ids: list[int]


def _encode_shot(
    tokenizer: Any,
    shot: Shot,
    objective: str,
    template: TemplateConfig,
    first: bool,
    cache: dict[str, list[int]] | None,
) -> _EncodedShot:
    prompt = render_prompt(shot.question, template, first=first)
    target = shot_target(shot, objective)
    return _EncodedShot(prompt, _encode(tokenizer, prompt, cache), target, _encode(tokenizer, target, cache))


def _assemble(
    tokenizer: Any, encoded: Sequence[_EncodedShot], objective: str, weights: Sequence[float]
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
    n = len(encoded)
    for i, shot in enumerate(encoded):
        add(shot.prompt_ids, 0.0, "prompt", i, shot.prompt)
        add(shot.target_ids, shot_weight(objective, i, n, weights), "target", i, shot.target)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:  # teaches the student to stop after the final rationale
        add([eos], shot_weight(objective, n - 1, n, weights), "eos", n - 1, tokenizer.eos_token or "")
    if objective_spec(objective).weights == "all":
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

    Linear in the shots that survive: shots are encoded once each, from the last one backwards, and the
    walk stops as soon as the shots after a start no longer fit, so a huge n_shots costs what fits.
    """
    from aicd.objectives import omega_weights

    objective_spec(objective)  # ValueError naming the known objectives
    if not shots:
        raise ValueError("an episode needs at least one shot")
    n = len(shots)
    weights = list(weights) if weights is not None else omega_weights("paper", n)
    omega_weights("custom", n, weights=weights)  # validates length and sign
    template = template or TemplateConfig()
    cache = {} if cache is None else cache  # a shot's target is encoded once for both prompt variants
    fixed = int(getattr(tokenizer, "bos_token_id", None) is not None) + int(
        getattr(tokenizer, "eos_token_id", None) is not None
    )
    later: list[_EncodedShot] = []  # shots start+1 … n-1 as later shots, last shot first
    tail = 0  # their token count
    best: tuple[int, _EncodedShot] | None = None  # the earliest start that fits, and its first shot
    final_alone = 0
    for start in range(n - 1, -1, -1):
        shot = _encode_shot(tokenizer, shots[start], objective, template, False, cache)
        if max_length is not None and fixed + len(shot.target_ids) + tail > max_length:
            if not final_alone:  # the final shot itself does not fit: say by how much
                first = _encode_shot(tokenizer, shots[start], objective, template, True, cache)
                final_alone = fixed + len(first.prompt_ids) + len(first.target_ids)
            break  # no start at or before this one can fit: the tail only grows
        first = _encode_shot(tokenizer, shots[start], objective, template, True, cache)
        length = fixed + len(first.prompt_ids) + len(first.target_ids) + tail
        final_alone = final_alone or length
        if max_length is None or length <= max_length:
            best = (start, first)
        later.append(shot)
        tail += len(shot.prompt_ids) + len(shot.target_ids)
    if best is None:
        raise EpisodeTooLong(
            f"the final shot alone needs {final_alone} tokens, more than max_length={max_length}"
        )
    start, first = best
    encoded = [first, *reversed(later[: n - 1 - start])]
    episode = _assemble(tokenizer, encoded, objective, weights[start:])
    episode.n_dropped = start
    return episode


class EpisodeShots(Sequence[Shot]):
    """The shots of one sampled episode, made on access: `build_episode` reads them from the last one back
    and stops at what fits, so an episode of thousands of shots costs only the few it keeps."""

    def __init__(self, usable: Sequence[Example], chosen: Any, picks: Any, objective: str):
        self._usable, self._chosen, self._picks, self._objective = usable, chosen, picks, objective

    def __len__(self) -> int:
        return len(self._chosen)

    def _shot(self, i: int) -> Shot:
        ex = self._usable[int(self._chosen[i])]
        cot = ex.rationales and objective_spec(self._objective).needs_rationales
        rationale = ex.rationales[int(self._picks[i])].text if cot else ""
        return Shot(question=ex.question, rationale=rationale, answer=ex.answer)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._shot(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._shot(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container semantics, like a list

    def __repr__(self) -> str:
        return f"EpisodeShots({list(self)!r})"


def sample_episode_shots(
    examples: Sequence[Example],
    n_shots: int,
    *,
    seed: int,
    epoch: int = 0,
    objective: str = "aicd",
    progress: Progress = NO_PROGRESS,
    shot_selection: str = "random",
) -> list[EpisodeShots]:
    """One episode per example per epoch, with that example as the final shot.

    The other n−1 shots are distinct other examples, and each shot uses one of its example's
    rationales at random; all draws are seeded by (seed, epoch). Examples without a rationale are
    skipped for CoT objectives. Draws are numpy's and shots are made on access (`EpisodeShots`), so
    n_shots far above the dataset size stays cheap; `progress.check()` is called per episode.
    Examples with a `group` (a shared hidden rule) get context shots from their own group only.
    `shot_selection` "similar" / "diverse" picks the context by BM25 instead (`aicd.shot_selection`), the
    most similar shot nearest the final one; rationales are still drawn at random.
    """
    import numpy as np

    needs_rationales = objective_spec(objective).needs_rationales
    usable = [ex for ex in examples if not needs_rationales or ex.rationales]
    if not usable:
        raise ValueError(
            f"no example has a rationale; annotate the dataset first or use objective {answer_only_objectives()}"
        )
    digest = hashlib.sha256(f"{seed}:{epoch}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    n = len(usable)
    counts = np.array([max(len(ex.rationales), 1) for ex in usable], dtype=np.int64)
    groups: dict[str | None, list[int]] = {}
    where = np.empty(n, dtype=np.int64)  # each example's position within its group
    for i, ex in enumerate(usable):
        where[i] = len(groups.setdefault(ex.group, []))
        groups[ex.group].append(i)
    members_of = {g: np.array(m, dtype=np.int64) for g, m in groups.items()}
    selector = ShotSelector([ex.question for ex in usable]) if shot_selection != "random" else None
    episodes = []
    for idx in rng.permutation(n).tolist():
        progress.check()
        members = members_of[usable[idx].group]  # context shots share the final shot's group (one if none)
        k = min(n_shots - 1, len(members) - 1)
        if selector is not None:
            group = usable[idx].group
            picked = selector.select(
                usable[idx].question,
                k,
                shot_selection,  # type: ignore[arg-type]
                seed=f"{seed}:{epoch}:{idx}",
                allowed=lambda i, _g=group, _idx=idx: i != _idx and usable[i].group == _g,
            )
            others = np.array(picked[::-1], dtype=np.int64)
        else:
            others = (
                rng.choice(len(members) - 1, size=k, replace=False) if k > 0 else np.empty(0, dtype=np.int64)
            )
            others = members[others + (others >= where[idx])]  # skip idx itself; it comes last
        chosen = np.append(others, idx).astype(np.int32)
        picks = (rng.random(k + 1) * counts[chosen]).astype(np.int32)
        episodes.append(EpisodeShots(usable, chosen, picks, objective))
    return episodes
