"""Recognising an out-of-memory failure, so training and generation can answer with the setting to change
instead of a stack trace (torch raises OutOfMemoryError on CUDA, a plain RuntimeError or MemoryError on CPU)."""

from __future__ import annotations


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError and for the CPU allocator's failures."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
