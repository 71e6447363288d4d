"""lm-evaluation-harness's HF backend on given prompts, timing generation alone (run with the peer venv's python).

    /tmp/peers-lm-eval/bin/python bench/peers/lm_eval_generate.py --model DIR --prompts p.json --out o.json

`HFLM.generate_until` with `add_bos_token=False`, so a prompt is tokenized exactly as the project's bench
tokenizes it (`tokenizer(text, add_special_tokens=False)`); greedy, `until=[stop]`, `max_gen_toks`. Writes the
chains (in prompt order), the wall and CPU seconds spent in `generate_until` only, and the versions.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a saved checkpoint folder (model + tokenizer)")
    parser.add_argument("--prompts", required=True, help="JSON list of prompt texts")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--stop", default="Question:")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import lm_eval
    import torch
    import transformers
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(args.threads)
    lm = HFLM(
        pretrained=args.model,
        tokenizer=args.model,
        batch_size=args.batch_size,
        device="cpu",
        dtype="float32",
        add_bos_token=False,
    )
    with open(args.prompts, encoding="utf-8") as fh:
        prompts = json.load(fh)
    gen = {"until": [args.stop], "max_gen_toks": args.max_new_tokens, "do_sample": False}
    requests = [Instance("generate_until", {}, (p, dict(gen)), i) for i, p in enumerate(prompts)]
    start, cpu = time.perf_counter(), time.process_time()
    chains = lm.generate_until(requests, disable_tqdm=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    versions = {
        "lm_eval": lm_eval.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(
            {"chains": chains, "seconds": seconds, "cpu_seconds": cpu_seconds, "versions": versions}, fh
        )


if __name__ == "__main__":
    main()
