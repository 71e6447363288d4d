"""One place that turns an EvalConfig into a generation backend."""

from __future__ import annotations

from typing import Any

from aicd.generation.base import GenerationBackend


def build_backend(config: Any, *, model: Any = None, tokenizer: Any = None) -> GenerationBackend:
    """The backend `config.backend` names; `hf` needs the loaded model and tokenizer.

    Remote and vLLM backends are checked here (server reachable, package installed), before evaluation
    generates or writes anything.
    """
    if config.backend == "openai":
        from aicd.generation.openai_compat import OpenAIBackend

        backend = OpenAIBackend(
            base_url=config.base_url,
            model=config.served_model or config.model,
            max_new_tokens=config.max_new_tokens,
            concurrency=config.concurrency,
            max_retries=config.max_retries,
            timeout=config.request_timeout,
        )
        backend.check_reachable()
        return backend
    if config.backend == "vllm":
        from aicd.generation.vllm_engine import VLLMBackend

        return VLLMBackend(config.model, max_new_tokens=config.max_new_tokens)
    from aicd.generation.hf import HFBackend

    return HFBackend(model, tokenizer, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens)
