"""TRL's side of bench/peers/trl_runner.py: `SFTTrainer`, completion-only loss, on a workload file.

Run by the peer venv's python (bench/peers/setup_trl.sh), never the project's; imports nothing of aicd.

    PEER_PYTHON bench/peers/trl_sft.py WORKLOAD.json OUT.json

The workload holds the model folder, pre-tokenized episodes (`input_ids` + `completion_mask`: the same
tokens the project trains on), batch size, steps and threads. fp32 and no gradient checkpointing (TRL's
defaults are bf16 and checkpointing: changed so both sides run the same arithmetic). Times every optimizer
step with a callback and writes seconds per step, real (non-padding) tokens per step and peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def main(workload_path: str, out_path: str) -> None:
    work = json.loads(Path(workload_path).read_text(encoding="utf-8"))
    import torch

    torch.set_num_threads(work["threads"])
    import datasets
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(work["model_dir"])
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(work["model_dir"], dtype=torch.float32)
    data = datasets.Dataset.from_list(
        [{"input_ids": e["input_ids"], "completion_mask": e["completion_mask"]} for e in work["episodes"]]
    )

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.t0 = 0.0

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            self.seconds.append(time.perf_counter() - self.t0)

    real_tokens: list[int] = []

    class CountingCollator:
        """TRL's own collator; counts the real tokens of each batch it builds."""

        def __init__(self, inner) -> None:  # noqa: ANN001
            self.inner = inner

        def __call__(self, examples):  # noqa: ANN001
            real_tokens.append(sum(len(e["input_ids"]) for e in examples))
            return self.inner(examples)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=work["batch"],
            gradient_accumulation_steps=1,
            max_steps=work["steps"],
            learning_rate=work["lr"],
            completion_only_loss=True,
            bf16=False,
            gradient_checkpointing=False,
            max_length=None,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=work["seed"],
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        trainer.data_collator = CountingCollator(trainer.data_collator)
        trainer.add_callback(timer)
        trainer.train()
    result = {
        "side": "trl",
        "step_seconds": timer.seconds,
        "real_tokens": real_tokens[: len(timer.seconds)],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "optimizer": str(args.optim),
        },
    }
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
