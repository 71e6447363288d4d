"""Typed configs for training, evaluation and sweeps, loaded from YAML with `--set key=value` overrides.

This module never imports torch: the API process validates configs with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aicd.errors import ConfigError
from aicd.objective_registry import OBJECTIVE_NAMES
from aicd.shot_selection import ShotSelection

Objective = Literal[OBJECTIVE_NAMES]  # type: ignore[valid-type]  # the names of aicd.objective_registry
ScheduleName = Literal["paper", "constant", "linear", "exponential", "custom", "adaptive"]
AnswerKindOpt = Literal["number", "yesno", "auto"]
OBJECTIVES: tuple[str, ...] = OBJECTIVE_NAMES

MAX_SHOTS = 64
"""Most shots in a training episode or an evaluation prompt: far above the paper's 4-6, small enough that an
episode is built in bounded time (every shot is tokenized and most are dropped to fit max_length anyway)."""
INT32_MAX = 2**31 - 1
"""Counts and seeds end up in 32-bit database columns (steps, shots, seeds): larger values are refused here."""
MAX_EPOCHS = 10_000
TEXT_MAX = 1_000
"""Longest name, path, model id or template string in a config."""

Count = Annotated[int, Field(le=INT32_MAX)]
Seed = Annotated[int, Field(ge=0, le=INT32_MAX)]
Shots = Annotated[int, Field(ge=0, le=MAX_SHOTS)]
ShortText = Annotated[str, Field(max_length=TEXT_MAX)]


class _Strict(BaseModel):
    # allow_inf_nan=False: "inf"/"nan" (or a literal Infinity) for lr, omega, weights, epochs... is refused with
    # the field named, instead of training on NaN and ending "succeeded"
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TemplateConfig(_Strict):
    """How a shot is rendered; the paper's `Question: {x}\\nAnswer: {y}` joined by a blank line."""

    question_prefix: ShortText = Field("Question: ", description="text before each question")
    answer_prefix: ShortText = Field(
        "\nAnswer:", description="text between question and answer; the target starts after it"
    )
    separator: ShortText = Field("\n\n", description="text between shots")


class LoraSettings(_Strict):
    r: int = Field(8, gt=0, le=4096)
    alpha: int = Field(16, gt=0, le=INT32_MAX)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[ShortText] | ShortText = "all-linear"


class DistributedSettings(_Strict):
    """One run on several processes: `aicd train` re-launches itself with `accelerate launch` when > 1."""

    num_processes: Count = Field(
        1, ge=1, description="processes (one per GPU; on a machine without GPU, gloo CPU processes ≤ cores)"
    )
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp", description="ddp: replicated weights; fsdp / deepspeed (ZeRO-3): sharded, GPUs only"
    )
    config_file: ShortText | None = Field(
        None, description="accelerate config file (default for fsdp/deepspeed: aicd/configs/accelerate/)"
    )


class ScheduleConfig(_Strict):
    """The ω weights of the n shots of an episode (see `aicd.objectives.omega_weights`)."""

    n_shots: int = Field(
        4, gt=0, le=MAX_SHOTS, description="shots per training episode (paper: 4 math, 6 commonsense)"
    )
    schedule: ScheduleName = Field("paper", description="how ω_1..ω_n are chosen")
    omega: float = Field(
        0.1,
        ge=0,
        description="ω of earlier shots (paper), the start of linear/exponential or the largest context ω "
        "(adaptive, experimental: `aicd.adaptive_omega`); constant (all 1) and "
        "custom/weights ignore it",
    )
    weights: list[float] | None = Field(
        None, max_length=MAX_SHOTS, description="explicit ω_1..ω_n for schedule=custom"
    )

    @model_validator(mode="after")
    def _check_weights(self) -> ScheduleConfig:
        from aicd.objectives import omega_weights

        omega_weights(self.schedule, self.n_shots, omega=self.omega, weights=self.weights)
        return self


class TrainConfig(ScheduleConfig):
    """One distillation run. Defaults follow the paper (AdamW, lr 7e-6, cosine, ≤10 epochs)."""

    name: str = Field(
        "run",
        max_length=200,
        pattern=r"^\.*[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$",  # not only dots: `.`/`..` would leave output_dir
        description="run name; outputs go to output_dir/name",
    )
    output_dir: ShortText = Field("runs", description="parent folder of the run directory")
    model: ShortText = Field("tiny:gpt2", description="HF hub id, local path, or tiny:<arch> (gpt2|llama)")
    dataset: ShortText = Field("svamp", description="built-in dataset name or path to an annotated JSONL")
    split: ShortText = "train"
    limit: Count | None = Field(None, gt=0, description="use only the first N training examples")
    answer_kind: AnswerKindOpt = "auto"
    objective: Objective = "aicd"
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    max_length: Count = Field(1024, gt=16, description="tokens per episode; earliest shots are dropped first")
    epochs: float = Field(10, gt=0, le=MAX_EPOCHS)
    max_steps: Count | None = Field(None, gt=0, description="stop after this many optimizer steps")
    lr: float = Field(7e-6, gt=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = Field(1.0, gt=0)
    batch_size: Count = Field(8, gt=0, description="episodes per optimizer step (global batch)")
    micro_batch_size: Count = Field(
        4, gt=0, description="episodes per forward pass; batch_size/micro_batch_size = accumulation"
    )
    batching: Literal["length_grouped", "naive"] = "length_grouped"
    reduction: Literal["sum", "token"] = Field(
        "sum", description="sum: Eq. 1 per episode; token: per weighted token"
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    seed: Seed = 0
    full_data: bool = Field(
        False,
        description="paper scale: built-in datasets must resolve to their full splits; fail (one line, nothing "
        "written) instead of silently using the packaged 200/100-item samples",
    )
    save_every: Count = Field(0, ge=0, description="checkpoint every N optimizer steps (0 = only at the end)")
    keep_checkpoints: Count = Field(2, gt=0)
    log_every: Count = Field(1, gt=0)
    shot_selection: ShotSelection = Field(
        "random",
        description="context shots of training episodes and, in a sweep, evaluation demonstrations: random "
        "(the paper), similar (nearest questions by BM25) or diverse (least similar to each other)",
    )
    eval_every: Count = Field(
        0,
        ge=0,
        description="every N steps and at the end, greedy accuracy on eval_limit held-out items (0 = off)",
    )
    eval_dataset: ShortText | None = Field(
        None, description="where that accuracy is measured (default: dataset)"
    )
    eval_split: ShortText = Field("test", description="split of eval_dataset used for it")
    eval_limit: Count = Field(32, gt=0, description="items scored at each evaluation during training")
    eval_shots: Shots = Field(0, description="demonstrations in those prompts (from the training examples)")
    eval_max_new_tokens: Count = Field(128, gt=0)
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)
    max_nonfinite_steps: int = Field(
        1, gt=0, le=1000, description="NaN/inf losses in a row (each step skipped) before the run fails"
    )
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none", description="also log params and metrics through accelerate's tracker (run_dir/tracking/)"
    )

    @model_validator(mode="after")
    def _check_batch(self) -> TrainConfig:
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        procs = self.distributed.num_processes
        if self.batch_size % (self.micro_batch_size * procs):
            raise ValueError(
                f"batch_size must be a multiple of micro_batch_size × distributed.num_processes ({procs})"
            )
        if self.distributed.strategy == "deepspeed" and self.batch_size != self.micro_batch_size * procs:
            raise ValueError(
                "batch_size: with distributed.strategy deepspeed it must equal micro_batch_size × num_processes "
                "(DeepSpeed steps the optimizer inside backward, so there is no accumulation)"
            )
        if self.eval_every and self.distributed.strategy != "ddp":
            raise ValueError("eval_every: not available with sharded weights (fsdp/deepspeed); use aicd eval")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def check_shots_fit(cfg: TrainConfig, size: int, what: str, field: str = "n_shots") -> None:
    """An episode holds n_shots distinct examples of the (limited) training set of `size` examples: more shots
    than examples is a config error naming `field`, not a run that silently trains on fewer. The one rule the
    API (stored and built-in datasets) and the CLI (`aicd train`, `aicd sweep`) apply."""
    usable = min(size, cfg.limit or size)
    if cfg.n_shots > usable:
        limited = f" (limit {cfg.limit})" if cfg.limit and cfg.limit < size else ""
        raise ConfigError(
            f"{field}: {cfg.n_shots} shots but {what} has only {usable} training examples{limited}"
        )


def check_training_set(cfg: TrainConfig, field: str = "n_shots") -> None:
    """`check_shots_fit` against the training set `cfg` reads, where it can be counted without a download (a
    registered dataset or a local file; `train` checks a hub id once it has loaded the examples)."""
    from aicd.data.loaders import DATASETS, split_size  # reads data: only when a boundary asks

    size = split_size(cfg.dataset, cfg.split, seed=cfg.seed)
    if size is not None:
        what = f"{cfg.dataset}/{cfg.split}" if cfg.dataset in DATASETS else cfg.dataset
        check_shots_fit(cfg, size, what, field)


class EvalConfig(_Strict):
    """k-shot evaluation: greedy generation, answer extraction, accuracy per (shots, seed)."""

    model: ShortText = Field(..., description="checkpoint path, HF hub id, or tiny:<arch>")
    dataset: ShortText = Field("svamp", description="built-in dataset name or path to a JSONL")
    split: ShortText = "test"
    shots_dataset: ShortText | None = Field(
        None, description="where k-shot demonstrations come from (default: dataset)"
    )
    shots_split: ShortText = "train"
    shots: list[Shots] = Field(default_factory=lambda: [0], max_length=MAX_SHOTS + 1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], max_length=1000)
    limit: Count | None = Field(None, gt=0)
    answer_kind: AnswerKindOpt = "auto"
    shot_selection: ShotSelection = Field(
        "random",
        description="how demonstrations are chosen: random, similar (BM25 to the question) or diverse",
    )
    demonstrations: Literal["rationale", "answer"] = Field(
        "rationale",
        description="what follows a demonstration's `Answer:`: its rationale, or only its answer as in "
        "nocot training episodes (use for nocot students)",
    )
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    batch_size: Count = Field(16, gt=0)
    max_new_tokens: Count = Field(256, gt=0)
    max_length: Count = Field(
        2048, gt=16, description="prompt + generation budget; earliest shots are dropped first"
    )
    output_dir: ShortText | None = Field(
        None, description="where results.json and generations.jsonl are written"
    )
    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf",
        description="what generates: hf (local transformers model), vllm (in-process vllm.LLM, extra "
        "aicd-workbench[vllm]) or openai (an OpenAI-compatible completions server at base_url)",
    )
    base_url: ShortText | None = Field(
        None,
        description="openai backend: the server's API root, e.g. http://localhost:8000/v1 (the API key, "
        "if the server wants one, comes from $OPENAI_API_KEY: secrets stay out of saved configs)",
    )
    served_model: ShortText | None = Field(
        None, description="openai backend: the model name the server knows (default: model)"
    )
    concurrency: int = Field(32, gt=0, le=4096, description="openai backend: requests in flight at once")
    max_retries: int = Field(
        6, ge=0, le=100, description="openai backend: retries of a 429/5xx/timed-out request"
    )
    request_timeout: float = Field(120.0, gt=0, le=86400, description="openai backend: seconds per request")

    @model_validator(mode="after")
    def _check_shots(self) -> EvalConfig:
        if any(k < 0 for k in self.shots):
            raise ValueError("shots must be >= 0")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("base_url is required with backend openai (e.g. http://localhost:8000/v1)")
        return self


class SweepConfig(_Strict):
    """A grid of runs (objective × ω × seed) each evaluated at several shot counts."""

    name: str = Field(
        "sweep", max_length=200, pattern=r"^\.*[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$"
    )  # not only dots
    output_dir: ShortText = "runs"
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields shared by every run")
    eval: dict[str, Any] = Field(
        default_factory=dict, description="EvalConfig fields shared by every evaluation"
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="TrainConfig field -> values; the product is run"
    )
    eval_datasets: list[ShortText] | None = Field(
        None, description="evaluate each run on these (default: the train dataset)"
    )
    annotate: dict[str, Any] | None = Field(
        None,
        description="AnnotateConfig fields (teacher, prompt_template, k, temperature, filters): annotate each "
        "training dataset first and train on its output (aicd.sweep_annotation); null: the data as it is",
    )
    star: dict[str, Any] | None = Field(
        None,
        description="Table 1's STaR row: AnnotateConfig fields (k, temperature, max_tokens, filters) for the student "
        "rationalising its own training data (source self, model the student, the gold answer as a hint, wrong "
        "chains dropped); annotated once per sweep, then condgen runs on the kept chains for every seed of the "
        "grid, row 'star', under the same evaluations (aicd.sweep_annotation); null: no STaR row",
    )
    untuned: bool = Field(
        False,
        description="also evaluate the student before any fine-tuning, with the same evaluations (the paper's "
        "'vanilla' row and 'vanilla ICL' line); one row per training dataset",
    )

    @model_validator(mode="after")
    def _check_grid(self) -> SweepConfig:
        unknown = set(self.grid) - set(TrainConfig.model_fields) - {"dataset"}
        if unknown:
            raise ValueError(f"grid keys are not TrainConfig fields: {sorted(unknown)}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list")
        return self


C = TypeVar("C", bound=BaseModel)


def format_validation_error(err: ValidationError) -> str:
    """One line per problem, each naming the field (`weights: ...`)."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a","b"], value parsed as YAML so numbers/lists/bools get their types)."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    key, raw = item.split("=", 1)
    if not key:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if value is None and raw.strip() not in ("null", "~", "None"):
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    data = dict(data)
    for item in overrides or []:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: '{part}' is not a section")
        node[path[-1]] = value
    return data


def shipped_configs_dir() -> Path:
    """The configs shipped inside the package (`aicd/configs/`: Table 1, Fig. 1, Fig. 2, paper-scale runs)."""
    from importlib.resources import files

    return Path(str(files("aicd").joinpath("configs")))


def resolve_config_path(path: str | Path) -> Path:
    """`path` itself when it exists; else, for `configs/<file>`, the shipped config of that name, so the
    README's `aicd sweep configs/table1-svamp.yaml` works from any folder and from an installed package."""
    path = Path(path)
    if not path.exists() and not path.is_absolute() and len(path.parts) == 2 and path.parts[0] == "configs":
        shipped = shipped_configs_dir() / path.name
        if shipped.is_file():
            return shipped
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = resolve_config_path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields")
    return data


def build_config(
    cls: type[C], data: dict[str, Any], overrides: list[str] | None = None, source: str = "config"
) -> C:
    """Validate a dict (+ overrides) into `cls`; errors become one ConfigError naming each field."""
    try:
        return cls.model_validate(apply_overrides(data, overrides))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config(cls: type[C], path: str | Path, overrides: list[str] | None = None) -> C:
    return build_config(cls, read_yaml(path), overrides, source=str(path))


def save_config(config: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
