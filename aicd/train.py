"""Distillation training: setup, loop, save — a state object read top to bottom, on top of accelerate.

Each epoch every usable example becomes the final shot of one n-shot episode (`sample_episode_shots`),
tokenized with one loss weight per token (`build_episode`), so AICD, condgen, lm and nocot differ only in
those weights. Episodes are length-grouped into micro-batches (`aicd.batching`) and `batch_size /
micro_batch_size` micro-batches make one AdamW step under a cosine schedule with warmup.

Gradient accumulation: each micro-batch loss is normalised by the *global* batch's totals (episodes for
reduction="sum", Σω for "token"), so the summed micro-batch gradients equal the full-batch gradient even
when micro-batches differ in size or weight (the bug of transformers #34191). For that reason the
Accelerator runs with gradient_accumulation_steps=1 (its `backward` would divide the loss again) and the
accumulation is done here. On several processes (`aicd.distributed`, started by `aicd.launch`) each rank
trains on its share of every micro-batch with the same global totals, so N processes × micro-batch m
equal one process × micro-batch N·m; only rank 0 writes metrics, checkpoints and calls the callback.
Checkpoints go through `accelerator.save_state` (optimizer, scheduler, scaler, every rank's RNG; sharded
weights under FSDP/DeepSpeed), with the weights in Hugging Face format otherwise; final/ is always a plain
`save_pretrained` folder (`vllm serve runs/X/final`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicd.batching import group_steps, make_batches
from aicd.checkpoint import (
    DONE_FILE,
    FINAL_DIR,
    METRICS_FILE,
    STATE_FILE,
    append_metrics,
    atomic_dir,
    capture_rng,
    checkpoint_step,
    latest_checkpoint,
    prune_checkpoints,
    restore_rng,
    truncate_metrics,
)
from aicd.config import TrainConfig, check_shots_fit, save_config
from aicd.data.record import Example
from aicd.episodes import Episode, EpisodeTooLong, build_episode, sample_episode_shots
from aicd.errors import AICDError, ConfigError, DataError
from aicd.memory import is_out_of_memory
from aicd.objective_registry import uses_omega
from aicd.progress import NO_PROGRESS, Cancelled, Progress

log = logging.getLogger(__name__)


class TrainingDiverged(AICDError):
    """The loss became NaN/inf for `max_nonfinite_steps` steps in a row; the run fails."""


class TrainCallback:
    """Hooks for the worker (progress, cancellation). Every method is a no-op; subclass what you need.

    It is also the run's `aicd.progress.Progress`: the setup phases (loading, episode building) call `phase`,
    `advance` and `check`; a `check()` that raises `Cancelled` (the worker's does, on cancel or shutdown) ends
    the run stopped, like `should_stop()` inside the loop. Only rank 0's callback is called.
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
    """Running totals between two metrics lines (this rank's tokens; the loss is already global)."""

    loss: float = 0.0
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

    def summary(self, accelerator: Any) -> dict[str, Any]:
        """The metrics line's numbers over all ranks (a collective: every rank calls it)."""
        from aicd.distributed import global_sum

        tokens = global_sum(accelerator, self.tokens)
        seconds = max(time.perf_counter() - self.start - self.excluded, 1e-9)
        return {
            "loss": self.loss / max(self.steps, 1),
            "tokens_per_s": tokens / seconds,
            "real_token_frac": tokens / max(global_sum(accelerator, self.padded), 1),
            "episodes": self.episodes,
            "shots_dropped": int(global_sum(accelerator, self.dropped)),
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
            shot_selection=config.shot_selection,
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
    global_micro = config.micro_batch_size * config.distributed.num_processes  # each rank takes a share
    mbs = make_batches(
        [len(ep) for ep in episodes], global_micro, config.batching, seed=f"{config.seed}:{epoch}"
    )
    accumulation = config.batch_size // global_micro
    return EpochPlan(episodes=episodes, steps=group_steps(mbs, accumulation), skipped=skipped)


def _shot_weight_sums(shares: list[list[Episode]], reweighted: list[list[Any]], n: int) -> list[float]:
    """Σ w per shot position over this rank's episodes of one step (the denominators of the mean NLLs)."""
    sums = [0.0] * n
    for share, pairs in zip(shares, reweighted, strict=True):
        for ep, (_, positions) in zip(share, pairs, strict=True):
            for w, p in zip(ep.loss_weights[1:], positions[1:], strict=True):
                sums[p] += w
    return sums


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` with each list value spread into `key/i` entries (None dropped), for the trackers."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, list):
            out.update({f"{key}/{i}": v for i, v in enumerate(value) if v is not None})
        else:
            out[key] = value
    return out


class Trainer:
    """One training run, as torchtune recipes are: `setup` builds everything (and fails on bad input before
    the run directory is written), `run` loops `train_step` with logging and checkpoints, then `save_final`.

    Every rank runs the same code; rank 0 alone writes files, shows progress and calls the callback.
    """

    def __init__(self, config: TrainConfig, *, callback: TrainCallback | None = None, progress: bool = True):
        self.config = config
        self.callback = callback or TrainCallback()
        self.progress = progress
        self.run_dir = config.run_dir
        self.final_dir = self.run_dir / FINAL_DIR
        self.step = self.epoch = self.position = 0
        self.resumed = False
        self.bad_steps = 0
        self.last_finite: tuple[int, float] | None = None
        self.last_metrics: dict[str, Any] = {}
        self.adaptive = None  # the running per-position losses of schedule=adaptive (aicd.adaptive_omega)

    # ---- setup
    def setup(
        self, examples: list[Example] | None, eval_examples: list[Example] | None, *, resume: bool
    ) -> TrainResult | None:
        """Load data, model, optimizer (and a checkpoint); returns a result at once for a finished run or
        one cancelled while loading. Nothing is written before every input has been checked."""
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        finished = self._check_run_dir(resume, checkpoint)
        if finished is not None:
            return finished
        try:
            self._load_inputs(examples, eval_examples, checkpoint)
        except Cancelled:  # stopped while loading: nothing written, still at the checkpoint's step
            at = (checkpoint_step(checkpoint) or 0) if checkpoint is not None else 0
            return TrainResult(self.run_dir, None, at, 0, True)
        self._prepare_training()
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
            if self.epoch != 0:
                try:
                    self.plan = self._epoch_plan(self.epoch)
                except Cancelled:
                    return TrainResult(self.run_dir, None, self.step, self.total_steps, True)
        self._open_run_dir()
        return None

    def _check_run_dir(self, resume: bool, checkpoint: Path | None) -> TrainResult | None:
        """A fresh run needs an empty directory; a resumed one the same model; a finished one is done."""
        from aicd.train_setup import check_resumable, has_outputs

        if not resume and has_outputs(self.run_dir):
            raise AICDError(
                f"run directory {self.run_dir} already has outputs; resume it (--resume) or pick another name"
            )
        if checkpoint is not None:
            check_resumable(self.config, checkpoint)
        if not (resume and (self.final_dir / DONE_FILE).is_file()):
            return None
        done = json.loads((self.final_dir / DONE_FILE).read_text(encoding="utf-8"))
        last = done.get("last_metrics", {})
        return TrainResult(self.run_dir, self.final_dir, done["step"], done["total_steps"], False, last)

    def _load_inputs(
        self, examples: list[Example] | None, eval_examples: list[Example] | None, checkpoint: Path | None
    ) -> None:
        """Examples, held-out items, the accelerator, the student and the first epoch's plan."""
        from aicd.train_setup import load_model, load_training_examples, make_accelerator

        config = self.config
        # `limit` holds for examples handed in (a stored dataset) as for ones loaded here: the first N
        self.examples = (
            list(examples)[: config.limit] if examples is not None else load_training_examples(config)
        )
        if not self.examples:
            raise DataError("training needs at least one example")
        # the boundaries check what they can count; a hub id or examples handed in are counted only here
        check_shots_fit(config, len(self.examples), f"dataset {config.dataset}")
        self.held_out = None
        if config.eval_every:
            from aicd.train_eval import HeldOutEval

            self.held_out = HeldOutEval(config, self.examples, eval_examples)
        self.accelerator = make_accelerator(config)
        self._check_world()
        self.is_main = self.accelerator.is_main_process
        self.sharded = self.accelerator.distributed_type.name in ("FSDP", "DEEPSPEED")
        self.reports: Progress = self.callback if self.is_main else NO_PROGRESS
        self.cache: dict[str, list[int]] = {}
        # sharded weights are in accelerate's format: the student is built afresh and load_state fills it
        self.student, self.tokenizer = load_model(config, None if self.sharded else checkpoint, self.reports)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.plan = self._epoch_plan(0)
        if config.schedule == "adaptive" and uses_omega(config.objective, config.schedule, config.weights):
            from aicd.adaptive_omega import AdaptiveOmega

            self.adaptive = AdaptiveOmega(config.n_shots, config.omega)
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * len(self.plan.steps)))

    def _prepare_training(self) -> None:
        """Optimizer and schedule; the student wrapped (DDP/FSDP/DeepSpeed) by accelerate."""
        import torch

        from aicd.distributed import EpisodeNLL
        from aicd.train_setup import make_optimizer, make_scheduler

        acc = self.accelerator
        optimizer = make_optimizer(self.student, self.config)
        self.scheduler = make_scheduler(optimizer, self.config, self.total_steps)
        if (
            acc.distributed_type.name == "DEEPSPEED"
        ):  # no dataloader to infer them from; clipping is DeepSpeed's
            ds = acc.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = self.config.micro_batch_size
            ds["gradient_clipping"] = self.config.max_grad_norm or 0.0
        # not prepared: accelerate's scheduler wrapper steps once per process; registered for save_state
        self.module, self.optimizer = acc.prepare(EpisodeNLL(self.student), optimizer)
        acc.register_for_checkpointing(self.scheduler)
        acc.register_save_state_pre_hook(self._save_weights_as_hf)
        acc.register_load_state_pre_hook(self._weights_already_loaded)
        self.model = acc.unwrap_model(self.module).model  # the Hugging Face (or peft) model
        self.use_cache = getattr(self.model.config, "use_cache", None)
        if self.use_cache is not None:
            self.model.config.use_cache = False  # no KV cache while training; restored for saving
        torch.manual_seed(self.config.seed)  # a resume then restores every RNG from its checkpoint

    def _open_run_dir(self) -> None:
        """Rank 0 writes the config and drops metrics past the resumed step; trackers start."""
        config, acc = self.config, self.accelerator
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
            truncate_metrics(self.run_dir / METRICS_FILE, self.step)
        acc.wait_for_everyone()
        if config.report_to != "none":  # accelerate's trackers log on rank 0 only
            from aicd.train_setup import tracker_params

            params = tracker_params(config)
            acc.init_trackers("aicd", config=params, init_kwargs={"mlflow": {"run_name": config.name}})

    def _epoch_plan(self, epoch: int) -> EpochPlan:
        return build_epoch(self.examples, self.tokenizer, self.config, epoch, self.cache, self.reports)

    def _check_world(self) -> None:
        """The processes accelerate started must be the ones the config asks for."""
        wanted, got = self.config.distributed.num_processes, self.accelerator.num_processes
        if wanted != got:
            how = (
                "start it with `aicd train` (which re-launches itself with accelerate launch)"
                if got == 1
                else ""
            )
            raise ConfigError(
                f"distributed.num_processes: the config asks for {wanted} process(es) but this run has {got}"
                + (f"; {how}" if how else "")
            )

    def _load_checkpoint(self, checkpoint: Path) -> None:
        import torch

        # our own file; checkpoints written before accelerate's save_state also hold numpy RNG state in it
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
        if "optimizer" in state:  # that older, single-process layout: everything is in this one file
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.accelerator.scaler is not None and state.get("scaler"):
                self.accelerator.scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"])
        else:
            self.accelerator.load_state(str(checkpoint))  # optimizer, scheduler, scaler, this rank's RNG
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        if self.adaptive is not None and "adaptive_omega" in state:
            self.adaptive.load_state_dict(state["adaptive_omega"])
        self.resumed = True

    # ---- loop
    def run(self) -> TrainResult:
        """Train to `total_steps` (or until the callback asks to stop); returns what was done."""
        try:
            return self._loop()
        finally:
            self.accelerator.end_training()  # closes the trackers' files and runs, also on failure

    def _loop(self) -> TrainResult:
        from tqdm.auto import tqdm

        acc, config = self.accelerator, self.config
        if self.is_main:
            self.callback.on_start(self.total_steps, self.step)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (self.progress and self.is_main),
            desc=f"train {config.name}",
            unit="step",
        )
        window = _Window()
        last_saved: int | None = self.step if self.resumed else None
        stopped = False
        self.module.train()
        while self.step < self.total_steps:
            if self.position >= len(self.plan.steps):  # next epoch
                plan = self._next_epoch_plan()
                if plan is None:  # cancelled: the last checkpoint-worthy state is the end of this epoch
                    if last_saved != self.step:
                        self.save_checkpoint()
                    stopped = True
                    break
                self.epoch, self.position, self.plan = self.epoch + 1, 0, plan
                continue
            rng_at_start = capture_rng()
            outcome = self._checked_step(self.plan.steps[self.position], window)
            if outcome is None:  # asked to stop: checkpoint the state before this step
                self.optimizer.zero_grad(set_to_none=True)
                restore_rng(rng_at_start)
                if last_saved != self.step:
                    self.save_checkpoint()
                stopped = True
                break
            loss, n_episodes = outcome
            if not math.isfinite(loss):
                self._skip_nonfinite(loss)
                continue
            grad_norm = acc.clip_grad_norm_(self.module.parameters(), config.max_grad_norm or float("inf"))
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            if not acc.optimizer_step_was_skipped:
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step, self.position = self.step + 1, self.position + 1
            self.bad_steps, self.last_finite = 0, (self.step, loss)
            window.steps, window.loss, window.episodes = (
                window.steps + 1,
                window.loss + loss,
                window.episodes + n_episodes,
            )
            bar.update(1)
            if self._log_if_due(window, lr, grad_norm, bar):
                window = _Window()
            if config.save_every and self.step % config.save_every == 0 and self.step < self.total_steps:
                t_save = time.perf_counter()
                self.save_checkpoint()
                window.excluded += time.perf_counter() - t_save
                last_saved = self.step
        bar.close()
        if stopped:
            return TrainResult(self.run_dir, None, self.step, self.total_steps, True, self.last_metrics)
        if config.save_every and self.step % config.save_every == 0 and last_saved != self.step:
            self.save_checkpoint()
        self.save_final()
        return TrainResult(
            self.run_dir, self.final_dir, self.step, self.total_steps, False, self.last_metrics
        )

    def _next_epoch_plan(self) -> EpochPlan | None:
        """The next epoch's plan, or None on every rank when rank 0's callback cancelled its building."""
        from aicd.distributed import rank0_decides

        try:
            plan = self._epoch_plan(self.epoch + 1)
        except Cancelled:
            plan = None
        return None if rank0_decides(self.accelerator, plan is None) else plan

    def _checked_step(self, step_plan: list[list[int]], window: _Window) -> tuple[float, int] | None:
        """`train_step`, with running out of memory turned into the settings to change."""
        try:
            return self.train_step(step_plan, window)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            config = self.config
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            smaller = max(1, config.micro_batch_size // 2)
            raise AICDError(
                f"micro_batch_size: {config.micro_batch_size} episodes of up to {config.max_length} tokens do not "
                f"fit in memory at step {self.step + 1} ({detail}); try micro_batch_size={smaller} (batch_size, "
                "the optimizer's batch, stays the same), a smaller max_length, or gradient_checkpointing=true"
            ) from None

    def train_step(self, step_plan: list[list[int]], window: _Window) -> tuple[float, int] | None:
        """Forward and backward over this rank's share of each micro-batch of one optimizer step.

        Returns (the step's global loss, its global episode count), or None when rank 0 asks to stop.
        """
        import torch

        from aicd.distributed import global_sum, global_totals, rank0_decides, rank_share
        from aicd.objectives import collate_episodes, reduce_loss

        acc, config = self.accelerator, self.config
        world, rank = acc.num_processes, acc.process_index
        shares = [[self.plan.episodes[i] for i in rank_share(mb, rank, world)] for mb in step_plan]
        adaptive = self.adaptive
        if adaptive is not None:  # this step's ω on every token; per-shot NLL sums come back from the forward
            adaptive.begin_step()
            reweighted = [[adaptive.reweight(ep) for ep in share] for share in shares]
            shares = [[ep for ep, _ in share] for share in reweighted]
            shot_nll = torch.zeros(config.n_shots, dtype=torch.float64)
        n_local = sum(len(share) for share in shares)
        w_local = sum(sum(ep.loss_weights[1:]) for share in shares for ep in share)
        n_episodes, total_weight = global_totals(acc, n_local, w_local)
        loss_sum = torch.zeros((), device=acc.device)
        for i, episodes in enumerate(shares):
            if rank0_decides(acc, self.is_main and self.callback.should_stop()):
                return None
            # a rank with no episode in a short last micro-batch still joins the gradient sync, with a zero loss
            idle = not episodes
            batch = collate_episodes(episodes or [self.plan.episodes[step_plan[i][0]]], self.pad_id)
            if not idle:
                window.add_micro_batch(batch["attention_mask"], sum(ep.n_dropped for ep in episodes))
            if adaptive is not None and not idle:
                positions = [pos for _, pos in reweighted[i]]
                batch["shot_onehot"] = adaptive.one_hot(positions, batch["input_ids"].shape[1])
            batch = {key: v.to(acc.device, non_blocking=True) for key, v in batch.items()}
            last = i == len(shares) - 1
            with contextlib.nullcontext() if last else acc.no_sync(self.module):
                nll, weight = self.module(batch)
                loss = reduce_loss(
                    nll,
                    weight,
                    config.reduction,
                    n_episodes=n_episodes,
                    total_weight=max(total_weight, 1e-12),
                )
                if idle:
                    loss = loss * 0.0
                acc.backward(loss * world)  # the ranks' gradients are averaged; the loss is already a share
            loss_sum += loss.detach().float()
            if adaptive is not None and not idle:
                shot_nll += nll.detach().sum(0).double().cpu()
        if adaptive is not None:
            sums = [global_sum(acc, v) for v in shot_nll.tolist()]
            weights = [global_sum(acc, v) for v in _shot_weight_sums(shares, reweighted, config.n_shots)]
            adaptive.end_step(sums, weights)
        return global_sum(acc, loss_sum), n_episodes

    def _skip_nonfinite(self, loss: float) -> None:
        """Drop the update of a NaN/inf step; fail the run after `max_nonfinite_steps` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.position += 1
        self.bad_steps += 1
        limit = self.config.max_nonfinite_steps
        log.warning("step %d: loss is %s; update skipped (%d/%d)", self.step + 1, loss, self.bad_steps, limit)
        if self.bad_steps >= limit:
            last = (
                f"last finite loss {self.last_finite[1]:.6g} at step {self.last_finite[0]}"
                if self.last_finite
                else "no finite loss before it"
            )
            raise TrainingDiverged(
                f"training diverged: loss is {loss} at step {self.step + 1} ({last}); "
                f"stopped after {self.bad_steps} non-finite step(s) (max_nonfinite_steps={limit})"
            )

    def _log_if_due(self, window: _Window, lr: float, grad_norm: Any, bar: Any) -> bool:
        """Write one metrics line (and held-out accuracy) when due; True when the window was consumed."""
        import torch

        config, acc = self.config, self.accelerator
        evaluate_now = self.held_out is not None and self.held_out.due(self.step, self.total_steps)
        if not (self.step % config.log_every == 0 or self.step == self.total_steps or evaluate_now):
            return False
        metrics = {
            "step": self.step,
            "epoch": round(self.epoch + self.position / len(self.plan.steps), 4),
            "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,  # DeepSpeed may not say
            **window.summary(acc),
            "episodes_skipped": self.plan.skipped,
            "threads": torch.get_num_threads(),
            "processes": acc.num_processes,
        }
        if self.adaptive is not None:
            metrics.update(self.adaptive.log_fields())
        if evaluate_now and self.is_main:
            metrics.update(self.held_out(self.model, self.tokenizer))
        self.last_metrics = metrics
        if config.report_to != "none":  # trackers take scalars: a list becomes one metric per shot position
            acc.log(_scalars(metrics), step=self.step)
        if self.is_main:
            append_metrics(self.run_dir / METRICS_FILE, metrics)
            self.callback.on_log(self.step, metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{lr:.2e}")
        acc.wait_for_everyone()
        return True

    # ---- save
    @contextlib.contextmanager
    def _cache_for_saving(self):  # noqa: ANN202
        """The saved config keeps the model's own use_cache (off while training)."""
        if self.use_cache is not None:
            self.model.config.use_cache = self.use_cache
        try:
            yield
        finally:
            if self.use_cache is not None:
                self.model.config.use_cache = False

    def _save_weights_as_hf(self, models: list[Any], weights: list[Any], output_dir: str) -> None:
        """save_state hook: replicated weights go out as a Hugging Face folder (or a LoRA adapter), which
        a resume loads like any model; sharded ones (FSDP/DeepSpeed) stay in accelerate's format."""
        if weights:
            weights.clear()
            if self.is_main:
                self.model.save_pretrained(output_dir)
        if self.is_main:
            self.tokenizer.save_pretrained(output_dir)

    def _weights_already_loaded(self, models: list[Any], input_dir: str) -> None:
        """load_state hook: replicated weights were loaded from the Hugging Face folder by `load_model`."""
        models.clear()

    def save_checkpoint(self) -> Path:
        """checkpoint-<step>/: accelerate's state of every rank, the step's position and the config; written
        to a temp folder and renamed, so a crash never leaves a half checkpoint that a resume would take."""
        import torch

        from aicd.checkpoint import replace_dir

        acc = self.accelerator
        path = self.run_dir / f"checkpoint-{self.step}"
        tmp = self.run_dir / f".tmp-checkpoint-{self.step}"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        with self._cache_for_saving():
            acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.is_main:
            save_config(self.config, tmp / "config.yaml")
            position = {"step": self.step, "epoch": self.epoch, "position": self.position}
            extra = {"adaptive_omega": self.adaptive.state_dict()} if self.adaptive is not None else {}
            torch.save({**position, "total_steps": self.total_steps, **extra}, tmp / STATE_FILE)
            replace_dir(tmp, path)
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
            self.callback.on_checkpoint(self.step, path)
        acc.wait_for_everyone()
        return path

    def save_final(self) -> None:
        """final/: plain Hugging Face weights (LoRA merged, shards consolidated) plus train_done.json."""
        import torch

        acc = self.accelerator
        acc.wait_for_everyone()
        state_dict = None
        if self.sharded:  # a collective: every rank hands in its shard
            full = acc.get_state_dict(self.module)
            state_dict = {key.removeprefix("model."): value for key, value in full.items()}
        if self.is_main:
            done = {
                "step": self.step,
                "total_steps": self.total_steps,
                "last_metrics": self.last_metrics,
                "threads": torch.get_num_threads(),
                "processes": acc.num_processes,
            }
            with self._cache_for_saving(), atomic_dir(self.final_dir) as tmp:
                model = self.model
                if self.config.lora is not None and hasattr(model, "merge_and_unload"):
                    model = model.merge_and_unload()  # plain HF weights, loadable like any model
                model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
                self.tokenizer.save_pretrained(tmp)
                save_config(self.config, tmp / "config.yaml")
                (tmp / DONE_FILE).write_text(json.dumps(done), encoding="utf-8")
            self.callback.on_checkpoint(self.step, self.final_dir)
        acc.wait_for_everyone()


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
    (final/ written) is returned as is. Raises AICDError subclasses for bad input, before writing anything,
    and TrainingDiverged when the loss stays non-finite. With `eval_every`, accuracy on `eval_examples`
    (default: `eval_dataset`/`eval_split`) joins the metrics.
    """
    trainer = Trainer(config, callback=callback, progress=progress)
    finished = trainer.setup(examples, eval_examples, resume=resume)
    return finished if finished is not None else trainer.run()
