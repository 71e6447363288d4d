"""A seeded generator of multi-step arithmetic word problems with programmatic rationales ("arith").

It exists so that the whole pipeline (train → evaluate → sweep → plots) can be exercised offline, on CPU,
by a tiny byte-level student trained from scratch. Problems are short (every character is a token for the
tiny models) and need 2–4 chained additions/subtractions: a `nocot` student must compute the result in
one go, while a chain-of-thought student can do one small operation per step, so CoT genuinely helps.
Every example carries `k` paraphrased rationales (mimicking k teacher samples), each ending with
"So, the answer is N." as teacher rationales do.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from aicd.data.record import Example, Rationale
from aicd.errors import DataError

NAMES = [
    "Ann",
    "Bob",
    "Cal",
    "Dee",
    "Eve",
    "Fay",
    "Gus",
    "Hal",
    "Ida",
    "Jo",
    "Kim",
    "Lee",
    "Max",
    "Ned",
    "Oli",
    "Pam",
    "Ray",
    "Sam",
    "Tom",
    "Uma",
    "Val",
    "Wes",
    "Zoe",
    "Mia",
]
OBJECTS = [
    "pens",
    "cards",
    "eggs",
    "apples",
    "books",
    "coins",
    "cups",
    "shells",
    "toys",
    "plums",
    "hats",
    "rocks",
]
ADD = ["buys {n}", "gets {n}", "finds {n}", "wins {n}", "makes {n}"]
SUB = ["loses {n}", "sells {n}", "gives away {n}", "uses {n}", "drops {n}"]
START = ["{name} has {n} {obj}", "{name} owns {n} {obj}", "{name} starts with {n} {obj}"]
ASK = ["How many {obj} now?", "How many {obj} are left?", "How many does {name} have?"]

# Fixed-width variants: every name, object and verb has the same length and numbers are single digits, so
# each number sits at a fixed offset. A byte-level student trained from scratch for a few hundred steps can
# then find the numbers by position; it cannot yet learn content-based copying (induction) in that budget.
FW_NAMES = [n for n in NAMES if len(n) == 3]
FW_OBJECTS = ["pens", "eggs", "cups", "hats", "toys", "cars", "mugs", "keys", "buns", "figs"]
FW_ADD = ["finds {n}", "makes {n}", "earns {n}", "grabs {n}"]
FW_SUB = ["loses {n}", "sells {n}", "drops {n}", "gives {n}"]
FW_START = ["{name} has {n} {obj}", "{name} got {n} {obj}"]
FW_ASK = ["How many now?", "What is left?"]

SPLITS = {"train": "train", "test": "test", "dev": "test", "validation": "test", "val": "test"}
DEFAULT_SIZES = {"train": 2000, "test": 300}
TEST_BUCKETS = 5  # a question is a test question iff hash(question) % 100 < TEST_BUCKETS


@dataclass(frozen=True)
class ArithSpec:
    """Knobs of the generator: operand range, result range, number of operations, rationales per question."""

    min_steps: int = 2
    max_steps: int = 4
    max_operand: int = 9
    max_value: int = 19
    k: int = 3
    fixed_width: bool = False  # same-length words, ", " joins, single digits (needs max_value <= 9)

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(
                f"steps: need 1 <= min_steps <= max_steps, got {self.min_steps}..{self.max_steps}"
            )
        if self.fixed_width and self.max_value > 9:
            raise ValueError("fixed_width needs single-digit values (max_value <= 9)")


def _steps(rng: random.Random, spec: ArithSpec) -> tuple[int, list[tuple[str, int]]]:
    """A start value and a list of (op, n) that keeps every intermediate value within [0, max_value]."""
    n_steps = rng.randint(spec.min_steps, spec.max_steps)
    value = start = rng.randint(2, spec.max_operand)
    ops: list[tuple[str, int]] = []
    for _ in range(n_steps):
        can_sub = value >= 1
        can_add = value + 1 <= spec.max_value
        op = rng.choice([o for o, ok in (("+", can_add), ("-", can_sub)) if ok])
        hi = min(spec.max_operand, spec.max_value - value) if op == "+" else min(spec.max_operand, value)
        n = rng.randint(1, hi)
        value = value + n if op == "+" else value - n
        ops.append((op, n))
    return start, ops


def _question(rng: random.Random, name: str, obj: str, start: int, ops: list[tuple[str, int]]) -> str:
    """`Ann has 5 pens, buys 3, loses 2 and finds 4. How many pens now?` (short: every char is a token)."""
    clauses = [rng.choice(ADD if op == "+" else SUB).format(n=n) for op, n in ops]
    head = rng.choice(START).format(name=name, n=start, obj=obj)
    body = ", ".join([head, *clauses[:-1]]) + " and " + clauses[-1]
    return f"{body}. {rng.choice(ASK).format(obj=obj, name=name)}"


def _question_fixed(rng: random.Random, name: str, obj: str, start: int, ops: list[tuple[str, int]]) -> str:
    """`Ann has 5 pens, finds 3, loses 2, grabs 4. How many now?` with every number at a fixed offset."""
    clauses = [rng.choice(FW_ADD if op == "+" else FW_SUB).format(n=n) for op, n in ops]
    head = rng.choice(FW_START).format(name=name, n=start, obj=obj)
    return ", ".join([head, *clauses]) + ". " + rng.choice(FW_ASK)


def _chain(start: int, ops: list[tuple[str, int]]) -> list[tuple[int, str, int, int]]:
    out, value = [], start
    for op, n in ops:
        new = value + n if op == "+" else value - n
        out.append((value, op, n, new))
        value = new
    return out


def rationales(start: int, ops: list[tuple[str, int]], k: int = 3) -> list[str]:
    """Up to 3 paraphrases of the same step-by-step computation, each ending 'So, the answer is N.'."""
    chain = _chain(start, ops)
    answer = chain[-1][3]
    styles = [
        " ".join(f"{a}{op}{b}={c}." for a, op, b, c in chain),
        " ".join(f"{a} {op} {b} = {c}." for a, op, b, c in chain),
        "We have " + ", ".join(f"{a}{op}{b}={c}" for a, op, b, c in chain) + ".",
    ]
    return [f"{s} So, the answer is {answer}." for s in styles[: max(1, k)]]


def make_example(rng: random.Random, idx: str, spec: ArithSpec = ArithSpec()) -> Example:
    """One problem with its gold answer and `spec.k` teacher-like rationales."""
    return _example(idx, *_draw(rng, spec), spec)


def _draw(rng: random.Random, spec: ArithSpec) -> tuple[str, int, list[tuple[str, int]]]:
    if spec.fixed_width:
        name, obj = rng.choice(FW_NAMES), rng.choice(FW_OBJECTS)
        start, ops = _steps(rng, spec)
        return _question_fixed(rng, name, obj, start, ops), start, ops
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    start, ops = _steps(rng, spec)
    return _question(rng, name, obj, start, ops), start, ops


def _example(idx: str, question: str, start: int, ops: list[tuple[str, int]], spec: ArithSpec) -> Example:
    rats = [
        Rationale(text=t, source="gold", model="arith-generator", meta={"style": i})
        for i, t in enumerate(rationales(start, ops, spec.k))
    ]
    return Example(id=idx, question=question, answer=str(_chain(start, ops)[-1][3]), rationales=rats)


def _is_test_question(question: str) -> bool:
    """A fixed partition of all possible questions, so train and test never share one, whatever the sizes."""
    digest = hashlib.blake2b(question.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 100 < TEST_BUCKETS


def generate(
    split: str = "train", n: int | None = None, *, seed: int = 0, spec: ArithSpec = ArithSpec()
) -> list[Example]:
    """`n` distinct problems of `split`; the same (split, n, seed, spec) always gives the same examples.

    Train and test questions come from disjoint partitions of the question space (by hash), so a test
    question never appears in any train split. A smaller `n` gives a prefix of a larger one.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got '{split}'")
    split = SPLITS[split]
    n = DEFAULT_SIZES[split] if n is None else n
    rng = random.Random(f"arith:{seed}:{split}")
    out: list[Example] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ValueError(f"cannot generate {n} distinct arith {split} problems with {spec}")
        question, start, ops = _draw(rng, spec)
        if question in seen or _is_test_question(question) != (split == "test"):
            continue
        seen.add(question)
        out.append(_example(f"arith/{split}/{len(out)}", question, start, ops, spec))
    return out


# ---------------------------------------------------------------- hidden-rule family ("bonus")
#
# `Ann has 5 pens, finds 3.` → `bonus=4. 5+3=8. 8+4=12.` (the last number is the answer; short, since every
# character is a token for the tiny students). Every question belongs to a
# group whose bonus k (1..9) the question never mentions: all shots of an episode (and all demonstrations of
# a k-shot prompt) share the test item's group, so a student can read k off its demonstrations' chains, while
# 0-shot the best any student can do is guess k (chance 1/9). Answers span 1..27, so the majority answer is
# rare. The chain's steps are programmatic, so generated chains are checked step by step (`aicd.chains`).

BONUS_VERBS = {"+": ["finds", "gets", "wins"], "-": ["loses", "sells", "drops"]}
BONUS_MAX_OPERAND = 9
BONUS_VALUES = tuple(range(1, 10))  # the hidden rule of a group


@dataclass(frozen=True)
class BonusProblem:
    """One question of the hidden-rule family and the rule (bonus) of its group."""

    name: str
    obj: str
    start: int
    op: str
    n: int
    bonus: int

    @property
    def question(self) -> str:
        """Never mentions the bonus: the query alone does not reveal the rule."""
        verb = BONUS_VERBS[self.op][(self.start + self.n) % len(BONUS_VERBS[self.op])]
        return f"{self.name} has {self.start} {self.obj}, {verb} {self.n}."

    @property
    def steps(self) -> list[str]:
        """The programmatic chain: the rule, the question's operation, then the rule applied."""
        mid = self.start + self.n if self.op == "+" else self.start - self.n
        return [
            f"bonus={self.bonus}",
            f"{self.start}{self.op}{self.n}={mid}",
            f"{mid}+{self.bonus}={self.answer}",
        ]

    @property
    def answer(self) -> int:
        mid = self.start + self.n if self.op == "+" else self.start - self.n
        return mid + self.bonus

    @property
    def rationale(self) -> str:
        return ". ".join(self.steps) + "."


def bonus_question_value(question: str) -> int:
    """What a question of the family determines by itself (start ± n), without its group's bonus."""
    import re

    start, n = (int(x) for x in re.findall(r"\d+", question))
    verb = question.split(", ")[1].split()[0]
    return start - n if verb in BONUS_VERBS["-"] else start + n


def bonus_group(bonus: int) -> str:
    return f"bonus{bonus}"


def draw_bonus_problem(rng: random.Random) -> BonusProblem:
    """Names, object, start, operation and the group's bonus, each drawn independently."""
    op = rng.choice("+-")
    start = rng.randint(2, BONUS_MAX_OPERAND)
    n = rng.randint(1, BONUS_MAX_OPERAND if op == "+" else start)
    return BonusProblem(rng.choice(FW_NAMES), rng.choice(FW_OBJECTS), start, op, n, rng.choice(BONUS_VALUES))


def bonus_example(idx: str, problem: BonusProblem) -> Example:
    rationale = Rationale(text=problem.rationale, source="gold", model="bonus-generator")
    return Example(
        id=idx,
        question=problem.question,
        answer=str(problem.answer),
        rationales=[rationale],
        group=bonus_group(problem.bonus),
    )


def generate_bonus(split: str = "train", n: int | None = None, *, seed: int = 0) -> list[Example]:
    """`n` hidden-rule problems of `split` (same question/test partition as `generate`), seeded.

    A question may recur with another bonus (different group and answer): that is the point, the question
    alone does not determine the answer. The same (question, bonus) pair is never drawn twice.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got '{split}'")
    split = SPLITS[split]
    n = DEFAULT_SIZES[split] if n is None else n
    rng = random.Random(f"bonus:{seed}:{split}")
    out: list[Example] = []
    seen: set[tuple[str, int]] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ValueError(f"cannot generate {n} distinct bonus {split} problems")
        problem = draw_bonus_problem(rng)
        key = (problem.question, problem.bonus)
        if key in seen or _is_test_question(problem.question) != (split == "test"):
            continue
        seen.add(key)
        out.append(bonus_example(f"bonus/{split}/{len(out)}", problem))
    return out


def load_arith(split: str = "train", seed: int = 0) -> list[Example]:
    """Loader for the dataset registry (`load_examples("arith", split, limit=…, seed=…)`)."""
    try:
        return generate(split, seed=seed)
    except ValueError as exc:
        raise DataError(f"dataset arith: {exc}") from None
