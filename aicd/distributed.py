"""What one training step needs to know about the other ranks: its share of the batch and the global totals.

Every rank builds the same epoch plan (deterministic in seed and epoch), whose micro-batches hold
`micro_batch_size × num_processes` episodes; each rank trains on its contiguous share of each. The loss is
normalised by the *global* totals of the optimizer step (all-reduced), and the backward pass is scaled by
the number of ranks because DDP, FSDP and DeepSpeed average gradients across ranks; the summed-then-averaged
gradient is then exactly that of one process running micro-batches of `micro_batch_size × num_processes`.
With one process every function here is the identity and issues no collective.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from accelerate import Accelerator

T = TypeVar("T")


class EpisodeNLL(torch.nn.Module):
    """The student behind one `forward(batch) -> (Σ w·nll, Σ w)` per episode.

    `batch_nll` calls the decoder and the LM head separately (the head runs only on supervised positions),
    so the student's own `forward` is never called; DDP and FSDP hook into the forward of the module they
    wrap, hence this wrapper is what `accelerator.prepare` gets.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        # FSDP's transformer auto-wrap policy reads the layer classes from the module it wraps
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        from aicd.objectives import batch_nll

        return batch_nll(self.model, batch)


def rank_share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's contiguous slice of one global micro-batch (the last ranks may get fewer, or none)."""
    size = -(-len(items) // world)
    return list(items[rank * size : (rank + 1) * size])


def global_totals(accelerator: Accelerator, n_episodes: int, weight: float) -> tuple[int, float]:
    """(episodes, Σw) of the whole optimizer step: this rank's counts summed over all ranks."""
    if accelerator.num_processes == 1:
        return n_episodes, weight
    from accelerate.utils import reduce

    local = torch.tensor([float(n_episodes), weight], dtype=torch.float64, device=accelerator.device)
    total = reduce(local, reduction="sum")
    return round(float(total[0])), float(total[1])


def global_sum(accelerator: Accelerator, value: Any) -> float:
    """A per-rank float or 0-d tensor summed over ranks, on the host."""
    if accelerator.num_processes == 1:
        return float(value)
    from accelerate.utils import reduce

    tensor = torch.as_tensor(value, dtype=torch.float64).reshape(1).to(accelerator.device)
    return float(reduce(tensor, reduction="sum")[0])


def rank0_decides(accelerator: Accelerator, flag: bool) -> bool:
    """Rank 0's flag on every rank (e.g. a cancel request), so all ranks stop at the same micro-batch."""
    if accelerator.num_processes == 1:
        return flag
    from accelerate.utils import broadcast

    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=accelerator.device)
    return bool(broadcast(tensor, from_process=0)[0])
