"""The objective registry: its rules drive episodes, prompts and sweeps, and it is the only place a name is compared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aicd import objective_registry as reg
from aicd.config import OBJECTIVES, TrainConfig
from aicd.data.record import Example, Rationale
from aicd.episodes import Shot, build_episode, sample_episode_shots
from aicd.sweep import uses_omega

REPO = Path(__file__).resolve().parents[2]
NAMES = "|".join(map(re.escape, reg.OBJECTIVE_NAMES))
Q = rf"""['"](?:{NAMES})['"]"""
# an objective name compared (==, !=, in a literal container), a dict keyed by it, or a Literal of names
COMPARISONS = [
    re.compile(rf"(?:==|!=)\s*{Q}"),
    re.compile(rf"{Q}\s*(?:==|!=)"),
    re.compile(rf"""\bin\s*[(\[{{](?:\s*['"][\w-]*['"]\s*,)*\s*{Q}"""),
    re.compile(rf"[{{,]\s*{Q}\s*:"),
    re.compile(rf"Literal\[[^\]]*{Q}"),
]


def _hits(text: str) -> list[str]:
    return [m.group(0) for pattern in COMPARISONS for m in pattern.finditer(text)]


def test_the_scan_catches_the_copies_it_forbids() -> None:
    copies = [
        'if objective == "nocot":',
        "if cfg.get('objective') != 'lm':",
        'OMEGA_FREE = ("condgen", "lm"); x in ("condgen", "lm")',
        'LABELS = {"aicd": "AICD", "nocot": "no-CoT"}',
        'objective: Literal["aicd", "condgen"] = "aicd"',
    ]
    assert all(_hits(c) for c in copies), [c for c in copies if not _hits(c)]
    assert not _hits('objective_spec(objective).target == "answer"') and not _hits('app = Celery("aicd")')


def test_the_registry_is_the_only_place_an_objective_name_is_compared() -> None:
    found = []
    for folder in ("aicd", "backend", "ui", "worker"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "aicd" / "objective_registry.py":
                continue
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if _hits(line):
                    found.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert not found, "objective names compared outside aicd/objective_registry.py:\n" + "\n".join(found)


def test_config_accepts_exactly_the_registered_objectives() -> None:
    assert OBJECTIVES == reg.OBJECTIVE_NAMES == ("aicd", "condgen", "lm", "nocot")
    for name in reg.OBJECTIVE_NAMES:
        assert TrainConfig(objective=name).objective == name
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="star")


def test_registry_rules_are_what_episodes_apply() -> None:
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()  # byte-level, no files
    shots = [Shot("q1 ?", "r1 .", "1"), Shot("q2 ?", "r2 .", "2"), Shot("q3 ?", "r3 .", "3")]
    weights = [0.1, 0.1, 1.0]
    for name, spec in reg.REGISTRY.items():
        ep = build_episode(tok, shots, name, weights)
        targets = [s for s in ep.spans if s.kind == "target"]
        expected_text = [" 1", " 2", " 3"] if spec.target == "answer" else [" r1 .", " r2 .", " r3 ."]
        assert [s.text for s in targets] == expected_text, name
        if spec.weights == "all":
            assert ep.loss_weights == [0.0] + [1.0] * (len(ep) - 1), name
        else:
            expected = [0.0, 0.0, 1.0] if spec.weights == "last" else weights
            assert [s.weight for s in targets] == expected, name


def test_omega_rule_and_demonstrations() -> None:
    assert [n for n in reg.OBJECTIVE_NAMES if reg.uses_omega(n)] == ["aicd", "nocot"]
    assert not reg.uses_omega("aicd", "constant") and not reg.uses_omega("aicd", "paper", [1.0, 1.0])
    assert uses_omega({"objective": "nocot", "schedule": "linear"}) and not uses_omega({"objective": "lm"})
    assert {n: reg.demonstrations_for(n) for n in reg.OBJECTIVE_NAMES} == {
        "aicd": "rationale",
        "condgen": "rationale",
        "lm": "rationale",
        "nocot": "answer",
    }
    assert reg.demonstrations_for(None) == "rationale" and reg.objective_label("nocot") == "no-CoT"
    with pytest.raises(ValueError, match="one of aicd, condgen, lm, nocot"):
        reg.objective_spec("magic")


def test_answer_only_objectives_train_on_examples_without_rationales() -> None:
    bare = [Example(id=str(i), question=f"q{i}", answer=str(i)) for i in range(3)]
    with pytest.raises(ValueError, match="'nocot'"):
        sample_episode_shots(bare, 2, seed=0, objective="aicd")
    annotated = [*bare, Example(id="x", question="qx", answer="7", rationales=[Rationale(text="r")])]
    assert len(sample_episode_shots(annotated, 2, seed=0, objective="aicd")) == 1
    assert len(sample_episode_shots(annotated, 2, seed=0, objective="nocot")) == 4
