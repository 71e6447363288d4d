"""Step-by-step correctness of a generated chain against a programmatic (synthetic) gold rationale.

Answer accuracy credits a chain that reaches the right number by a wrong route (a lucky guess, a copied
answer). For synthetic data the gold chain is known exactly, so each generated step is compared with the
gold step at the same position: `bonus=4`, `5+3=8`, `8+4=12` (spaces ignored). A chain is correct when it
has exactly the gold steps, in order, and announces the gold answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aicd.answers import answers_match, extract_answer

# A rule statement (`bonus=4`) or one arithmetic step (`5+3=8`, `5 - 3 = 2`).
_STEP = re.compile(r"bonus\s*=\s*-?\d+|-?\d+\s*[+\-]\s*\d+\s*=\s*-?\d+")


@dataclass(frozen=True)
class ChainScore:
    """How many gold steps the chain reproduced in place, and whether the whole chain is right."""

    n_gold: int
    n_correct: int  # gold steps matched at their position
    n_generated: int  # steps the chain wrote
    answer_correct: bool
    step_ok: tuple[bool, ...] = ()  # per gold step: matched at its position

    @property
    def chain_correct(self) -> bool:
        return self.n_correct == self.n_gold == self.n_generated and self.answer_correct


def chain_steps(text: str) -> list[str]:
    """The steps of a chain in order, whitespace removed: `bonus=4. 5+3=8.` → ["bonus=4", "5+3=8"]."""
    return [re.sub(r"\s+", "", m.group()) for m in _STEP.finditer(text or "")]


def score_chain(generated: str, gold_rationale: str, gold_answer: str) -> ChainScore:
    """Compare `generated` with the gold chain step by step (position by position)."""
    gold = chain_steps(gold_rationale)
    steps = chain_steps(generated)
    step_ok = tuple(i < len(steps) and steps[i] == g for i, g in enumerate(gold))
    return ChainScore(
        n_gold=len(gold),
        n_correct=sum(step_ok),
        n_generated=len(steps),
        answer_correct=answers_match(extract_answer(generated, "number"), gold_answer, "number"),
        step_ok=step_ok,
    )
