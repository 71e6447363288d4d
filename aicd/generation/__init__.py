"""Greedy generation for evaluation behind one interface, on three backends.

`base` holds the interface (`GenerationBackend.stream(prompts, stop)` yields `(index, chain)` as each
prompt finishes) and `text` the rules every backend shares (BOS, EOS, cutting at a stop string). The
backends: `hf` (a local transformers model with a slot scheduler), `vllm` (in-process `vllm.LLM`) and
`openai_compat` (any OpenAI-compatible completions server). `build_backend` picks one from an EvalConfig.
"""

from aicd.generation.base import GenerationBackend, PromptInput, generate_all
from aicd.generation.factory import build_backend

__all__ = ["GenerationBackend", "PromptInput", "build_backend", "generate_all"]
