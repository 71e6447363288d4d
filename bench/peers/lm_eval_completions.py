"""lm-evaluation-harness's `local-completions` model against an OpenAI-compatible server (peer venv's python).

    /tmp/peers-lm-eval/bin/python bench/peers/lm_eval_completions.py --base-url URL --prompts p.json --out o.json

`LocalCompletionsAPI.generate_until` with text prompts (`tokenized_requests=False`, no tokenizer),
`num_concurrent` requests in flight, greedy, `until=[stop]`; writes the chains and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-url", required=True, help="the server's API root, e.g. http://127.0.0.1:8000/v1"
    )
    parser.add_argument("--model", default="canned")
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--stop", default="Question:")
    args = parser.parse_args()

    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    lm = LocalCompletionsAPI(
        base_url=args.base_url.rstrip("/") + "/completions",
        model=args.model,
        tokenizer_backend=None,
        tokenized_requests=False,
        num_concurrent=args.concurrency,
        max_retries=3,
    )
    with open(args.prompts, encoding="utf-8") as fh:
        prompts = json.load(fh)
    gen = {"until": [args.stop], "max_gen_toks": args.max_new_tokens, "do_sample": False}
    requests = [Instance("generate_until", {}, (p, dict(gen)), i) for i, p in enumerate(prompts)]
    start = time.perf_counter()
    chains = lm.generate_until(requests, disable_tqdm=True)
    seconds = time.perf_counter() - start
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump({"chains": chains, "seconds": seconds, "versions": {"lm_eval": lm_eval.__version__}}, fh)


if __name__ == "__main__":
    main()
