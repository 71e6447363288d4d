"""Sweeps: a YAML grid over TrainConfig fields (objective × ω schedule × shots × seed …) → train + evaluate
each run → a Table-1-shaped results table (CSV + Markdown) and the paper's figures (PNG).

Layout of `output_dir/name/`:
  sweep.yaml                          the SweepConfig as run
  annotated/, star/                   training data written by the `annotate:` and `star:` steps
  runs/<run>/                         each training run (`aicd.train.train`, resumable)
  evals/<run>/<dataset>/results.json  each evaluation (`aicd.evaluate.evaluate`), skipped when present
  results.csv, results.md, fig1_accuracy_vs_omega.png, fig2_accuracy_vs_shots.png

`plan_sweep` (no torch import) expands the grid so the API/UI can show what will run before anything does.
Runs whose objective ignores ω (condgen: only the last rationale is weighted; lm: every token) are
collapsed across ω/schedule values, so a grid `objective × omega` trains each baseline once; likewise runs
whose schedule ignores ω (constant, custom/explicit weights) are collapsed across ω values.
nocot runs are evaluated with answer-only demonstrations, as they were trained.
Two rows are not grid objectives: `star` (`star:`, the student trained on its own rationalised chains) and
`vanilla` (`untuned:`, the student as loaded); both are evaluated exactly like the grid's runs.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicd.config import EvalConfig, SweepConfig, TrainConfig, build_config, save_config
from aicd.errors import AICDError, ConfigError
from aicd.objective_registry import REGISTRY, demonstrations_for, objective_spec
from aicd.objective_registry import uses_omega as objective_uses_omega
from aicd.pretrain import is_pretrained, pretrained_path
from aicd.results import CAPTION, STAR, VANILLA, aggregate, format_cell, row_rank
from aicd.sweep_annotation import (
    STAR_OBJECTIVE,
    annotate_star_data,
    annotate_training_data,
    annotated_path,
    check_annotate_config,
    star_path,
    star_settings,
    training_datasets,
)
from aicd.threads import configure_threads, default_threads

if TYPE_CHECKING:
    from aicd.evaluate import EvalResult
    from aicd.train import TrainResult

OMEGA_FIELDS = ("omega", "schedule", "weights")
UNTUNED = VANILLA  # the row of the student evaluated before fine-tuning (the paper's name)
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
DATA_JSON = "data.json"  # per dataset: role, split, source, items actually used
FIG1 = "fig1_accuracy_vs_omega.png"
FIG2 = "fig2_accuracy_vs_shots.png"
CSV_FIELDS = [
    "objective",
    "variant",
    "schedule",
    "omega",
    "n_shots",
    "dataset",
    "shots",
    "mean",
    "std",
    "n",
    "n_values",
    "accuracies",
    "runs",
]


@dataclass(frozen=True)
class PlannedRun:
    """One cell of the grid: its run name, the grid values that define it and the configs it will use."""

    name: str
    params: dict[str, Any]  # grid key -> value of this run (after collapsing ω for condgen/lm)
    train: TrainConfig
    evals: list[EvalConfig]  # one per evaluation dataset
    trained: bool = True  # False: the untuned student (`SweepConfig.untuned`), evaluated as it is
    label: str | None = None  # its table row when that is not its objective (`aicd.results.BASELINE_ROWS`)

    @property
    def run_dir(self) -> Path:
        return self.train.run_dir

    @property
    def row(self) -> str:
        """The table row it belongs to: its objective, `star` for the STaR row, `vanilla` for the untuned one."""
        return self.label or self.train.objective

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary for the API/UI's "what will run" view."""
        return {
            "name": self.name,
            "params": self.params,
            "objective": self.row,
            "dataset": self.train.dataset,
            "seed": self.train.seed,
            "eval_datasets": [e.dataset for e in self.evals],
            "shots": self.evals[0].shots if self.evals else [],
            "eval_seeds": self.evals[0].seeds if self.evals else [],
        }


class SweepCallback:
    """Progress hooks for the CLI/worker (no-ops by default; subclass what you need)."""

    def on_plan(self, runs: list[PlannedRun]) -> None:
        """The expanded grid, before anything runs."""

    def on_run_start(self, index: int, run: PlannedRun) -> None:
        """Run `index` (0-based) of the plan starts (training, then its evaluations)."""

    def on_train_log(self, run: PlannedRun, step: int, total_steps: int, metrics: dict[str, Any]) -> None:
        """A training log line of the current run."""

    def on_eval_progress(self, run: PlannedRun, dataset: str, done: int, total: int) -> None:
        """Generation progress of the current evaluation."""

    def on_run_end(self, index: int, run: PlannedRun, status: str) -> None:
        """status: "done" (trained/evaluated now), "skipped" (results already existed) or "stopped"."""

    def should_stop(self) -> bool:
        """Polled during training and evaluation; True stops after the current step/batch (resumable)."""
        return False


@dataclass
class SweepResult:
    table_rows: list[dict[str, Any]]
    csv_path: Path
    md_path: Path
    plots: list[Path]
    runs: list[PlannedRun] = field(default_factory=list)
    stopped: bool = False
    sweep_dir: Path | None = None


# ---------------------------------------------------------------- planning (no torch)


def sweep_dir(config: SweepConfig) -> Path:
    return Path(config.output_dir) / config.name


def _slug(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "_".join(_slug(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if "/" in text or text.endswith((".jsonl", ".json", ".csv")):  # a dataset path or hub id
        text = Path(text.rstrip("/")).stem or text
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_") or "x"


def _run_name(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        parts.append(_slug(value) if key in ("objective", "dataset") else f"{key}{_slug(value)}")
    return "-".join(parts) or "run"


def uses_omega(settings: dict[str, Any]) -> bool:
    """Whether ω changes the loss of a run with these TrainConfig fields: not for the ω-free objectives, nor
    for a schedule whose weights ignore it (constant: all 1; custom, or any explicit `weights` list)."""
    fields = TrainConfig.model_fields
    objective = settings.get("objective", fields["objective"].default)
    schedule = settings.get("schedule", fields["schedule"].default)
    return objective_uses_omega(objective, schedule, settings.get("weights"))


def _collapse(objective: str, params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Grid values that do not change a run's loss are dropped from its parameters (so duplicates merge):
    ω, schedule and weights for an ω-free objective; ω alone for a schedule that ignores it."""
    spec = REGISTRY.get(objective)  # an unknown name is left to TrainConfig's validation message
    if spec is not None and spec.omega_free:
        return {k: v for k, v in params.items() if k not in OMEGA_FIELDS}
    if not uses_omega({**base, **params, "objective": objective}):
        return {k: v for k, v in params.items() if k != "omega"}
    return params


def dataset_label(dataset: str) -> str:
    """A short column name for a dataset: its registry name, or the file/folder stem of a path."""
    return _slug(dataset) if ("/" in dataset or "." in dataset) else dataset


def plan_sweep(config: SweepConfig) -> list[PlannedRun]:
    """Every run of the grid with validated Train/Eval configs; ConfigError names the run and field.

    Then the STaR row's runs (`star:`) and the untuned student's (`untuned:`), under the same evaluations.
    Does not import torch and touches no files, so the API can call it to preview a sweep.
    """
    root = sweep_dir(config)
    runs = _grid_runs(config, root)
    star = _star_runs(config, root) if config.star is not None else []
    untuned = _untuned_runs(runs, root) if config.untuned else []
    runs = [*runs, *star, *untuned]
    _check_full_data(runs)
    if config.annotate is not None:
        check_annotate_config(config)
    if config.star is not None:
        star_settings(config, star_student(config))
    if (config.annotate is not None or config.star is not None) and any(r.train.full_data for r in runs):
        from aicd.provenance import require_full_data

        require_full_data(training_datasets(config), "annotate (full_data)")
    return runs


def _grid_combos(config: SweepConfig) -> list[dict[str, Any]]:
    """The grid's points as {key: value}, in grid order (one empty point for an empty grid)."""
    keys = list(config.grid)
    combos = itertools.product(*(config.grid[k] for k in keys)) if keys else [()]
    return [dict(zip(keys, values, strict=True)) for values in combos]


def _grid_runs(config: SweepConfig, root: Path) -> list[PlannedRun]:
    """One run per distinct grid point (points that differ only in what the objective ignores merge)."""
    runs: dict[str, PlannedRun] = {}
    for params in _grid_combos(config):
        objective = str(
            {**config.train, **params}.get("objective", TrainConfig.model_fields["objective"].default)
        )
        params = _collapse(objective, params, config.train)
        name = _run_name(params)
        if name not in runs:
            runs[name] = _plan_run(config, root, name, params)
    return list(runs.values())


def _star_runs(config: SweepConfig, root: Path) -> list[PlannedRun]:
    """The STaR row: every grid point but its objective, trained with STAR_OBJECTIVE on the student's own
    chains (`<sweep>/star/<dataset>.jsonl`, annotated once by `run_sweep`); named `star-…`, row `star`."""
    star_student(config)  # one student per sweep, or a ConfigError now
    runs: dict[str, PlannedRun] = {}
    for point in _grid_combos(config):
        rest = {k: v for k, v in point.items() if k != "objective"}
        params = {"objective": STAR, **_collapse(STAR_OBJECTIVE, rest, config.train)}
        name = _run_name(params)
        if name not in runs:
            runs[name] = _plan_run(config, root, name, params, star=True)
    return list(runs.values())


def star_student(config: SweepConfig) -> str:
    """The model that writes the STaR row's chains: the sweep's student (a `pretrained:` base: its folder)."""
    if "model" in config.grid:
        raise ConfigError(
            "star: the STaR row's chains are the student's own, so a sweep with a star row has one student; "
            "drop grid.model"
        )
    model = str(config.train.get("model", TrainConfig.model_fields["model"].default))
    return str(pretrained_path(model, Path(config.output_dir))) if is_pretrained(model) else model


def _plan_run(
    config: SweepConfig, root: Path, name: str, params: dict[str, Any], *, star: bool = False
) -> PlannedRun:
    """The run of one (collapsed) grid point: its TrainConfig and one EvalConfig per evaluation dataset.

    Evaluations follow one protocol for every row; only the model, the demonstrations a student was trained
    with (nocot: answers) and the output folder differ. A STaR run trains on the student's own chains."""
    base = {**config.train, **params}
    if star:
        base["objective"] = STAR_OBJECTIVE
    if is_pretrained(str(base.get("model", ""))):  # a named base: its cached folder (built by run_sweep)
        base["model"] = str(pretrained_path(str(base["model"]), Path(config.output_dir)))
    original = str(base.get("dataset", TrainConfig.model_fields["dataset"].default))
    eval_datasets = config.eval_datasets or [original]
    shots_from: dict[str, Any] = {}
    if config.annotate is not None:  # train on the teacher's annotation of the data, evaluate on the data
        base["dataset"] = str(annotated_path(root, original))
        shots_from = {"shots_dataset": base["dataset"]}  # demonstrations: the annotated training data
    if star:
        base["dataset"] = str(star_path(root, original))
    if (
        base.get("eval_every")
        and not base.get("eval_dataset")
        and (config.eval_datasets or shots_from or star)
    ):
        base["eval_dataset"] = eval_datasets[0]  # the accuracy curve tracks the first evaluation
    train_cfg = build_config(
        TrainConfig,
        {**base, "name": name, "output_dir": str(root / "runs")},
        source=f"sweep run '{name}'",
    )
    evals = []
    for ds in eval_datasets:
        data = {
            **shots_from,
            "template": train_cfg.template.model_dump(),
            "answer_kind": train_cfg.answer_kind,
            # demonstrate the way the student was trained: nocot episodes hold answers, not rationales
            "demonstrations": demonstrations_for(train_cfg.objective),
            "shot_selection": train_cfg.shot_selection,  # a grid axis changes training and evaluation
            **config.eval,
            "model": str(train_cfg.run_dir / "final"),
            "dataset": ds,
            "output_dir": str(root / "evals" / name / dataset_label(ds)),
        }
        evals.append(build_config(EvalConfig, data, source=f"sweep run '{name}' eval on '{ds}'"))
    return PlannedRun(name=name, params=params, train=train_cfg, evals=evals, label=STAR if star else None)


def _untuned_runs(runs: Sequence[PlannedRun], root: Path) -> list[PlannedRun]:
    """One untrained row per training dataset: the student as loaded, under every evaluation of the sweep
    (demonstrations with rationales, drawn from that training data as for the trained runs)."""
    first: dict[str, PlannedRun] = {}
    for run in runs:
        first.setdefault(run.train.dataset, run)
    out = []
    for dataset, run in first.items():
        name = UNTUNED if len(first) == 1 else f"{UNTUNED}-{_slug(dataset)}"
        evals = [
            e.model_copy(
                update={
                    "model": run.train.model,
                    "demonstrations": "rationale",
                    "output_dir": str(root / "evals" / name / dataset_label(e.dataset)),
                }
            )
            for e in run.evals
        ]
        params = {"objective": UNTUNED, **({"dataset": dataset} if len(first) > 1 else {})}
        out.append(
            PlannedRun(name=name, params=params, train=run.train, evals=evals, trained=False, label=UNTUNED)
        )
    return out


def _check_full_data(runs: Sequence[PlannedRun]) -> None:
    """A run with `full_data` must not fall back to the packaged samples (DataError before anything runs)."""
    from aicd.provenance import require_full_data

    for run in runs:
        if run.train.full_data:
            datasets = [
                run.train.dataset,
                *(e.dataset for e in run.evals),
                *(e.shots_dataset for e in run.evals),
            ]
            require_full_data(datasets, f"sweep run '{run.name}' (full_data)")


def sweep_data(runs: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """Per (role, dataset, split, limit) the sweep's runs use: its source and item count (`aicd.provenance`)."""
    from aicd.provenance import describe_dataset

    wanted: dict[tuple[Any, ...], None] = {}
    for run in runs:
        t = run.train
        if run.trained:
            wanted[("train", t.dataset, t.split, t.limit, t.seed)] = None
        for e in run.evals:
            wanted[("eval", e.dataset, e.split, e.limit, 0)] = None
            if 0 not in e.shots or len(e.shots) > 1:
                wanted[("shots", e.shots_dataset or e.dataset, e.shots_split, None, 0)] = None
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for role, dataset, split, limit, seed in wanted:
        key = (role, dataset, split, limit)
        if key not in seen:
            seen[key] = describe_dataset(role, dataset, split, limit, seed)
    return list(seen.values())


# ---------------------------------------------------------------- running


def check_fresh(config: SweepConfig) -> None:
    """AICDError when the sweep directory already has run outputs (what resume=False must not touch)."""
    root = sweep_dir(config)
    if (root / "runs").is_dir() and any((root / "runs").iterdir()):
        raise AICDError(f"sweep directory {root} already has runs; resume it (--resume) or pick another name")


def _eval_done(out_dir: str | None) -> bool:
    if not out_dir:
        return False
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        return False
    import json

    try:
        return not json.loads(path.read_text(encoding="utf-8")).get("stopped", False)
    except (OSError, ValueError):
        return False


def run_sweep(
    config: SweepConfig,
    *,
    callback: SweepCallback | None = None,
    resume: bool = True,
    progress: bool = True,
    parallel: int = 1,
) -> SweepResult:
    """Train and evaluate every planned run, then write the table and plots.

    resume=True skips finished evaluations and resumes unfinished training runs from their checkpoints;
    resume=False refuses to touch a sweep directory that already has run outputs. A callback whose
    should_stop() turns True ends the sweep early (stopped=True); the table then covers finished runs.
    parallel=N runs N runs at once, each in its own process (`run_parallel`); 1 runs them in order here.
    """
    callback = callback or SweepCallback()
    runs = plan_sweep(config)
    root = sweep_dir(config)
    if not resume:
        check_fresh(config)
    root.mkdir(parents=True, exist_ok=True)
    save_config(config, root / "sweep.yaml")
    annotate_training_data(config, root)  # the paper's pipeline: a config's `annotate:` step, before training
    ensure_pretrained_bases(config, root, progress=progress)
    if config.star is not None:  # the STaR row's data: the student's own chains (after its base is built)
        annotate_star_data(config, root, star_student(config))
    callback.on_plan(runs)

    todo: list[tuple[int, PlannedRun]] = []
    for index, run in enumerate(runs):
        if all(_eval_done(e.output_dir) for e in run.evals):
            callback.on_run_end(index, run, "skipped")
        else:
            todo.append((index, run))
    if parallel > 1:
        stopped = run_parallel(config, todo, parallel, callback)
        return write_report(config, runs, stopped=stopped)
    stopped = False
    for index, run in todo:
        callback.on_run_start(index, run)
        status = run_one(run, callback, progress=progress)
        callback.on_run_end(index, run, status)
        if status == "stopped":
            stopped = True
            break
    return write_report(config, runs, stopped=stopped)


def pretrained_specs(config: SweepConfig) -> list[str]:
    """The `pretrained:` bases the sweep's runs start from (none for a sweep of ordinary models)."""
    specs = [config.train.get("model"), *config.grid.get("model", [])]
    return list(dict.fromkeys(str(s) for s in specs if s is not None and is_pretrained(str(s))))


def ensure_pretrained_bases(
    config: SweepConfig, root: Path, *, progress: bool = True, callback: Any = None
) -> list[dict[str, Any]]:
    """Build (once, cached under `output_dir/pretrain/`) every `pretrained:` base the sweep names, and
    record which weights it used in `<sweep>/base.json` (spec, folder, weights hash). `callback`: an
    `aicd.train.TrainCallback` that follows (and may cancel) a build."""
    import json

    from aicd.pretrain import ensure_pretrained

    used = []
    for spec in pretrained_specs(config):
        base = ensure_pretrained(spec, Path(config.output_dir), progress=progress, callback=callback)
        used.append(
            {
                "spec": spec,
                "path": str(base.path),
                "weights_hash": base.weights_hash,
                "trained_now": base.trained_now,
            }
        )
    if used:
        (root / "base.json").write_text(json.dumps(used, indent=2) + "\n", encoding="utf-8")
    return used


def run_one(run: PlannedRun, callback: SweepCallback, *, progress: bool = True) -> str:
    """Train one planned run (resuming from its checkpoint) and evaluate it where not done yet;
    "done", or "stopped" when the callback asked to stop."""
    from aicd.evaluate import EvalCallback, evaluate
    from aicd.train import TrainCallback, train

    class _TrainHook(TrainCallback):
        total = 0

        def on_start(self, total_steps: int, start_step: int) -> None:
            self.total = total_steps

        def on_log(self, step: int, metrics: dict[str, Any]) -> None:
            callback.on_train_log(run, step, self.total, metrics)

        def should_stop(self) -> bool:
            return callback.should_stop()

    if run.trained:
        result: TrainResult = train(run.train, callback=_TrainHook(), resume=True, progress=progress)
        if result.stopped or result.final_dir is None:
            return "stopped"
        model = str(result.final_dir)
    else:
        model = run.train.model  # the untuned student, evaluated as it is
    for ev in run.evals:
        if _eval_done(ev.output_dir):
            continue

        class _EvalHook(EvalCallback):
            def on_progress(self, done: int, total: int, _ds: str = ev.dataset) -> None:
                callback.on_eval_progress(run, _ds, done, total)

            def should_stop(self) -> bool:
                return callback.should_stop()

        eval_cfg = ev.model_copy(update={"model": model})
        outcome: EvalResult = evaluate(eval_cfg, callback=_EvalHook(), progress=progress)
        if outcome.stopped:
            return "stopped"
    return "done"


def run_parallel(
    config: SweepConfig, todo: Sequence[tuple[int, PlannedRun]], parallel: int, callback: SweepCallback
) -> bool:
    """Run the planned runs in `parallel` local processes (spawned, so each has its own torch and device);
    whether any stopped. A run that fails raises here once the others have ended."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(parallel):
        slots.put(slot)
    stopped = False
    errors: list[BaseException] = []
    with ProcessPoolExecutor(
        parallel, mp_context=context, initializer=_take_slot, initargs=(slots, parallel)
    ) as pool:
        pending: dict[Future[str], tuple[int, PlannedRun]] = {}
        for index, run in todo:
            callback.on_run_start(index, run)
            future = pool.submit(_run_planned, config.model_dump(mode="json"), run.name)
            pending[future] = (index, run)
        while pending:
            if callback.should_stop():
                for future in pending:
                    future.cancel()  # not started yet: never started; running ones finish
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                index, run = pending.pop(future)
                if future.cancelled():
                    status = "stopped"
                elif future.exception() is not None:
                    errors.append(future.exception())  # type: ignore[arg-type]
                    continue
                else:
                    status = future.result()
                stopped = stopped or status == "stopped"
                callback.on_run_end(index, run, status)
    if errors:
        raise errors[0]
    return stopped


def _take_slot(slots: Any, parallel: int) -> None:
    """Process initializer: one slot per process; with several visible GPUs each process gets its own, and
    the CPU threads are shared out (torch is not imported yet in a spawned process)."""
    import os

    slot = slots.get()
    devices = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
    configure_threads(int(os.environ.get("AICD_THREADS") or default_threads(parallel)))


def _run_planned(config: dict[str, Any], name: str) -> str:
    """In a pool process: the planned run `name` of the sweep (re-planned: plans are deterministic)."""
    run = next(r for r in plan_sweep(SweepConfig.model_validate(config)) if r.name == name)
    return run_one(run, SweepCallback(), progress=False)


# ---------------------------------------------------------------- table and plots


def _load_rows(run: PlannedRun) -> list[dict[str, Any]]:
    """(dataset, shots, seed, accuracy) of each finished evaluation of `run`."""
    import json

    out = []
    for ev in run.evals:
        if not _eval_done(ev.output_dir):
            continue
        data = json.loads((Path(ev.output_dir) / "results.json").read_text(encoding="utf-8"))
        for row in data["rows"]:
            out.append(
                {
                    "dataset": dataset_label(ev.dataset),
                    "shots": int(row["shots"]),
                    "seed": int(row["seed"]),
                    "accuracy": float(row["accuracy"]),
                }
            )
    return out


def _variant(run: PlannedRun) -> str:
    """The grid values that distinguish runs of one objective, except seeds and the dataset."""
    parts = [f"{k}={_slug(v)}" for k, v in run.params.items() if k not in ("objective", "seed", "dataset")]
    return ", ".join(parts)


def build_table(runs: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """One row per (objective, variant, dataset, shots): mean, std and n by the rule of `aicd.results`
    (each run averaged over its evaluation seeds, then mean ± std over the runs, i.e. training seeds)."""
    observations = []
    about: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        variant = _variant(run)
        trained = run.trained
        about.setdefault(
            (run.row, variant),
            {
                "schedule": run.train.schedule
                if trained and not objective_spec(run.train.objective).omega_free
                else "",
                "omega": run.train.omega if trained and uses_omega(run.train.model_dump()) else None,
                "n_shots": run.train.n_shots if trained else 0,
            },
        )
        for row in _load_rows(run):
            observations.append({**row, "objective": run.row, "variant": variant, "run": run.name})
    keys = ("objective", "variant", "dataset", "shots")
    by_cell: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for o in observations:
        by_cell.setdefault(tuple(o[k] for k in keys), []).append(o)
    table = []
    for cell in aggregate(observations, keys):
        mine = by_cell[tuple(cell[k] for k in keys)]
        table.append(
            {
                **cell,
                **about[(cell["objective"], cell["variant"])],
                "accuracies": ";".join(f"{o['accuracy']:.4f}" for o in mine),
                "runs": ";".join(dict.fromkeys(o["run"] for o in mine)),
            }
        )
    return _sorted(table)


def _sorted(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table.sort(key=lambda r: (row_rank(r["objective"]), r["variant"], r["dataset"], r["shots"]))
    return table


def _row_label(row: dict[str, Any]) -> str:
    return row["objective"] + (f" ({row['variant']})" if row["variant"] else "")


def table_markdown(
    table: Sequence[dict[str, Any]], title: str = "Results", data: Sequence[dict[str, Any]] | None = None
) -> str:
    """Table 1 layout: rows are objectives (and grid variants), columns datasets, cells mean ± std (%); then
    the data used (source, split, items per dataset) when `data` is given."""
    from aicd.provenance import data_markdown

    lines = [f"# {title}", "", CAPTION, ""]
    if not table:
        return "\n".join([*lines, "No finished evaluations yet.", "", *(data_markdown(data) if data else [])])
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    for shots in sorted({r["shots"] for r in table}):
        rows = [r for r in table if r["shots"] == shots]
        labels = list(dict.fromkeys(_row_label(r) for r in rows))
        cells = {(_row_label(r), r["dataset"]): format_cell(r["mean"], r["std"], r["n"]) for r in rows}
        n_runs = {(_row_label(r), r["dataset"]): r["n"] for r in rows}
        lines += [
            f"## {shots}-shot",
            "",
            "| objective | " + " | ".join(datasets) + " | n |",
            "|---|" + "---|" * (len(datasets) + 1),
        ]
        for label in labels:
            ns = sorted({n_runs[(label, d)] for d in datasets if (label, d) in n_runs})
            lines.append(
                f"| {label} | "
                + " | ".join(cells.get((label, d), "–") for d in datasets)
                + f" | {'/'.join(map(str, ns))} |"
            )
        lines.append("")
    return "\n".join([*lines, *(data_markdown(data) if data else [])])


def write_table(
    table: Sequence[dict[str, Any]],
    out_dir: Path,
    title: str = "Results",
    data: Sequence[dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """results.csv and results.md (and data.json: the datasets behind them, when `data` is given)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    if data is not None:
        (out_dir / DATA_JSON).write_text(json.dumps(list(data), indent=1), encoding="utf-8")
    csv_path, md_path = out_dir / RESULTS_CSV, out_dir / RESULTS_MD
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})
    tmp.replace(csv_path)
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text(table_markdown(table, title, data), encoding="utf-8")
    tmp.replace(md_path)
    return csv_path, md_path


def write_report(
    config: SweepConfig, runs: Sequence[PlannedRun] | None = None, *, stopped: bool = False
) -> SweepResult:
    """(Re)build results.csv/.md and the figures from whatever evaluations have finished."""
    from aicd.plots import plot_accuracy_vs_omega, plot_accuracy_vs_shots

    runs = list(runs) if runs is not None else plan_sweep(config)
    root = sweep_dir(config)
    table = build_table(runs)
    csv_path, md_path = write_table(table, root, title=f"Sweep {config.name}", data=sweep_data(runs))
    plots = [
        p
        for p in (plot_accuracy_vs_omega(table, root / FIG1), plot_accuracy_vs_shots(table, root / FIG2))
        if p is not None
    ]
    return SweepResult(
        table_rows=table,
        csv_path=csv_path,
        md_path=md_path,
        plots=plots,
        runs=runs,
        stopped=stopped,
        sweep_dir=root,
    )


_INT_FIELDS = ("n_shots", "shots", "n", "n_values")
_FLOAT_FIELDS = ("omega", "mean", "std")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a results.csv written by `write_table`, with their numbers parsed back."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise AICDError(f"{path}: cannot read the results table ({exc.strerror or exc})") from None
    if rows and not set(CSV_FIELDS) <= set(rows[0]):
        raise AICDError(f"{path}: not a sweep results table (columns {', '.join(CSV_FIELDS)})")
    table = []
    for row in rows:
        out: dict[str, Any] = {k: row.get(k, "") for k in CSV_FIELDS}
        try:
            for k in _INT_FIELDS:
                out[k] = int(out[k])
            for k in _FLOAT_FIELDS:
                out[k] = float(out[k]) if out[k] != "" else None
        except ValueError as exc:
            raise AICDError(f"{path}: bad number in the results table ({exc})") from None
        table.append(out)
    return table


def merge_tables(sources: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of several sweeps' results tables (a sweep folder or its results.csv each) as one table.

    Table 1 ships as one sweep per dataset; merged, its columns are the datasets. The same (objective,
    variant, dataset, shots) cell in two sources is an error, not a silent choice.
    """
    merged: dict[tuple, dict[str, Any]] = {}
    origin: dict[tuple, Path] = {}
    for source in sources:
        path = Path(source)
        path = path / RESULTS_CSV if path.is_dir() else path
        if not path.is_file():
            raise AICDError(f"{source}: no {RESULTS_CSV} (run or resume the sweep first)")
        for row in read_table(path):
            key = (row["objective"], row["variant"], row["dataset"], row["shots"])
            if key in merged:
                label = _row_label(row)
                raise AICDError(
                    f"{path} and {origin[key]} both have {label} on {row['dataset']} at {row['shots']} shots"
                )
            merged[key], origin[key] = row, path
    return _sorted(list(merged.values()))


def merged_data(sources: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The data.json records of the merged sweeps (each once); a source without one adds nothing."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for source in sources:
        path = Path(source)
        path = (path if path.is_dir() else path.parent) / DATA_JSON
        if path.is_file():
            for d in json.loads(path.read_text(encoding="utf-8")):
                out.setdefault(json.dumps(d, sort_keys=True), d)
    return list(out.values())


def write_merged_report(
    sources: Sequence[str | Path], out_dir: str | Path, *, title: str = "Table 1"
) -> SweepResult:
    """Merge sweeps' results tables into out_dir/results.csv/.md (objectives × datasets) and the figures."""
    from aicd.plots import plot_accuracy_vs_omega, plot_accuracy_vs_shots

    table = merge_tables(sources)
    out = Path(out_dir)
    csv_path, md_path = write_table(table, out, title=title, data=merged_data(sources))
    plots = [
        p
        for p in (plot_accuracy_vs_omega(table, out / FIG1), plot_accuracy_vs_shots(table, out / FIG2))
        if p is not None
    ]
    return SweepResult(table_rows=table, csv_path=csv_path, md_path=md_path, plots=plots, sweep_dir=out)


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read a sweep YAML with `--set key=value` overrides.

    Keys naming a sweep field (`name`, `output_dir`, `grid.*`, `train.*`, `eval.*`, `eval_datasets`) apply
    as written; a key that is a grid axis pins that axis (`--set seed=1` → `grid.seed=[1]`); any other key
    goes to the shared train section (`--set model=Qwen/Qwen2.5-0.5B` → `train.model=…`).
    """
    from aicd.config import apply_overrides, parse_override, read_yaml

    data = read_yaml(path)
    grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
    routed = []
    for item in overrides or []:
        keys, value = parse_override(item)
        if keys[0] in SweepConfig.model_fields:
            routed.append(item)
        elif len(keys) == 1 and keys[0] in grid:
            data = apply_overrides(data, [])
            data["grid"] = {**grid, keys[0]: value if isinstance(value, list) else [value]}
            grid = data["grid"]
        else:
            routed.append(f"train.{item}")
    return build_config(SweepConfig, data, routed, source=str(path))
