"""Read-only helpers for the UI: ω schedule and episode previews, prompt-template preview, dataset statistics,
the built-in datasets and the shipped experiment configs.

Nothing here imports torch. Episodes are tokenized with the chosen student's own tokenizer when its files are on
the server (a local checkpoint or the Hugging Face cache: a request never downloads), else with the byte-level
`ByT5Tokenizer` of the tiny students (one token per UTF-8 byte, no files); the answer says which.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from aicd.config import Objective, SweepConfig, TemplateConfig, TrainConfig, format_validation_error
from aicd.objective_registry import DEFAULT_OBJECTIVE, shot_weights
from backend.api.deps import IdPath, PageDep, SessionDep
from backend.api.errors import ApiError, get_or_404
from backend.models import Dataset, Example, Rationale
from backend.schemas.common import MAX_ID, Id, Page
from backend.services.pagination import list_page

router = APIRouter(prefix="/preview", tags=["preview"])
ROOT = Path(__file__).resolve().parents[3]
MAX_PREVIEW_EXAMPLES = 200


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_shots: int = Field(4, gt=0, le=64)
    schedule: Literal["paper", "constant", "linear", "exponential", "custom", "adaptive"] = "paper"
    omega: float = Field(0.1, ge=0)
    weights: list[float] | None = None
    objective: Objective | None = Field(
        None, description="also return the loss weight each shot gets under this objective (`loss_weights`)"
    )


class EpisodeIn(ScheduleIn):
    dataset_id: Id
    objective: Objective = DEFAULT_OBJECTIVE
    seed: int = 0
    index: int = Field(0, ge=0, le=MAX_ID, description="which sampled episode to show")
    max_length: int | None = Field(None, gt=16)
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    model: str | None = Field(
        None, description="student whose tokenizer to use (hub id, local path, tiny:<arch>)"
    )


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: Id
    prompt_template: str
    system_prompt: str | None = None
    index: int = Field(0, ge=0, le=MAX_ID, description="position of the question in the dataset")


def _weights(body: ScheduleIn) -> list[float]:
    from aicd.objectives import omega_weights

    weights = body.weights if body.schedule == "custom" else None
    try:
        return omega_weights(body.schedule, body.n_shots, omega=body.omega, weights=weights)
    except ValueError as exc:
        field = "weights" if "weights" in str(exc) else "omega" if "omega" in str(exc) else "schedule"
        raise ApiError(422, str(exc), field=field) from None


@router.post("/schedule", summary="ω_1..ω_n of a schedule (what the ω designer plots)")
def preview_schedule(body: ScheduleIn) -> dict[str, Any]:
    weights = _weights(body)
    shown: dict[str, Any] = {"n_shots": body.n_shots, "schedule": body.schedule, "weights": weights}
    if body.objective is not None:
        shown |= {"objective": body.objective, "loss_weights": shot_weights(body.objective, weights)}
    return shown


BYTE_LEVEL = "byte-level (ByT5, as the tiny students)"


@lru_cache(maxsize=1)
def _byte_tokenizer() -> Any:
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


@lru_cache(maxsize=8)
def _student_tokenizer(model: str) -> Any:
    # the generic fast tokenizer reads the checkpoint's tokenizer.json; AutoTokenizer would import torch
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(model, local_files_only=True)
    if tok.eos_token_id is None:
        raise ValueError("it has no EOS token")
    return tok


def _tokenizer(model: str | None) -> tuple[Any, str]:
    """(tokenizer, what the preview says it used)."""
    if not model or model.startswith("tiny:"):
        return _byte_tokenizer(), BYTE_LEVEL
    try:
        tok = _student_tokenizer(model)
    except (OSError, ValueError) as exc:  # not on this server (or not a tokenizer): say so, show bytes
        reason = str(exc).splitlines()[0][:160]
        return (
            _byte_tokenizer(),
            f"{BYTE_LEVEL}: the tokenizer of {model} is not available on the server ({reason})",
        )
    return tok, f"{model} (its tokenizer.json, {len(tok)} tokens)"


def _examples(session: SessionDep, dataset_id: int, limit: int) -> list[Any]:
    from aicd.data.record import Example as Record
    from aicd.data.record import Rationale as RationaleRecord

    get_or_404(session, Dataset, dataset_id, "dataset")
    rows = session.scalars(
        select(Example)
        .where(Example.dataset_id == dataset_id)
        .order_by(Example.position)
        .options(selectinload(Example.rationales))
        .limit(limit)
    )
    return [
        Record(
            id=r.ext_id,
            question=r.question,
            answer=r.answer,
            rationales=[RationaleRecord(text=x.text, source=x.source, model=x.model) for x in r.rationales],
        )
        for r in rows
    ]


@router.post("/episode", summary="One real training episode of a stored dataset with each span's ω weight")
def preview_episode(body: EpisodeIn, session: SessionDep) -> dict[str, Any]:
    from aicd.episodes import EpisodeTooLong, build_episode, sample_episode_shots

    weights = _weights(body)
    examples = _examples(session, body.dataset_id, MAX_PREVIEW_EXAMPLES)
    if not examples:
        raise ApiError(422, f"dataset {body.dataset_id} has no examples", field="dataset_id")
    try:
        episodes = sample_episode_shots(examples, body.n_shots, seed=body.seed, objective=body.objective)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="dataset_id") from None
    shots = episodes[body.index % len(episodes)]
    # with fewer examples than n, the last ω's belong to the shots that were kept
    shown = weights[len(weights) - len(shots) :]
    tokenizer, tokenizer_label = _tokenizer(body.model)
    try:
        ep = build_episode(
            tokenizer, shots, body.objective, shown, template=body.template, max_length=body.max_length
        )
    except EpisodeTooLong as exc:
        raise ApiError(422, str(exc), field="max_length") from None
    spans = [
        {"start": s.start, "end": s.end, "kind": s.kind, "shot": s.shot, "weight": s.weight, "text": s.text}
        for s in ep.spans
    ]
    return {
        "weights": weights,
        "n_tokens": len(ep.input_ids),
        "n_shots": ep.n_shots,
        "n_dropped": ep.n_dropped,
        "weighted_tokens": sum(1 for w in ep.loss_weights if w > 0),
        "total_weight": sum(ep.loss_weights),
        "spans": spans,
        "tokenizer": tokenizer_label,
        "n_episodes": len(episodes),
    }


@router.post("/prompt", summary="The teacher prompt a template gives for a real question of a dataset")
def preview_prompt(body: PromptIn, session: SessionDep) -> dict[str, Any]:
    from aicd.annotate.config import AnnotateConfig

    get_or_404(session, Dataset, body.dataset_id, "dataset")
    row = session.scalars(
        select(Example)
        .where(Example.dataset_id == body.dataset_id)
        .order_by(Example.position)
        .offset(body.index)
        .limit(1)
    ).first()
    if row is None:
        raise ApiError(
            422, f"dataset {body.dataset_id} has no example at position {body.index}", field="index"
        )
    try:
        cfg = AnnotateConfig(prompt_template=body.prompt_template, system_prompt=body.system_prompt)
    except ValidationError as exc:
        raise ApiError(422, format_validation_error(exc), field="prompt_template") from None
    return {
        "example_id": row.ext_id,
        "question": row.question,
        "answer": row.answer,
        "system_prompt": cfg.system_prompt,
        "prompt": cfg.render(row.question, row.answer),
    }


@router.get("/datasets/{dataset_id}/stats", summary="Questions, and rationales by source and by writer")
def dataset_stats(dataset_id: IdPath, session: SessionDep) -> dict[str, Any]:
    get_or_404(session, Dataset, dataset_id, "dataset")
    in_ds = Rationale.example_id.in_(select(Example.id).where(Example.dataset_id == dataset_id))
    by_source = dict(
        session.execute(select(Rationale.source, func.count()).where(in_ds).group_by(Rationale.source)).all()
    )
    by_model = [
        {"source": s, "model": m or "", "rationales": n}
        for s, m, n in session.execute(
            select(Rationale.source, Rationale.model, func.count())
            .where(in_ds)
            .group_by(Rationale.source, Rationale.model)
        ).all()
    ]
    with_rationale = session.scalar(select(func.count(func.distinct(Rationale.example_id))).where(in_ds)) or 0
    questions = (
        session.scalar(select(func.count()).select_from(Example).where(Example.dataset_id == dataset_id)) or 0
    )
    return {
        "dataset_id": dataset_id,
        "questions": questions,
        "with_rationale": with_rationale,
        "rationales": sum(by_source.values()),
        "by_source": by_source,
        "by_model": by_model,
    }


@router.get(
    "/builtins",
    response_model=Page[dict[str, Any]],
    summary="Built-in datasets that /datasets/import accepts",
)
def builtins(page: PageDep) -> Page[dict[str, Any]]:
    from aicd.data import loaders

    infos = [
        {"name": i.name, "answer_kind": i.answer_kind, "n_shots": i.n_shots, "description": i.description}
        for i in sorted(loaders.DATASETS.values(), key=lambda i: i.name)
    ]
    return list_page(infos, page.cursor, page.limit)


def _config_kind(data: dict[str, Any]) -> str | None:
    if {"grid", "train"} & set(data):
        try:
            SweepConfig.model_validate(data)
            return "sweep"
        except ValidationError:
            return None
    try:
        TrainConfig.model_validate(data)
        return "train"
    except ValidationError:
        return None


@router.get(
    "/configs",
    response_model=Page[dict[str, Any]],
    summary="Shipped experiment configs (configs/*.yaml): Table 1, Fig. 1, Fig. 2, ...",
)
def shipped_configs(
    page: PageDep,
    kind: Annotated[Literal["sweep", "train"] | None, Query(description="sweep | train")] = None,
) -> Page[dict[str, Any]]:
    out = []
    for folder in (ROOT / "configs", ROOT / "aicd" / "configs"):
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                continue
            found = _config_kind(data) if isinstance(data, dict) else None
            if found is None or (kind and found != kind) or any(c["name"] == path.stem for c in out):
                continue
            # `star: {}` (every default) asks for the STaR row too, so an empty section counts
            steps = ("annotate", "star", "untuned")
            cli_only = [k for k in steps if found == "sweep" and data.get(k) not in (None, False)]
            out.append(
                {
                    "name": path.stem,
                    "path": str(path.relative_to(ROOT)),
                    "kind": found,
                    "config": data,
                    # a server sweep refuses these steps (422): such a config runs with `aicd sweep`
                    "server": not cli_only,
                    "cli_only": cli_only,  # the steps a server sweep refuses (the UI may launch without them)
                    "note": f"CLI only (aicd sweep {path.relative_to(ROOT)}): uses {', '.join(cli_only)}"
                    if cli_only
                    else None,
                }
            )
    return list_page(out, page.cursor, page.limit)
