"""Distillation training: setup, loop, save — a readable nanoGPT-style loop on top of accelerate.

Each epoch every usable example becomes the final shot of one n-shot episode (`sample_episode_shots`),
tokenized with one loss weight per token (`build_episode`), so AICD, condgen, lm and nocot differ only in
those weights. Episodes are length-grouped into micro-batches (`aicd.batching`) and `batch_size /
micro_batch_size` micro-batches make one AdamW step under a cosine schedule with warmup.

Gradient accumulation: each micro-batch loss is normalised by the *global* batch's totals (episodes for
reduction="sum", Σω for "token"), so the summed micro-batch gradients equal the full-batch gradient even
when micro-batches differ in size or weight (the bug of transformers #34191). For that reason the
Accelerator runs with gradient_accumulation_steps=1 (its `backward` would divide the loss again) and the
accumulation is done here. Accelerate provides device placement, autocast (bf16/fp16) and fp16 loss
scaling; training is single-process (one GPU or the CPU).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicd.batching import group_steps, make_batches
from aicd.checkpoint import (
    DONE_FILE,
    FINAL_DIR,
    METRICS_FILE,
    STATE_FILE,
    append_metrics,
    atomic_dir,
    capture_rng,
    latest_checkpoint,
    prune_checkpoints,
    restore_rng,
    truncate_metrics,
)
from aicd.config import TrainConfig, load_config, save_config
from aicd.data.record import Example
from aicd.episodes import Episode, EpisodeTooLong, build_episode, sample_episode_shots
from aicd.errors import AICDError, ConfigError, DataError
from aicd.progress import NO_PROGRESS, Cancelled, Progress

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class TrainCallback:
    """Hooks for the worker (progress, cancellation). Every method is a no-op; subclass what you need.

    It is also the run's `aicd.progress.Progress`: the setup phases (loading, episode building) call `phase`,
    `advance` and `check`; a `check()` that raises `Cancelled` (the worker's does, on cancel or shutdown) ends
    the run stopped, like `should_stop()` inside the loop.
    """

    def phase(self, name: str, total: int | None = None) -> None:
        """A phase of the run starts (`loading model`, `episodes`, …)."""

    def advance(self, n: int = 1) -> None:
        """`n` units of the current phase are done."""

    def check(self) -> None:
        """Called every few seconds at most in the setup phases; raise `aicd.progress.Cancelled` to stop."""

    def on_start(self, total_steps: int, start_step: int) -> None:
        """Called once before the first step (start_step > 0 when resuming)."""

    def on_log(self, step: int, metrics: dict[str, Any]) -> None:
        """Called with the same dict that is appended to metrics.jsonl."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Called after a checkpoint (or final/) has been written."""

    def should_stop(self) -> bool:
        """Polled before every micro-batch; True saves a checkpoint and ends the run with stopped=True."""
        return False


@dataclass
class TrainResult:
    run_dir: Path
    final_dir: Path | None
    step: int
    total_steps: int
    stopped: bool
    last_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpochPlan:
    """The episodes of one epoch and their order: steps → micro-batches → episode indices."""

    episodes: list[Episode]
    steps: list[list[list[int]]]
    skipped: int  # episodes whose final shot alone exceeds max_length


@dataclass
class _Window:
    """Running totals between two metrics lines. Token counts come from the CPU-side batch and the loss
    stays on the device, so the only host sync per logged step is reading the loss."""

    loss: Any = 0.0
    steps: int = 0
    episodes: int = 0
    tokens: int = 0
    padded: int = 0
    dropped: int = 0
    excluded: float = 0.0  # seconds spent writing checkpoints, not training
    start: float = field(default_factory=time.perf_counter)

    def add_micro_batch(self, attention_mask: Any, dropped: int) -> None:
        self.tokens += int(attention_mask.sum())
        self.padded += attention_mask.numel()
        self.dropped += dropped

    def summary(self) -> dict[str, Any]:
        loss = float(self.loss) / max(self.steps, 1)  # waits for the device: timing below is wall-clock true
        seconds = max(time.perf_counter() - self.start - self.excluded, 1e-9)
        return {
            "loss": loss,
            "tokens_per_s": self.tokens / seconds,
            "real_token_frac": self.tokens / max(self.padded, 1),
            "episodes": self.episodes,
            "shots_dropped": self.dropped,
        }


def build_epoch(
    examples: list[Example],
    tokenizer: Any,
    config: TrainConfig,
    epoch: int,
    cache: dict[str, list[int]] | None = None,
    progress: Progress = NO_PROGRESS,
) -> EpochPlan:
    """Sample, tokenize and batch one epoch; deterministic in (config.seed, epoch). `progress` sees the
    `episodes` phase, one unit per episode, and may stop it (`Cancelled`)."""
    from aicd.objectives import omega_weights

    weights = omega_weights(config.schedule, config.n_shots, omega=config.omega, weights=config.weights)
    progress.phase("episodes", len(examples))
    try:
        shot_lists = sample_episode_shots(
            examples,
            config.n_shots,
            seed=config.seed,
            epoch=epoch,
            objective=config.objective,
            progress=progress,
        )
    except ValueError as exc:
        raise DataError(f"dataset {config.dataset}: {exc}") from None
    episodes: list[Episode] = []
    skipped = 0
    for shots in shot_lists:
        progress.check()
        try:
            episodes.append(
                build_episode(
                    tokenizer,
                    shots,
                    config.objective,
                    weights[-len(shots) :],
                    template=config.template,
                    max_length=config.max_length,
                    cache=cache,
                )
            )
        except EpisodeTooLong:
            skipped += 1
        progress.advance()
    if not episodes:
        raise ConfigError(
            f"max_length: every episode's final shot alone is longer than {config.max_length} tokens"
        )
    if skipped:
        log.warning(
            "epoch %d: skipped %d episode(s) whose final shot alone exceeds max_length=%d",
            epoch,
            skipped,
            config.max_length,
        )
    accumulation = config.batch_size // config.micro_batch_size
    mbs = make_batches(
        [len(ep) for ep in episodes], config.micro_batch_size, config.batching, seed=f"{config.seed}:{epoch}"
    )
    return EpochPlan(episodes=episodes, steps=group_steps(mbs, accumulation), skipped=skipped)


def resolve_mixed_precision(setting: str) -> str:
    """For "auto": bf16 where the GPU supports it, fp16 on other GPUs, none on CPU."""
    import torch

    if setting != "auto":
        if setting != "no" and not torch.cuda.is_available():
            log.warning("mixed_precision=%s needs CUDA; training in float32 on CPU", setting)
            return "no"
        return setting
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _make_accelerator(config: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if PartialState().num_processes == 1:  # a long-lived worker may train with a different precision next
        AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision=resolve_mixed_precision(config.mixed_precision), gradient_accumulation_steps=1
    )


def _load_examples(config: TrainConfig) -> list[Example]:
    from aicd.data.loaders import load_examples

    examples = load_examples(config.dataset, config.split, limit=config.limit, seed=config.seed)
    if not examples:
        raise DataError(f"dataset {config.dataset}: split '{config.split}' has no examples")
    return examples


def _load_model(
    config: TrainConfig, checkpoint: Path | None, progress: Progress = NO_PROGRESS
) -> tuple[Any, Any]:
    """Float32 master weights (autocast does the mixed precision); LoRA-wrapped if configured."""
    import torch

    progress.phase("loading model")
    progress.check()

    from aicd.models import is_tiny, load_error, load_model_and_tokenizer, load_tokenizer

    if checkpoint is not None and config.lora is None:
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise load_error(str(checkpoint), exc) from None
    else:
        model, tokenizer = load_model_and_tokenizer(config.model, seed=config.seed, dtype=torch.float32)
        model = model.float()
    if checkpoint is not None:  # the checkpoint holds the tokenizer: a resume needs no hub access for it
        tokenizer = load_tokenizer(config.model if is_tiny(config.model) else str(checkpoint))
    if config.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if config.lora is not None:
        from peft import LoraConfig, PeftModel, get_peft_model

        if checkpoint is not None:
            model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
        else:
            lora = config.lora
            model = get_peft_model(
                model,
                LoraConfig(
                    r=lora.r,
                    lora_alpha=lora.alpha,
                    lora_dropout=lora.dropout,
                    target_modules=lora.target_modules,
                    task_type="CAUSAL_LM",
                ),
            )
    progress.check()
    return model, tokenizer


def _make_optimizer(model: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay only on matrices (not biases/norms), as in nanoGPT."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=tuple(config.adam_betas))


def _make_scheduler(optimizer: Any, config: TrainConfig, total_steps: int) -> Any:
    from transformers import get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

    warmup = math.ceil(config.warmup_ratio * total_steps)
    if config.min_lr_ratio > 0:
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, warmup, total_steps, min_lr_rate=config.min_lr_ratio
        )
    return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


def _has_outputs(run_dir: Path) -> bool:
    if not run_dir.is_dir():
        return False
    return (
        any((run_dir / name).exists() for name in (METRICS_FILE, FINAL_DIR))
        or latest_checkpoint(run_dir) is not None
    )


def _check_resumable(config: TrainConfig, checkpoint: Path) -> None:
    """The model must be the same one; other fields (lr, epochs, …) may change on resume."""
    saved = load_config(TrainConfig, checkpoint / "config.yaml")
    for name in ("model", "lora", "objective", "n_shots"):
        if getattr(saved, name) != getattr(config, name):
            raise ConfigError(
                f"{name}: differs from the checkpoint being resumed ({checkpoint}): "
                f"{getattr(saved, name)!r} vs {getattr(config, name)!r}"
            )


def _save_model(
    model: Any, tokenizer: Any, config: TrainConfig, path: Path, *, merge: bool, done: dict[str, Any]
) -> None:
    with atomic_dir(path) as tmp:
        if merge and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()  # final/: plain HF weights, loadable like any model
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_config(config, tmp / "config.yaml")
        (tmp / DONE_FILE).write_text(json.dumps(done), encoding="utf-8")


def _save_checkpoint(
    path: Path, model: Any, tokenizer: Any, config: TrainConfig, state: dict[str, Any]
) -> None:
    import torch

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_config(config, tmp / "config.yaml")
        torch.save(state, tmp / STATE_FILE)


def train(
    config: TrainConfig,
    *,
    examples: list[Example] | None = None,
    eval_examples: list[Example] | None = None,
    callback: TrainCallback | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train `config.model` on `examples` (default: `config.dataset`) and write `config.run_dir`.

    Steps: `max_steps` if set (more or fewer epochs as needed), else ceil(epochs × steps per epoch); an
    epoch has one episode per usable example and a step `batch_size` episodes (the last one may be short).
    resume=True continues from the newest checkpoint (same step, optimizer, scheduler, data order and RNG)
    and drops metrics.jsonl lines after it; with no checkpoint it starts from scratch, and a finished run
    (final/ written) is returned as is. Raises AICDError subclasses for bad input, before writing anything.
    With `eval_every`, accuracy on `eval_examples` (default: `eval_dataset`/`eval_split`) joins the metrics.
    """
    import torch
    from tqdm.auto import tqdm

    from aicd.objectives import batch_nll, collate_episodes, reduce_loss

    callback = callback or TrainCallback()
    run_dir = config.run_dir
    final_dir = run_dir / FINAL_DIR

    # ---- setup: everything that can fail on bad input happens before the run directory is written
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if not resume and _has_outputs(run_dir):
        raise AICDError(
            f"run directory {run_dir} already has outputs; resume it (--resume) or pick another name"
        )
    if checkpoint is not None:
        _check_resumable(config, checkpoint)
    if resume and (final_dir / DONE_FILE).is_file():
        done = json.loads((final_dir / DONE_FILE).read_text(encoding="utf-8"))
        return TrainResult(
            run_dir, final_dir, done["step"], done["total_steps"], False, done.get("last_metrics", {})
        )
    # `limit` holds for examples handed in (a stored dataset) as for ones loaded here: the first N
    examples = list(examples)[: config.limit] if examples is not None else _load_examples(config)
    if not examples:
        raise DataError("training needs at least one example")

    held_out = None
    if config.eval_every:
        from aicd.train_eval import HeldOutEval

        held_out = HeldOutEval(config, examples, eval_examples)

    accelerator = _make_accelerator(config)
    if accelerator.num_processes > 1:
        raise AICDError("train: multi-process (distributed) training is not supported; run on one device")
    try:
        model, tokenizer = _load_model(config, checkpoint, callback)
        cache: dict[str, list[int]] = {}
        plan = build_epoch(examples, tokenizer, config, 0, cache, callback)
    except Cancelled:  # stopped before the first step: nothing written yet
        return TrainResult(run_dir, None, 0, 0, True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * len(plan.steps)))

    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config, total_steps)
    model = model.to(accelerator.device)  # not prepare_model: it would upcast whole logits to fp32
    optimizer = accelerator.prepare_optimizer(optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    base = accelerator.unwrap_model(model)
    use_cache = getattr(base.config, "use_cache", None)
    if use_cache is not None:
        base.config.use_cache = False  # no KV cache while training; restored before saving

    step, epoch, position = 0, 0, 0
    rng_state: dict[str, Any] | None = None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if accelerator.scaler is not None and state.get("scaler"):
            accelerator.scaler.load_state_dict(state["scaler"])
        step, epoch, position, rng_state = state["step"], state["epoch"], state["position"], state["rng"]
        if epoch != 0:
            try:
                plan = build_epoch(examples, tokenizer, config, epoch, cache, callback)
            except Cancelled:
                return TrainResult(run_dir, None, step, total_steps, True)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    truncate_metrics(run_dir / METRICS_FILE, step)
    if rng_state is not None:
        restore_rng(rng_state)
    else:
        torch.manual_seed(config.seed)

    def save_checkpoint(at_step: int, at_epoch: int, at_position: int, rng: dict[str, Any]) -> Path:
        path = run_dir / f"checkpoint-{at_step}"
        if use_cache is not None:
            base.config.use_cache = use_cache
        state = {
            "step": at_step,
            "epoch": at_epoch,
            "position": at_position,
            "total_steps": total_steps,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
            "rng": rng,
        }
        _save_checkpoint(path, accelerator.unwrap_model(model), tokenizer, config, state)
        if use_cache is not None:
            base.config.use_cache = False
        prune_checkpoints(run_dir, config.keep_checkpoints)
        callback.on_checkpoint(at_step, path)
        return path

    # ---- loop
    callback.on_start(total_steps, step)
    bar = tqdm(
        total=total_steps, initial=step, disable=not progress, desc=f"train {config.name}", unit="step"
    )
    window = _Window()
    last_metrics: dict[str, Any] = {}
    last_saved: int | None = step if checkpoint is not None else None
    stopped = False
    model.train()
    while step < total_steps and not stopped:
        if position >= len(plan.steps):  # next epoch
            try:
                plan = build_epoch(examples, tokenizer, config, epoch + 1, cache, callback)
            except Cancelled:  # the last checkpoint-worthy state is the end of this epoch
                stopped = True
                if last_saved != step:
                    save_checkpoint(step, epoch, position, capture_rng())
                break
            epoch, position = epoch + 1, 0
            continue
        micro = [[plan.episodes[i] for i in mb] for mb in plan.steps[position]]
        rng_at_start = capture_rng()
        n_episodes = sum(len(mb) for mb in micro)
        total_weight = sum(sum(ep.loss_weights[1:]) for mb in micro for ep in mb)
        for episodes in micro:
            if callback.should_stop():
                stopped = True
                break
            batch = collate_episodes(episodes, pad_id)
            window.add_micro_batch(batch["attention_mask"], sum(ep.n_dropped for ep in episodes))
            batch = {key: v.to(accelerator.device, non_blocking=True) for key, v in batch.items()}
            with accelerator.autocast():
                nll, weight = batch_nll(model, batch)
                loss = reduce_loss(
                    nll,
                    weight,
                    config.reduction,
                    n_episodes=n_episodes,
                    total_weight=max(total_weight, 1e-12),
                )
            accelerator.backward(loss)
            window.loss = window.loss + loss.detach().float()
        if stopped:
            optimizer.zero_grad(set_to_none=True)
            restore_rng(rng_at_start)
            if last_saved != step:
                save_checkpoint(step, epoch, position, rng_at_start)
            break
        grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm or float("inf"))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step, position = step + 1, position + 1
        window.steps += 1
        window.episodes += n_episodes
        bar.update(1)
        evaluate_now = held_out is not None and held_out.due(step, total_steps)
        if step % config.log_every == 0 or step == total_steps or evaluate_now:
            last_metrics = {
                "step": step,
                "epoch": round(epoch + position / len(plan.steps), 4),
                "lr": lr,
                "grad_norm": float(grad_norm),
                **window.summary(),
                "episodes_skipped": plan.skipped,
            }
            if evaluate_now:
                last_metrics.update(held_out(accelerator.unwrap_model(model), tokenizer))
            window = _Window()
            append_metrics(run_dir / METRICS_FILE, last_metrics)
            callback.on_log(step, last_metrics)
            bar.set_postfix(loss=f"{last_metrics['loss']:.4f}", lr=f"{lr:.2e}")
        if config.save_every and step % config.save_every == 0 and step < total_steps:
            t_save = time.perf_counter()
            save_checkpoint(step, epoch, position, capture_rng())
            window.excluded += time.perf_counter() - t_save
            last_saved = step
    bar.close()

    # ---- save
    if use_cache is not None:
        base.config.use_cache = use_cache
    if stopped:
        return TrainResult(run_dir, None, step, total_steps, True, last_metrics)
    if config.save_every and step % config.save_every == 0 and last_saved != step:
        save_checkpoint(step, epoch, position, capture_rng())
    accelerator.wait_for_everyone()
    _save_model(
        accelerator.unwrap_model(model),
        tokenizer,
        config,
        final_dir,
        merge=config.lora is not None,
        done={"step": step, "total_steps": total_steps, "last_metrics": last_metrics},
    )
    callback.on_checkpoint(step, final_dir)
    return TrainResult(run_dir, final_dir, step, total_steps, False, last_metrics)
