"""Accuracy measured while training (`eval_every`), so a run's accuracy curve grows next to its loss curve.

Greedy generation on a fixed sample of held-out items, with the same prompt building and answer extraction
as `aicd.evaluate`; the training RNG state is saved and restored around it, so a run with `eval_every`
trains exactly as one without.
"""

from __future__ import annotations

from typing import Any

from aicd.config import EvalConfig, TrainConfig
from aicd.data.record import Example
from aicd.errors import DataError
from aicd.objective_registry import demonstrations_for


class HeldOutEval:
    """Scores the model under training on `config.eval_limit` items of `eval_dataset`/`eval_split`."""

    def __init__(
        self, config: TrainConfig, train_examples: list[Example], items: list[Example] | None = None
    ):
        if items is None:
            from aicd.data.loaders import load_examples

            dataset = config.eval_dataset or config.dataset
            items = load_examples(dataset, config.eval_split, limit=config.eval_limit, seed=config.seed)
        items = list(items)[: config.eval_limit]
        if not items:
            raise DataError(f"eval_dataset: split '{config.eval_split}' has no examples for eval_every")
        train_ids = {ex.id for ex in train_examples}
        # a one-file dataset has no test split: say so rather than pass training questions off as held out
        self.held_out = not any(ex.id in train_ids for ex in items)
        self.every = config.eval_every
        self.items = items
        self.shot_pool = train_examples
        self.config = EvalConfig(
            model=config.model,
            dataset=config.eval_dataset or config.dataset,
            split=config.eval_split,
            shots=[config.eval_shots],
            seeds=[config.seed],
            answer_kind=config.answer_kind,
            template=config.template,
            batch_size=max(config.micro_batch_size, 8),
            max_new_tokens=config.eval_max_new_tokens,
            max_length=max(config.max_length, 64),
            demonstrations=demonstrations_for(config.objective),
        )

    def due(self, step: int, total_steps: int) -> bool:
        return self.every > 0 and (step % self.every == 0 or step == total_steps)

    def __call__(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        """`eval_accuracy` (fraction correct) and friends for the metrics line of this step."""
        from aicd.checkpoint import capture_rng, restore_rng
        from aicd.evaluate import evaluate

        rng = capture_rng()
        cfg = getattr(model, "config", None)
        use_cache = getattr(cfg, "use_cache", None)
        was_training = model.training
        model.eval()
        if use_cache is not None:
            cfg.use_cache = True
        try:
            result = evaluate(
                self.config,
                model=model,
                tokenizer=tokenizer,
                examples=self.items,
                shot_examples=self.shot_pool,
                progress=False,
            )
        finally:
            if use_cache is not None:
                cfg.use_cache = use_cache
            if was_training:
                model.train()
            restore_rng(rng)
        row = result.rows[0]
        return {
            "eval_accuracy": row["accuracy"],
            "eval_n": row["n"],
            "eval_invalid": row["n_invalid"],
            "eval_shots": self.config.shots[0],
            "eval_held_out": self.held_out,
        }
