"""The demo's report: accuracy and step-by-step chain correctness per objective × shots, mean ± std over
training seeds, beside the baselines that say what a number means (majority answer, rule-blind oracle),
the accuracy-vs-steps curve, and what the demo can and cannot show. Everything is read back from the
sweep's files, so a resumed demo reprints the same report.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aicd.chains import score_chain
from aicd.config import EvalConfig, SweepConfig
from aicd.data.jsonl import read_examples
from aicd.data.record import Example
from aicd.sweep import PlannedRun, SweepResult, sweep_dir

REPORT = "demo.md"
VANILLA = "vanilla"

CAPTION_RULE = "one demonstration draw per run; ± is the sample std over training seeds"
CAN_CANNOT = """\
What this demo can show: on a task where demonstrations carry information the question lacks (each
episode's bonus), whether a student fine-tuned with each objective *uses* its demonstrations — accuracy
and correct chains rising from 0 to 1–3 shots, above the rule-blind rate — and whether AICD (loss on every
shot's rationale, ω = 0.1 before the last) does so better than CondGen (loss on the last rationale only),
as the paper claims, at equal optimizer steps, over 2 training seeds.
What it cannot show: anything about real LMs or real math word problems — the student is a ~0.15M-parameter
byte-level model pre-trained briefly (minutes) on synthetic text, the task is one synthetic family,
the test set is small (see n), and two seeds give a rough std. A gap here is a hint, not evidence."""


@dataclass(frozen=True)
class Cell:
    """One (objective, training seed, shots) evaluation: fraction correct and fraction of correct chains."""

    objective: str
    seed: int
    shots: int
    accuracy: float
    chains: float
    lucky: int  # right answer from a wrong chain
    n: int
    rule_step: float = 0.0  # first step (`bonus=k`, the rule read from the demonstrations) right


def score_eval(eval_dir: Path, objective: str, seed: int, gold: dict[str, Example]) -> list[Cell]:
    """Cells of one evaluation folder (its generations.jsonl), chains scored against the gold rationales."""
    by_shots: dict[int, list[tuple[bool, bool, bool]]] = {}
    path = Path(eval_dir) / "generations.jsonl"
    if not path.is_file():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        ex = gold[rec["example_id"]]
        score = score_chain(rec["generation"], ex.rationales[0].text, ex.answer)
        rule_ok = bool(score.step_ok) and score.step_ok[0]
        by_shots.setdefault(rec["shots"], []).append((rec["correct"], score.chain_correct, rule_ok))
    return [
        Cell(
            objective=objective,
            seed=seed,
            shots=k,
            accuracy=sum(c for c, _, _ in marks) / len(marks),
            chains=sum(ch for _, ch, _ in marks) / len(marks),
            lucky=sum(c and not ch for c, ch, _ in marks),
            n=len(marks),
            rule_step=sum(r for _, _, r in marks) / len(marks),
        )
        for k, marks in sorted(by_shots.items())
    ]


def majority_rate(test: Sequence[Example]) -> float:
    """Accuracy of always answering the most frequent test answer."""
    return Counter(ex.answer for ex in test).most_common(1)[0][1] / len(test)


def rule_blind_rate(train: Sequence[Example], test: Sequence[Example]) -> float:
    """Accuracy of an oracle that solves the question exactly but cannot see the rule: it adds the most
    frequent training bonus. (The chance rate of guessing the rule.)"""
    from aicd.data.synthetic import bonus_question_value

    bonus = Counter(int(ex.answer) - bonus_question_value(ex.question) for ex in train).most_common(1)[0][0]
    return sum(int(ex.answer) == bonus_question_value(ex.question) + bonus for ex in test) / len(test)


def _order(names: Iterable[str]) -> list[str]:
    """vanilla first, then the paper's order (the objective registry's)."""
    from aicd.objective_registry import objective_rank

    return sorted(set(names), key=lambda o: (o != VANILLA, objective_rank(o)))


def _grid(cells: Sequence[Cell], field: str, shots: Sequence[int]) -> list[str]:
    """objective × shots, each cell `aicd.results.aggregate`d over training seeds (the one "±" rule)."""
    from aicd.results import aggregate, format_cell

    obs = [
        {"objective": c.objective, "shots": c.shots, "run": c.seed, field: getattr(c, field)} for c in cells
    ]
    agg = {(r["objective"], r["shots"]): r for r in aggregate(obs, ("objective", "shots"), value_key=field)}
    lines = ["| objective | " + " | ".join(f"{k}-shot" for k in shots) + " |", "|---|" + "---|" * len(shots)]
    for obj in _order(c.objective for c in cells):
        vals = []
        for k in shots:
            r = agg.get((obj, k))
            vals.append(format_cell(r["mean"], r["std"], r["n"]) if r else "–")
        lines.append(f"| {obj} | " + " | ".join(vals) + " |")
    return lines


def _per_seed(cells: Sequence[Cell], shots: Sequence[int]) -> list[str]:
    lines = [
        "| objective | seed | " + " | ".join(f"{k}-shot acc / chain" for k in shots) + " | lucky |",
        "|---|---|" + "---|" * (len(shots) + 1),
    ]
    for obj in _order(c.objective for c in cells):
        for seed in sorted({c.seed for c in cells if c.objective == obj}):
            row = {c.shots: c for c in cells if c.objective == obj and c.seed == seed}
            vals = [
                f"{100 * row[k].accuracy:.0f} / {100 * row[k].chains:.0f}" if k in row else "–" for k in shots
            ]
            lucky = sum(c.lucky for c in row.values())
            label = "–" if obj == VANILLA else str(seed)
            lines.append(f"| {obj} | {label} | " + " | ".join(vals) + f" | {lucky} |")
    return lines


def _curve(runs: Sequence[PlannedRun]) -> list[str]:
    """Mean held-out accuracy (1-shot) over seeds at each evaluated step, per objective."""
    points: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        path = run.run_dir / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            if "eval_accuracy" in m:
                points.setdefault(run.train.objective, {}).setdefault(m["step"], []).append(
                    m["eval_accuracy"]
                )
    if not points:
        return []
    steps = sorted({s for p in points.values() for s in p})
    lines = ["| objective | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for obj in _order(points):
        if obj in points:
            vals = [
                f"{100 * statistics.fmean(points[obj][s]):.0f}" if s in points[obj] else "–" for s in steps
            ]
            lines.append(f"| {obj} | " + " | ".join(vals) + " |")
    return lines


def _findings(cells: Sequence[Cell], shots: Sequence[int], blind: float) -> list[str]:
    """What the numbers say about the paper's two hypotheses, computed, whichever way they come out."""

    def _spread(obj: str, k: int, field: str) -> float:
        vals = [getattr(c, field) for c in cells if c.objective == obj and c.shots == k]
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    def mean(obj: str, k: int, field: str = "accuracy") -> float | None:
        vals = [getattr(c, field) for c in cells if c.objective == obj and c.shots == k]
        return statistics.fmean(vals) if vals else None

    out = []
    for obj in _order(c.objective for c in cells):
        accs = [mean(obj, k) for k in shots]
        rules = [mean(obj, k, "rule_step") for k in shots]
        if any(a is None for a in accs) or len(shots) < 2:
            continue
        top = shots[-1]
        reads = max(rules[1:]) > max(rules[0], blind) + 0.1  # type: ignore[type-var]
        solves = max(accs[1:]) > max(accs[0], blind) + 0.1  # type: ignore[type-var]
        out.append(
            f"- {obj}: accuracy {100 * accs[0]:.1f} % at 0 shots → {100 * accs[-1]:.1f} % at {top}; rule step "
            f"{100 * rules[0]:.1f} % → {100 * rules[-1]:.1f} %: "
            + ("reads the rule from its demonstrations" if reads else "does not read the rule from them")
            + (
                ", and answers better with them."
                if solves
                else "; accuracy does not rise above the rule-blind rate."
            )
        )
    for k in (1, 2):
        for field, what in (("accuracy", "accuracy"), ("rule_step", "rule step")):
            a, c = mean("aicd", k, field), mean("condgen", k, field)
            if a is None or c is None:
                continue
            gap = a - c
            noise = max(_spread("aicd", k, field), _spread("condgen", k, field))
            verdict = "AICD above CondGen" if gap > 0 else "AICD not above CondGen"
            out.append(
                f"- {k}-shot {what}: aicd {100 * a:.1f} % vs condgen {100 * c:.1f} % → {verdict} "
                f"(gap {100 * gap:+.1f} points; largest seed std {100 * noise:.1f})."
            )
    return out


def build_report(
    config: SweepConfig,
    runs: Sequence[PlannedRun],
    vanilla: EvalConfig,
    *,
    base_hash: str,
    train: Sequence[Example],
    test: Sequence[Example],
) -> str:
    """The Markdown report of a (possibly partial) demo."""
    gold = {ex.id: ex for ex in test}
    cells: list[Cell] = score_eval(Path(vanilla.output_dir or ""), VANILLA, 0, gold)
    for run in runs:
        cells += score_eval(Path(run.evals[0].output_dir or ""), run.train.objective, run.train.seed, gold)
    shots = sorted({c.shots for c in cells}) or list(config.eval.get("shots", [0]))
    blind, majority = rule_blind_rate(train, test), majority_rate(test)
    t = config.train
    seeds = sorted({r.train.seed for r in runs})
    lines = [
        "# AICD demo: hidden-rule arithmetic, tiny pretrained student",
        "",
        f"Test items n = {len(test)} (one demonstration draw); training seeds {seeds}; {t['max_steps']} optimizer "
        f"steps × {t['batch_size']} episodes of {t['n_shots']} shots for every objective, from one base model "
        f"(weights sha256 {base_hash[:16]}…).",
        f"Baselines: majority answer {100 * majority:.1f} %; rule-blind oracle (solves the question, guesses "
        f"the bonus) {100 * blind:.1f} %. vanilla = the pretrained base, not fine-tuned.",
        "",
        "## Accuracy (%), mean ± std over training seeds (`aicd.results`: " + CAPTION_RULE + ")",
        "",
        *_grid(cells, "accuracy", shots),
        "",
        "## Correct chains (%): every step `bonus=k`, `a±b=m`, `m+k=answer` right, mean ± std over seeds",
        "",
        *_grid(cells, "chains", shots),
        "",
        "## Rule step right (%): the chain's first step `bonus=k` (the rule, only in the demonstrations; "
        "rule-blind rate ≈ 1/9), mean ± std over seeds",
        "",
        *_grid(cells, "rule_step", shots),
        "",
        "## Per seed: accuracy / correct chains (%); lucky = right answers from wrong chains (all shots)",
        "",
        *_per_seed(cells, shots),
        "",
    ]
    curve = _curve(runs)
    if curve:
        lines += [
            f"## Accuracy during training (%, 1-shot, {t.get('eval_limit')} held-out items, mean over seeds)",
            "",
            *curve,
            "",
        ]
    lines += ["## Findings (computed)", "", *_findings(cells, shots, blind), "", CAN_CANNOT, ""]
    return "\n".join(lines)


def write_demo_report(
    config: SweepConfig, result: SweepResult, vanilla: EvalConfig, *, base_hash: str
) -> tuple[Path, str]:
    """Write `<sweep>/demo.md` and return (path, text)."""
    data = Path(config.train["dataset"])
    text = build_report(
        config,
        result.runs,
        vanilla,
        base_hash=base_hash,
        train=read_examples(data / "train.jsonl"),
        test=read_examples(data / "test.jsonl"),
    )
    path = sweep_dir(config) / REPORT
    path.write_text(text, encoding="utf-8")
    return path, text
