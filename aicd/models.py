"""Loading students: any HF causal LM by hub id or path, or `tiny:<arch>` built from a config offline."""

from __future__ import annotations

from typing import Any

from aicd.errors import AICDError

TINY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": 2048},
    "llama": {
        "num_hidden_layers": 2,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
    },
}


def fuse_activations(model: Any) -> Any:
    """Swap transformers' Python tanh-GELU (`gelu_new`: GPT-2, GPT-J, GPT-Neo, …) for torch's one-kernel
    `gelu(approximate="tanh")`, the same function: the Python one saves about five [B, T, 4·D] tensors per
    layer for backward (about 1.4 GB for GPT-2-small at batch 4 × 650 tokens) and runs five kernels.
    The config is left alone, so saved checkpoints are unchanged."""
    from transformers.activations import GELUTanh, NewGELUActivation

    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
    return model


def is_tiny(spec: str) -> bool:
    return spec.startswith("tiny:")


def parse_tiny(spec: str) -> tuple[str, dict[str, Any]]:
    """`tiny:gpt2` or `tiny:llama?hidden_size=64&num_hidden_layers=4` -> (arch, config overrides)."""
    body = spec.removeprefix("tiny:")
    arch, _, query = body.partition("?")
    arch = arch or "gpt2"
    if arch not in TINY_DEFAULTS:
        raise ValueError(
            f"model: unknown tiny architecture '{arch}' (choose from {', '.join(TINY_DEFAULTS)})"
        )
    overrides: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, _, raw = item.partition("=")
        overrides[key] = int(raw) if raw.lstrip("-").isdigit() else float(raw) if _is_float(raw) else raw
    return arch, overrides


def _is_float(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True


def tiny_tokenizer() -> Any:
    """A byte-level tokenizer that needs no files (vocab 384: 3 specials, 256 bytes, 125 extra ids)."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def build_tiny_model(spec: str, tokenizer: Any, seed: int = 0) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    arch, overrides = parse_tiny(spec)
    kwargs = {**TINY_DEFAULTS[arch], **overrides}
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = GPT2Config(**ids, **kwargs) if arch == "gpt2" else LlamaConfig(**ids, **kwargs)
    torch.manual_seed(seed)
    return fuse_activations(AutoModelForCausalLM.from_config(config))


def load_error(spec: str, exc: Exception) -> AICDError:
    """A readable AICDError for a model/tokenizer that cannot be loaded: missing or offline (OSError), or
    not a causal LM / an unknown architecture (ValueError from the Auto classes)."""
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, ValueError):
        return AICDError(f"model: '{spec}' is not a causal language model transformers can load ({detail})")
    return AICDError(f"model: cannot load '{spec}' ({detail})")


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a hub id / local folder (pad = EOS when it has none), or the tiny byte tokenizer."""
    if is_tiny(spec):
        return tiny_tokenizer()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as exc:
        raise load_error(spec, exc) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(
    spec: str, *, seed: int = 0, dtype: Any = None, **kwargs: Any
) -> tuple[Any, Any]:
    """(model, tokenizer) for a hub id, a local checkpoint directory, or a `tiny:` spec.

    Raises AICDError with a readable message when a hub id cannot be fetched (e.g. offline) or is not a
    causal LM.
    """
    if is_tiny(spec):
        tokenizer = tiny_tokenizer()
        return build_tiny_model(spec, tokenizer, seed=seed), tokenizer
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype or "auto", **kwargs)
    except (OSError, ValueError) as exc:
        raise load_error(spec, exc) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return fuse_activations(model), tokenizer
