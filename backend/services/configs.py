"""Turn request bodies into validated core configs (TrainConfig / EvalConfig / SweepConfig / AnnotateConfig).

Paths the server writes to are chosen here, not by the client: outputs live under the artifact directory, and
stored datasets are referred to as `db:<id>` (the worker exports them to JSONL before calling `aicd`).
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from aicd.config import EvalConfig, SweepConfig, TrainConfig, check_shots_fit
from aicd.errors import AICDError, ConfigError
from aicd.objective_registry import demonstrations_for
from backend.api.errors import ApiError, not_found
from backend.models import Dataset, Run
from backend.schemas.common import INT32_MAX, MAX_ID, NAME_MAX, NAME_PATTERN, NAME_RULE

SERVER_FIELDS = ("output_dir",)


def _validate(cls: type[BaseModel], data: dict[str, Any], prefix: str = "config") -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            msg = e["msg"].removeprefix("Value error, ")
            loc = [str(p) for p in e["loc"]]
            first = msg.split(" ", 1)[0]
            if not loc and first in cls.model_fields:  # model-level check whose message starts with the field
                loc = [first]
            errors.append({"field": ".".join([prefix, *loc]), "message": msg, "type": e["type"]})
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ApiError(422, message, field=errors[0]["field"], errors=errors) from None


def _no_server_fields(data: dict[str, Any], prefix: str = "config") -> None:
    for key in SERVER_FIELDS:
        if key in data:
            raise ApiError(
                422,
                f"{prefix}.{key} is chosen by the server (outputs go to the artifact directory)",
                field=f"{prefix}.{key}",
            )


def _check_dataset(session: Session, value: Any, field: str) -> None:
    """A dataset reference in a config: a stored `db:<id>` that exists, or a built-in dataset's name."""
    from aicd.data import loaders

    if isinstance(value, str) and value.startswith("db:"):
        ref = value[3:]
        dataset_ref(session, int(ref) if ref.isdigit() and len(ref) < 20 else 0, field)
        return
    if not isinstance(value, str) or value not in loaders.DATASETS:
        raise ApiError(
            422,
            f"{field}: {value!r} is not a built-in dataset ({', '.join(sorted(loaders.DATASETS))});"
            " upload it and pass its dataset_id instead",
            field=field,
        )


def _check_name(value: Any, field: str) -> str:
    """Run and sweep names become directories and unique columns: the API's name rule, checked wherever the
    name came from (the request's `name` or the config's)."""
    if not isinstance(value, str) or len(value) > NAME_MAX or not re.fullmatch(NAME_PATTERN, value):
        raise ApiError(422, f"{field}: must be {NAME_RULE} (got {str(value)[:60]!r})", field=field)
    return value


def _check_model(spec: Any, field: str) -> None:
    from aicd.models import is_tiny, parse_tiny

    if isinstance(spec, str) and is_tiny(spec):
        try:
            parse_tiny(spec)
        except ValueError as exc:
            raise ApiError(422, f"{field}: {exc}", field=field) from None


def dataset_ref(session: Session, dataset_id: int | None, field: str = "dataset_id") -> Dataset | None:
    if dataset_id is None:
        return None
    dataset = session.get(Dataset, dataset_id) if 1 <= dataset_id <= MAX_ID else None
    if dataset is None:
        raise ApiError(404, f"dataset {dataset_id} not found", field=field)
    return dataset


def _check_shots(session: Session, cfg: TrainConfig, field: str) -> None:
    """`n_shots` against the training set the run will read (a stored dataset or a built-in one, after
    `limit`): aicd's one rule (`check_shots_fit`), answered as a 422 naming `field`."""
    found = _training_set_size(session, cfg.dataset, cfg.split, cfg.seed)
    if found is None:
        return
    try:
        check_shots_fit(cfg, *found, field=field)
    except ConfigError as exc:
        raise ApiError(422, str(exc), field=field) from None


def _training_set_size(session: Session, ref: str, split: str, seed: int) -> tuple[int, str] | None:
    """(examples, what to call it) of a checked dataset reference; None where this process cannot count it
    (a built-in dataset whose files are not readable here: the worker reports that)."""
    from aicd.data import loaders

    if ref.startswith("db:"):  # already checked by _check_dataset: an existing row
        dataset = session.get(Dataset, int(ref[3:]))
        return (dataset.n_examples, f"dataset {dataset.id}") if dataset is not None else None
    if ref not in loaders.DATASETS:
        return None
    try:  # no torch: the registry's loader reads the files once per process (loaders.split_size)
        size = loaders.split_size(ref, split, seed=seed)
    except (AICDError, OSError, ValueError):
        return None
    return (size, f"{ref}/{split}") if size is not None else None


def train_config(
    session: Session, name: str | None, dataset_id: int | None, config: dict[str, Any]
) -> TrainConfig:
    data = dict(config)
    _no_server_fields(data)
    if name is None and data.get("name") is not None:
        _check_name(data["name"], "config.name")
    data["name"] = name or data.get("name") or f"run-{uuid.uuid4().hex[:8]}"
    data["output_dir"] = "runs"
    dataset = dataset_ref(session, dataset_id)
    if dataset is not None:
        data["dataset"] = f"db:{dataset_id}"
    cfg = _validate(TrainConfig, data)
    if dataset_id is None:
        _check_dataset(session, cfg.dataset, "config.dataset")
    _check_shots(session, cfg, "config.n_shots")
    if cfg.eval_dataset is not None:
        _check_dataset(session, cfg.eval_dataset, "config.eval_dataset")
    _check_model(cfg.model, "config.model")
    if cfg.max_steps is not None and cfg.max_steps > INT32_MAX:  # runs.total_steps is a 32-bit integer
        raise ApiError(422, f"config.max_steps must be <= {INT32_MAX}", field="config.max_steps")
    return cfg


def eval_config(
    session: Session,
    run_id: int | None,
    dataset_id: int | None,
    shots_dataset_id: int | None,
    config: dict[str, Any],
    output_dir: str,
) -> EvalConfig:
    data = dict(config)
    _no_server_fields(data)
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None:
            raise not_found("run", run_id)
        if run.step == 0 and run.status != "succeeded":
            raise ApiError(409, f"run {run_id} has no checkpoint yet (status {run.status})", field="run_id")
        data["model"] = f"run:{run_id}"
        demonstrations = demonstrations_for((run.config or {}).get("objective"))
        if demonstrations != "rationale":  # demonstrate as it was trained (a nocot student: answers only)
            data.setdefault("demonstrations", demonstrations)
    elif not data.get("model"):
        raise ApiError(422, "config.model is required unless run_id is given", field="config.model")
    elif str(data["model"]).startswith("run:"):  # any other model training accepts is fine (gpt2, org/name)
        raise ApiError(422, "config.model: use run_id to evaluate a trained run", field="config.model")
    if dataset_ref(session, dataset_id) is not None:
        data["dataset"] = f"db:{dataset_id}"
    if dataset_ref(session, shots_dataset_id, "shots_dataset_id") is not None:
        data["shots_dataset"] = f"db:{shots_dataset_id}"
    data["output_dir"] = output_dir
    cfg = _validate(EvalConfig, data)
    if dataset_id is None:
        _check_dataset(session, cfg.dataset, "config.dataset")
    if shots_dataset_id is None and cfg.shots_dataset is not None:
        _check_dataset(session, cfg.shots_dataset, "config.shots_dataset")
    if any(k < 0 for k in cfg.shots) or not cfg.shots or not cfg.seeds:
        raise ApiError(422, "config.shots and config.seeds must be non-empty", field="config.shots")
    _check_model(cfg.model, "config.model")
    if cfg.backend == "openai" and cfg.base_url:
        _check_server(cfg.base_url, "config.base_url")
    return cfg


def _check_server(base_url: str, field: str) -> None:
    """An openai-backend evaluation is not queued when nothing answers at its base_url."""
    from aicd.errors import ConfigError
    from aicd.generation.openai_compat import check_server

    try:
        check_server(base_url, timeout=5.0)
    except ConfigError as exc:
        raise ApiError(422, f"config.{exc}", field=field) from None


MAX_GRID = 512


def sweep_config(
    session: Session,
    name: str | None,
    config: dict[str, Any],
    dataset_id: int | None = None,
    eval_dataset_ids: list[int] | None = None,
) -> SweepConfig:
    data = dict(config)
    _no_server_fields(data)
    dataset = dataset_ref(session, dataset_id)
    if dataset is not None:
        data["train"] = {**(data.get("train") or {}), "dataset": f"db:{dataset_id}"}
    if eval_dataset_ids:
        for ds_id in eval_dataset_ids:
            dataset_ref(session, ds_id, "eval_dataset_ids")
        data["eval_datasets"] = [f"db:{i}" for i in eval_dataset_ids]
    if name is None and data.get("name") is not None:
        _check_name(data["name"], "config.name")
    data["name"] = name or data.get("name") or f"sweep-{uuid.uuid4().hex[:8]}"
    data["output_dir"] = "sweeps"
    cfg = _validate(SweepConfig, data)
    if cfg.annotate is not None:  # the server annotates through its own annotation jobs
        raise ApiError(
            422,
            "config.annotate: not available for server sweeps; annotate the dataset with POST /annotations, "
            "then sweep over the annotated dataset",
            field="config.annotate",
        )
    if cfg.star is not None:  # its data step (the student rationalising) has no server job yet
        raise ApiError(
            422,
            "config.star: not available for server sweeps; annotate the dataset with POST /annotations "
            "(source self, model = the student), then sweep condgen over the annotated dataset, or run the "
            "sweep with `aicd sweep`",
            field="config.star",
        )
    if cfg.untuned:  # every planned run of a server sweep is a training run row
        raise ApiError(
            422,
            "config.untuned: not available for server sweeps; evaluate the untuned student with POST "
            "/evaluations (config.model = the student) or run the sweep with `aicd sweep`",
            field="config.untuned",
        )
    train = dict(cfg.train)
    _no_server_fields(train, "config.train")
    # the shared evaluation fields, typed (run-specific ones are filled in per run by plan_sweep)
    _validate(EvalConfig, {**cfg.eval, "model": "check"}, "config.eval")
    keys = list(cfg.grid)
    combos = list(itertools.islice(itertools.product(*(cfg.grid[k] for k in keys)), MAX_GRID + 1))
    if len(combos) > MAX_GRID:
        raise ApiError(422, f"config.grid has more than {MAX_GRID} combinations", field="config.grid")
    run_cfgs = []  # every run of the grid must be a valid TrainConfig
    for combo in combos:
        point = dict(zip(keys, combo, strict=True))
        run_cfg = _validate(
            TrainConfig, {**train, **point, "name": "check", "output_dir": "sweeps"}, "config.train"
        )
        run_cfgs.append((run_cfg, "config.grid.n_shots" if "n_shots" in point else "config.train.n_shots"))
    refs = [("config.train.dataset", train.get("dataset", "svamp"))]
    if train.get("eval_dataset") is not None:
        refs.append(("config.train.eval_dataset", train["eval_dataset"]))
    refs += [("config.grid.dataset", v) for v in cfg.grid.get("dataset", [])]
    refs += [("config.eval_datasets", v) for v in cfg.eval_datasets or []]
    if cfg.eval.get("shots_dataset") is not None:
        refs.append(("config.eval.shots_dataset", cfg.eval["shots_dataset"]))
    for field, value in refs:
        _check_dataset(session, value, field)
    for run_cfg, field in run_cfgs:  # each run's training set as it reads it (dataset, split, seed, limit)
        _check_shots(session, run_cfg, field)
    from aicd.sweep import plan_sweep  # no torch: expands the grid and validates every run's configs

    for planned in plan_sweep(cfg):  # each becomes a run named <sweep>.<run>
        if len(f"{cfg.name}.{planned.name}") > NAME_MAX:
            raise ApiError(
                422,
                f"name: the sweep's run names ({cfg.name}.{planned.name[:40]}...) would be longer than "
                f"{NAME_MAX} characters; choose a shorter sweep name",
                field="name",
            )
    return cfg
