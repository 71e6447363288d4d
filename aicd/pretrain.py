"""A pretrained student stand-in: one short, seeded LM pre-training stage on generic sequences, cached.

The paper's students are pretrained LMs that can already copy by content (induction) and do small sums;
a randomly initialised tiny student cannot, so an objective comparison on it mostly measures who learns
to copy first. `ensure_base` trains a tiny model once with the LM loss on four kinds of generic documents —
copying (`k3x9 k3x9`), key-value recall (`ab=3 qzx=7 z=1 qzx=7`), arithmetic chains (`5+3=8. 8+4=12.`) and the
task's questions with their first step (`Ann has 5 pens, finds 3. 5+3=8.`) — never the task's episodes or
its hidden rule. The result is cached under `<dir>/pretrain/<config hash>/final`, so every objective (and a
rerun) fine-tunes from byte-identical base weights; `BaseModel.weights_hash` proves it.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicd.checkpoint import DONE_FILE, FINAL_DIR
from aicd.config import TemplateConfig, TrainConfig
from aicd.data.record import Example, Rationale
from aicd.data.synthetic import draw_bonus_problem
from aicd.errors import AICDError, ConfigError
from aicd.progress import Cancelled

DOC_KINDS = ("copy", "recall", "arith", "surface")
DOCS_VERSION = 2  # bump when `_doc` changes: it is part of the cache key
_CHARS = string.ascii_lowercase + string.digits
# Pre-training documents are plain text: no `Q:`/`A:` template, so the base model never sees the task format.
PLAIN = TemplateConfig(question_prefix="", answer_prefix="", separator="\n")

DEMO_MODEL = "tiny:llama?num_hidden_layers=2&hidden_size=64&intermediate_size=192&num_attention_heads=4&num_key_value_heads=4"
PRETRAINED = "pretrained:"  # model spec prefix: `pretrained:<preset>` = the cached base of that preset
# Named base models (the `pretrain_config` arguments): `demo` is the base `aicd demo` fine-tunes, so a
# sweep naming `pretrained:demo` shares its hash; `demo-quick` is `aicd demo --quick`'s (a smoke test).
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"model": DEMO_MODEL, "steps": 1500, "batch_size": 16, "n_docs": 8000},
    "demo-quick": {
        "model": "tiny:llama?num_hidden_layers=1&hidden_size=32&intermediate_size=64&num_attention_heads=2",
        "steps": 2,
        "batch_size": 4,
        "n_docs": 32,
    },
}


@dataclass(frozen=True)
class BaseModel:
    """The pretrained stand-in: where its weights are, their hash, and whether this call trained them."""

    path: Path
    weights_hash: str
    trained_now: bool


def _doc(rng: random.Random, kind: str) -> tuple[str, str]:
    """(first part, second part) of one document; the LM loss covers both."""
    if kind == "copy":
        text = "".join(rng.choice(_CHARS) for _ in range(rng.randint(4, 10)))
        return text, text
    if kind == "recall":
        keys = {
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 5)))
            for _ in range(rng.randint(2, 5))
        }
        pairs = {k: rng.randint(0, 9) for k in sorted(keys, key=lambda _: rng.random())}
        key = rng.choice(list(pairs))
        return " ".join(f"{k}={v}" for k, v in pairs.items()), f"{key}={pairs[key]}"
    if kind == "arith":
        a, b, c = rng.randint(0, 9), rng.randint(1, 9), rng.randint(1, 9)
        mid = a + b if rng.random() < 0.5 or a < b else a - b
        first = f"{a}+{b}={mid}" if mid == a + b else f"{a}-{b}={mid}"
        return f"{first}.", f"{mid}+{c}={mid + c}."
    problem = draw_bonus_problem(rng)
    return problem.question, problem.steps[1] + "."


def pretrain_documents(n: int, *, seed: int = 0) -> list[Example]:
    """`n` generic documents (kinds in turn), as Examples whose question/rationale are the two parts."""
    rng = random.Random(f"pretrain:{seed}")
    docs = []
    for i in range(n):
        first, second = _doc(rng, DOC_KINDS[i % len(DOC_KINDS)])
        docs.append(
            Example(id=f"pretrain/{i}", question=first, answer="0", rationales=[Rationale(text=second)])
        )
    return docs


def pretrain_config(
    root: Path, *, model: str, steps: int, batch_size: int, n_docs: int, seed: int = 0, lr: float = 1e-2
) -> TrainConfig:
    """The LM-loss run of the stage; its name is the hash of everything that shapes the weights."""
    fields: dict[str, Any] = {
        "model": model,
        "objective": "lm",
        "n_shots": 8,  # eight documents per sequence
        "template": PLAIN.model_dump(),
        "max_steps": steps,
        "batch_size": batch_size,
        "micro_batch_size": batch_size,
        "lr": lr,
        "warmup_ratio": 0.05,
        "weight_decay": 0.0,
        "reduction": "token",
        "mixed_precision": "no",
        "max_length": 512,
        "log_every": 25,
        "seed": seed,
        "limit": n_docs,
    }
    key = hashlib.sha256(
        json.dumps({**fields, "docs": DOC_KINDS, "version": DOCS_VERSION}, sort_keys=True).encode()
    ).hexdigest()
    return TrainConfig(**fields, dataset="pretrain-docs", name=key[:12], output_dir=str(root / "pretrain"))


def weights_hash(model_dir: Path) -> str:
    """sha256 of the saved weight files, in name order (the identity of a base model)."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_base(config: TrainConfig, *, progress: bool = True, callback: Any = None) -> BaseModel:
    """The base model of `config`: trained once, then reused from `config.run_dir / final`.

    `callback` (an `aicd.train.TrainCallback`) lets a worker follow and cancel the build; a build stopped
    part-way raises `Cancelled` and resumes from its checkpoint on the next call."""
    final = config.run_dir / FINAL_DIR
    trained_now = False
    if not (final / DONE_FILE).is_file():
        from aicd.train import train

        docs = pretrain_documents(config.limit or 4000, seed=config.seed)
        result = train(config, examples=docs, resume=True, progress=progress, callback=callback)
        if result.stopped:
            raise Cancelled(f"pre-training of the base stopped at step {result.step}")
        trained_now = True
    return BaseModel(path=final, weights_hash=weights_hash(final), trained_now=trained_now)


def is_pretrained(spec: str) -> bool:
    return spec.startswith(PRETRAINED)


def preset_config(root: Path, preset: str) -> TrainConfig:
    """The pre-training run of a named base, cached under `root/pretrain/<hash>/`."""
    if preset not in PRESETS:
        raise ConfigError(
            f"model: unknown pretrained base '{PRETRAINED}{preset}' "
            f"(choose from {', '.join(PRETRAINED + p for p in PRESETS)})"
        )
    return pretrain_config(Path(root), **PRESETS[preset])


def pretrained_path(spec: str, root: Path) -> Path:
    """Where `pretrained:<preset>`'s weights live (or will, once `ensure_pretrained` built them)."""
    return preset_config(root, spec.removeprefix(PRETRAINED)).run_dir / FINAL_DIR


def ensure_pretrained(spec: str, root: Path, *, progress: bool = True, callback: Any = None) -> BaseModel:
    """The base of `pretrained:<preset>`, built on first use; AICDError (one line) when it cannot be."""
    config = preset_config(root, spec.removeprefix(PRETRAINED))
    try:
        return ensure_base(config, progress=progress, callback=callback)
    except (AICDError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the build becomes one clear line, no fallback
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AICDError(
            f"model: cannot build the pretrained base '{spec}' in {config.run_dir} ({detail})"
        ) from exc
