"""The LM head and its cross-entropy, chunked over positions so that [K, vocab] logits never exist at once.

`weighted_head_nll(hidden, weight, targets, coef)` = coef_k · (−log softmax(hidden_k · Wᵀ)[target_k]) for each
of K positions, with log-softmax in float32. The head is the largest activation of a small student (K × 50k
floats for GPT-2, several times over: logits, log-softmax saved for backward, their gradient); here each
chunk of rows is computed, turned into its gradient and freed in the forward pass, as Liger's fused linear
cross-entropy and torch's chunked `F.linear_cross_entropy` do. Neither fits as is: Liger needs Triton (no
CPU), and torch's op has no per-position weights (only per-class) and recomputes the logits in backward
when asked for per-position losses. Gradients computed in forward are exact only if every position gets
the same upstream gradient — true for the training loss, a sum over episodes divided by a constant; any
other upstream gradient makes backward recompute the chunks (same result, one more matmul).
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_ELEMENTS = 1 << 25  # logits per chunk (128 MiB in float32): large matmuls, bounded memory


def chunk_rows(vocab: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Positions per chunk so that one chunk's float32 logits hold about `elements` values."""
    return max(1, elements // max(1, vocab))


def _chunk_nll(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(float32 logits [k, V], logsumexp [k], nll [k]) of one chunk."""
    logits = (h @ weight.T).float()
    lse = torch.logsumexp(logits, dim=-1)
    return logits, lse, lse - logits.gather(1, targets[:, None]).squeeze(1)


def _chunk_grads(
    h: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    coef: torch.Tensor,
    grad_w: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(nll [k] in float32, d(nll·coef)/dh [k, D]) of one chunk; adds d(nll·coef)/dW into `grad_w` if given."""
    logits, lse, nll = _chunk_nll(h, weight, targets)
    grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
    grad.scatter_add_(1, targets[:, None], torch.full_like(lse[:, None], -1.0))
    grad.mul_(coef[:, None])
    grad_h = grad.to(weight.dtype) @ weight
    if grad_w is not None:
        grad_w.addmm_(grad.T, h.float())
    return nll, grad_h


class _WeightedHeadNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden, weight, targets, coef, rows_per_chunk: int):  # type: ignore[override]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        device = hidden.device.type
        # the matmuls in autocast's dtype when it is on (as the plain head would run), softmax in float32
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        h, w = hidden.detach().to(dtype), weight.detach().to(dtype)
        out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        with torch.autocast(device, enabled=False):
            for start in range(0, len(targets), rows_per_chunk):
                part = slice(start, start + rows_per_chunk)
                nll, gh = _chunk_grads(h[part], w, targets[part], coef[part], grad_w)
                if grad_h is not None:
                    grad_h[part] = gh
                out[part] = nll
        ctx.rows_per_chunk, ctx.dtype = rows_per_chunk, dtype
        ctx.save_for_backward(hidden, weight, targets, coef, grad_h, grad_w)
        return out * coef

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        hidden, weight, targets, coef, grad_h, grad_w = ctx.saved_tensors
        if grad_out.numel() and bool((grad_out == grad_out[0]).all()):
            scale = grad_out[0]
            gh = grad_h * scale.to(grad_h.dtype) if grad_h is not None else None
            gw = (grad_w * scale).to(weight.dtype) if grad_w is not None else None
            return gh, gw, None, None, None
        # an upstream gradient that differs per position: recompute each chunk with it folded into coef
        need_w = grad_w is not None
        gw_acc = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        gh = torch.empty_like(hidden) if grad_h is not None else None
        step, h, w = ctx.rows_per_chunk, hidden.to(ctx.dtype), weight.to(ctx.dtype)
        for start in range(0, len(targets), step):
            part = slice(start, start + step)
            _, g = _chunk_grads(h[part], w, targets[part], coef[part] * grad_out[part].float(), gw_acc)
            if gh is not None:
                gh[part] = g
        return gh, gw_acc.to(weight.dtype) if gw_acc is not None else None, None, None, None


def weighted_head_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    coef: torch.Tensor,
    *,
    rows_per_chunk: int | None = None,
) -> torch.Tensor:
    """coef_k · (−log p(targets_k)) per position, shape [K], where p = softmax(hidden @ weightᵀ) in float32.

    hidden [K, D], weight [V, D] (an LM head without bias), targets [K] long, coef [K] float32.
    """
    rows = rows_per_chunk or chunk_rows(weight.shape[0])
    coef = coef.to(torch.float32)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _WeightedHeadNLL.apply(hidden, weight, targets, coef, rows)
    # no graph to build (evaluation, no_grad): the loss alone, chunk by chunk, without gradients
    parts = [
        _chunk_nll(hidden[i : i + rows], weight, targets[i : i + rows])[2]
        for i in range(0, len(targets), rows)
    ]
    return (torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)) * coef
