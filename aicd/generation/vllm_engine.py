"""The `vllm` backend: an in-process `vllm.LLM` (continuous batching and paged attention on a GPU).

vLLM is an optional extra (`pip install 'aicd-workbench[vllm]'`); without it the backend refuses with one
line naming the extra. Prompts go in as token ids (`TokensPrompt`), greedy, with the same stop strings
and the same final cut as the other backends. A trained run's `final/` folder loads as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from aicd.errors import ConfigError
from aicd.generation.base import PromptInput
from aicd.generation.text import cut_at_stop

MISSING = "backend: vllm is not installed; install the extra with pip install 'aicd-workbench[vllm]'"


def require_vllm() -> Any:
    """The vllm module, or a ConfigError naming the extra."""
    try:
        import vllm
    except ImportError:
        raise ConfigError(MISSING) from None
    return vllm


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, *, max_new_tokens: int, seed: int = 0, **engine_args: Any) -> None:
        if model.startswith("tiny:"):
            raise ConfigError(f"model: the vllm backend loads saved checkpoints, not '{model}'")
        vllm = require_vllm()
        self.max_new_tokens = max_new_tokens
        # generation_config="vllm": ignore the checkpoint's generation_config.json defaults (e.g. a
        # repetition_penalty), so greedy means argmax of the logits here as on the hf and openai backends
        engine_args.setdefault("generation_config", "vllm")
        self.llm = vllm.LLM(model=model, seed=seed, **engine_args)

    def stream(self, prompts: Sequence[PromptInput], stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        stop = [s for s in stop if s]
        params = SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens, stop=stop or None)
        inputs = [p if isinstance(p, str) else TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        for i, out in enumerate(outputs):
            yield i, cut_at_stop(out.outputs[0].text, stop)

    def close(self) -> None:
        del self.llm
