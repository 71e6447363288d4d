"""Which demonstrations go with a question: `random` (the paper), `similar` or `diverse` (its Appendix E).

- random: seeded uniform draws (`aicd.prompts.sample_shots`, nested across k).
Imports nothing of ours (the configs name the strategies); `aicd.prompts.select_demonstrations` applies them.
- similar: the pool questions closest to the query by BM25 (`rank_bm25`, over lower-cased word tokens;
  nothing downloaded), ties broken by a seeded shuffle.
- diverse: a seeded first pick, then each next shot the candidate least similar (BM25) to the shots already
  chosen (greedy max-min), so the context covers different kinds of question.
Both deterministic strategies are nested like `random`: the shots for k are the first k of those for any
larger k. The same selector picks the context shots of a training episode (`sample_episode_shots`) and the
demonstrations of an evaluation prompt, so a sweep over `shot_selection` changes both together.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

ShotSelection = Literal["random", "similar", "diverse"]
SHOT_SELECTIONS: tuple[str, ...] = ("random", "similar", "diverse")
_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (BM25's documents and queries)."""
    return _WORD.findall(text.lower())


class ShotSelector:
    """BM25 over a pool's questions, built once and queried per item (for `similar` and `diverse`)."""

    def __init__(self, questions: Sequence[str]):
        from rank_bm25 import BM25Okapi

        docs = [tokenize(q) or ["_"] for q in questions]  # BM25Okapi divides by the mean document length
        self._bm25: Any = BM25Okapi(docs)
        self.size = len(docs)

    def scores(self, question: str) -> Any:
        """BM25 score of every pool question for `question` (a numpy array, pool order)."""
        return self._bm25.get_scores(tokenize(question) or ["_"])

    def select(
        self,
        question: str,
        k: int,
        strategy: ShotSelection,
        *,
        seed: str | int,
        allowed: Callable[[int], bool] = lambda i: True,
    ) -> list[int]:
        """Indices of k pool entries for `question` (fewer when the pool is smaller); never a disallowed one."""
        rng = random.Random(f"shots:{strategy}:{seed}")
        candidates = [i for i in range(self.size) if allowed(i)]
        rng.shuffle(candidates)  # the seeded tie-break (stable sorts keep this order among equal scores)
        if k <= 0 or not candidates:
            return []
        if strategy == "similar":
            scores = self.scores(question)
            return sorted(candidates, key=lambda i: -scores[i])[:k]
        if strategy == "diverse":
            chosen = [candidates[0]]
            closest = self.scores_of(candidates[0])  # each candidate's highest similarity to a chosen shot
            while len(chosen) < min(k, len(candidates)):
                taken = set(chosen)
                nxt = min((i for i in candidates if i not in taken), key=lambda i: closest[i])
                chosen.append(nxt)
                closest = [max(a, b) for a, b in zip(closest, self.scores_of(nxt), strict=True)]
            return chosen
        raise ValueError(f"shot_selection must be one of {', '.join(SHOT_SELECTIONS)}; got '{strategy}'")

    def scores_of(self, index: int) -> list[float]:
        """Similarity of every pool question to pool question `index` (BM25 with it as the query)."""
        return list(self._bm25.get_scores(self._bm25_doc(index)))

    def _bm25_doc(self, index: int) -> list[str]:
        return [w for w, n in self._bm25.doc_freqs[index].items() for _ in range(n)]
