"""The chunked LM head + cross-entropy against the plain one: same per-position loss, same gradients."""

from __future__ import annotations

import pytest
import torch

from aicd.head_loss import chunk_rows, weighted_head_nll


def _case(seed: int = 0, k: int = 37, d: int = 16, v: int = 101):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(k, d, generator=g, dtype=torch.float64).float()
    weight = torch.randn(v, d, generator=g) * 0.5
    targets = torch.randint(0, v, (k,), generator=g)
    coef = torch.rand(k, generator=g)
    coef[::5] = 0.1  # AICD-like: a few distinct ω values
    return hidden, weight, targets, coef


def _plain(hidden, weight, targets, coef):
    logp = torch.log_softmax((hidden @ weight.T).float(), dim=-1)
    return -logp.gather(1, targets[:, None]).squeeze(1) * coef


def _grads(fn, hidden, weight, upstream):
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    out = fn(h, w)
    (out * upstream).sum().backward()
    return out.detach(), h.grad, w.grad


@pytest.mark.parametrize("rows", [1, 5, 37, 1000])
@pytest.mark.parametrize("upstream", ["uniform", "per_position"])
def test_chunked_loss_and_gradients_equal_the_unchunked_ones(rows, upstream):
    """Any chunk size; a uniform upstream gradient (the training loss: gradients taken in forward) and a
    per-position one (backward recomputes the chunks) both give the plain computation's gradients."""
    hidden, weight, targets, coef = _case()
    up = torch.full((len(targets),), 0.25) if upstream == "uniform" else torch.rand(len(targets)) + 0.5
    got = _grads(lambda h, w: weighted_head_nll(h, w, targets, coef, rows_per_chunk=rows), hidden, weight, up)
    want = _grads(lambda h, w: _plain(h, w, targets, coef), hidden, weight, up)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_no_grad_and_frozen_head_paths(monkeypatch):
    """Under no_grad only the loss is computed; with a frozen head (LoRA) only the hidden states get a grad."""
    import aicd.head_loss

    hidden, weight, targets, coef = _case(seed=1)
    weight.requires_grad_(True)
    with torch.no_grad(), monkeypatch.context() as m:
        m.setattr(aicd.head_loss, "_chunk_grads", lambda *a: pytest.fail("gradients computed under no_grad"))
        torch.testing.assert_close(
            weighted_head_nll(hidden, weight, targets, coef, rows_per_chunk=4),
            _plain(hidden, weight, targets, coef),
        )
    weight.requires_grad_(False)
    h = hidden.clone().requires_grad_(True)
    weighted_head_nll(h, weight, targets, coef, rows_per_chunk=8).sum().backward()
    h2 = hidden.clone().requires_grad_(True)
    _plain(h2, weight, targets, coef).sum().backward()
    torch.testing.assert_close(h.grad, h2.grad, rtol=1e-5, atol=1e-6)
    assert weight.grad is None


def test_chunk_rows_bounds_the_logits_of_one_chunk():
    assert chunk_rows(50257) * 50257 <= 1 << 25 < (chunk_rows(50257) + 1) * 50257
    assert chunk_rows(10**9) == 1
