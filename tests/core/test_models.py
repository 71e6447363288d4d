"""Student loading: the one-kernel GELU swap keeps outputs and saves activation memory."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, GPT2Config
from transformers.activations import NewGELUActivation


def _saved_bytes(model, ids) -> int:
    """Bytes of the distinct tensors autograd keeps for backward in one forward pass."""
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids).logits.sum()
    return sum(storages.values())


def test_fuse_activations_keeps_outputs_and_saves_memory():
    from aicd.models import fuse_activations

    config = GPT2Config(
        vocab_size=64,
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=128,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_config(config)
    fused = fuse_activations(AutoModelForCausalLM.from_config(config))
    fused.load_state_dict(plain.state_dict())
    assert any(type(m) is NewGELUActivation for m in plain.modules())
    assert not any(type(m) is NewGELUActivation for m in fused.modules())
    assert fused.config.activation_function == "gelu_new"  # checkpoints it saves are unchanged
    ids = torch.randint(0, 64, (2, 100))
    torch.testing.assert_close(fused(input_ids=ids).logits, plain(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    assert _saved_bytes(fused, ids) < 0.8 * _saved_bytes(plain, ids)


def test_loaded_students_and_the_optimizer_use_the_fused_kernels():
    from aicd.config import TrainConfig
    from aicd.models import load_model_and_tokenizer
    from aicd.train_setup import make_optimizer

    model, _ = load_model_and_tokenizer("tiny:gpt2")
    assert not any(type(m) is NewGELUActivation for m in model.modules())
    fields = TrainConfig.model_fields
    cfg = TrainConfig.model_construct(**{k: f.default for k, f in fields.items() if not f.is_required()})
    assert make_optimizer(model, cfg).defaults["fused"] is True
