"""ω schedules and the AICD loss.

`episode_loss` implements Eq. 1 of the paper, L = -Σ_i ω_i · log p(y_i | x_1, y_1, …, x_i), in one forward
pass: `build_episode` has already turned the objective and ω into one weight per token, so every objective
(aicd, condgen, lm, nocot) is the same weighted token NLL computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from aicd.episodes import Episode

Reduction = Literal["sum", "token"]


def omega_weights(
    schedule: str, n: int, *, omega: float = 0.1, weights: Sequence[float] | None = None
) -> list[float]:
    """ω_1..ω_n for a named schedule.

    paper: ω for i<n, 1 for i=n. constant: 1 for every shot. linear: ω rising linearly to 1.
    exponential: ω rising geometrically to 1 (ω^((n-i)/(n-1))). custom: the given list.
    adaptive: the paper's weights, which training then recomputes every step (`aicd.adaptive_omega`).
    Raises ValueError naming the field on bad input.
    """
    if n <= 0:
        raise ValueError(f"n_shots must be positive, got {n}")
    if omega < 0:
        raise ValueError(f"omega must be >= 0, got {omega}")
    if weights is not None:  # an explicit list wins over the named schedule
        out = [float(w) for w in weights]
        if len(out) != n:
            raise ValueError(f"weights must have n_shots={n} values, got {len(out)}")
        if any(w < 0 for w in out):
            raise ValueError(f"weights must be >= 0, got {out}")
        if not any(w > 0 for w in out):
            raise ValueError("weights must not all be zero")
        return out
    if schedule in ("paper", "adaptive"):  # adaptive starts from the paper's weights (aicd.adaptive_omega)
        if schedule == "adaptive" and omega <= 0:
            raise ValueError("omega must be > 0 for the adaptive schedule (the largest context weight)")
        return [float(omega)] * (n - 1) + [1.0]
    if schedule == "constant":
        return [1.0] * n
    if schedule == "linear":
        return [1.0] if n == 1 else [omega + (1.0 - omega) * i / (n - 1) for i in range(n)]
    if schedule == "exponential":
        if omega <= 0:
            raise ValueError("omega must be > 0 for the exponential schedule")
        return [1.0] if n == 1 else [omega ** ((n - 1 - i) / (n - 1)) for i in range(n)]
    if schedule == "custom":
        raise ValueError("weights must be given for schedule=custom")
    raise ValueError(
        f"schedule must be one of paper, constant, linear, exponential, custom, adaptive; got '{schedule}'"
    )


def collate_episodes(episodes: Sequence[Episode], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad episodes into `input_ids`, `attention_mask`, `loss_weights` tensors of shape [B, T]."""
    import torch

    width = max(len(ep.input_ids) for ep in episodes)
    ids = torch.full((len(episodes), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(episodes), width), dtype=torch.long)
    weights = torch.zeros((len(episodes), width), dtype=torch.float32)
    for row, ep in enumerate(episodes):
        n = len(ep.input_ids)
        ids[row, :n] = torch.tensor(ep.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        weights[row, :n] = torch.tensor(ep.loss_weights, dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": mask, "loss_weights": weights}


def _supervised(input_ids: torch.Tensor, loss_weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(rows, flat positions in [B*T], targets, weights) of the predictions with w_t > 0."""
    import torch

    weights = loss_weights[:, 1:].to(torch.float32)
    rows, cols = torch.nonzero(weights > 0, as_tuple=True)
    return rows, rows * input_ids.shape[1] + cols, input_ids[:, 1:][rows, cols], weights[rows, cols]


def _nll_sum(picked: torch.Tensor, batch_size: int, sup: tuple[torch.Tensor, ...]) -> torch.Tensor:
    import torch

    rows, _, targets, weights = sup
    nll = torch.nn.functional.cross_entropy(picked.float(), targets, reduction="none")
    out = torch.zeros(batch_size, dtype=torch.float32, device=picked.device)
    return out.index_add(0, rows, nll * weights)


def _by_episode(
    weighted: torch.Tensor, sup: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Σ w·nll per episode [B] from the supervised predictions' w·nll [K]; per (episode, shot position)
    [B, P] when the batch has a `shot_onehot` [B, T, P] (the adaptive ω schedule reads it; sums over P
    give the per-episode values, so `reduce_loss` takes either)."""
    import torch

    rows, flat = sup[0], sup[1]
    input_ids = batch["input_ids"]
    onehot = batch.get("shot_onehot")
    if onehot is None:
        out = torch.zeros(input_ids.shape[0], dtype=torch.float32, device=weighted.device)
        return out.index_add(0, rows, weighted)
    cols = flat - rows * input_ids.shape[1]
    member = onehot[:, 1:][rows, cols].to(weighted.dtype)  # [K, P]: the shot each prediction belongs to
    out = torch.zeros(input_ids.shape[0], onehot.shape[2], dtype=torch.float32, device=weighted.device)
    return out.index_add(0, rows, weighted[:, None] * member)


def weighted_nll(logits: torch.Tensor, input_ids: torch.Tensor, loss_weights: torch.Tensor) -> torch.Tensor:
    """Per-episode Σ_t w_t·(−log p(x_t | x_<t)), shape [B], from logits [B, T, V].

    Only positions with w_t > 0 go through log-softmax, which is done in float32.
    """
    sup = _supervised(input_ids, loss_weights)
    # rows of the flattened logits: index_select's backward is a cheap index_add, unlike 2-D indexing's
    picked = logits.reshape(-1, logits.shape[-1]).index_select(0, sup[1])  # [K, V]
    return _nll_sum(picked, logits.shape[0], sup)


# Causal LMs whose logits are exactly lm_head(last hidden state): no final scaling or soft-capping (unlike
# Gemma 2/3, Cohere, Granite), no auxiliary losses in forward (unlike MoE routers).
PLAIN_HEAD_MODELS = frozenset(
    {
        "gpt2",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "phi3",
        "gpt_neox",
        "olmo",
        "olmo2",
        "smollm3",
        "starcoder2",
    }
)


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The decoder stack and LM head of a plain-head model (seen through a peft wrapper), else None."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(hf, "config", None), "model_type", None) not in PLAIN_HEAD_MODELS:
        return None
    decoder = getattr(hf, "base_model", hf)
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    if decoder is hf or head is None:
        return None
    return decoder, head


def batch_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass; returns (Σ w·nll per episode [B], Σ w per episode [B]).

    For plain-head models the LM head runs only on the supervised positions (rationales for AICD, the last
    rationale for CondGen, answers for no-CoT) instead of all B·T of them, and chunk by chunk with its
    gradient taken on the way (`aicd.head_loss`): the [B, T, vocab] logits are never materialised, and
    not even the [K, vocab] logits of the supervised positions at once.
    """
    import torch

    input_ids, loss_weights = batch["input_ids"], batch["loss_weights"]
    total = loss_weights[:, 1:].sum(1)
    parts = _decoder_and_head(model)
    if parts is None:
        logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"]).logits
        if "shot_onehot" not in batch:
            return weighted_nll(logits, input_ids, loss_weights), total
        sup = _supervised(input_ids, loss_weights)
        picked = logits.reshape(-1, logits.shape[-1]).index_select(0, sup[1])
        nll = torch.nn.functional.cross_entropy(picked.float(), sup[2], reduction="none")
        return _by_episode(nll * sup[3], sup, batch), total
    decoder, head = parts
    hidden = decoder(input_ids=input_ids, attention_mask=batch["attention_mask"]).last_hidden_state
    sup = _supervised(input_ids, loss_weights)
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, sup[1])  # [K, D]
    if getattr(head, "bias", None) is not None:  # no plain-head model has one; keep the unfused path
        nll = torch.nn.functional.cross_entropy(head(picked).float(), sup[2], reduction="none")
        return _by_episode(nll * sup[3], sup, batch), total
    from aicd.head_loss import weighted_head_nll

    _, _, targets, weights = sup
    return _by_episode(weighted_head_nll(picked, head.weight, targets, weights), sup, batch), total


def reduce_loss(
    nll: torch.Tensor,
    weight: torch.Tensor,
    reduction: Reduction,
    *,
    n_episodes: int | None = None,
    total_weight: float | None = None,
) -> torch.Tensor:
    """Normalise summed NLL. Pass the global batch's totals when accumulating over micro-batches
    so that the accumulated gradient equals the full-batch one (transformers #34191)."""
    if reduction == "sum":
        return nll.sum() / (n_episodes if n_episodes is not None else nll.shape[0])
    if reduction == "token":
        denom = total_weight if total_weight is not None else weight.sum().clamp_min(1e-12)
        return nll.sum() / denom
    raise ValueError(f"reduction must be 'sum' or 'token', got '{reduction}'")


def episode_loss(
    model: torch.nn.Module, episodes: Sequence[Episode], reduction: Reduction = "sum"
) -> torch.Tensor:
    """The AICD loss of a batch of episodes in one forward pass.

    "sum": Σ_t w_t·(−log p) per episode, averaged over episodes (Eq. 1 exactly).
    "token": Σ w_t·(−log p) / Σ w_t over the batch.
    """
    if not episodes:
        raise ValueError("episode_loss needs at least one episode")
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate_episodes(episodes).items()}
    nll, weight = batch_nll(model, batch)
    return reduce_loss(nll, weight, reduction)
