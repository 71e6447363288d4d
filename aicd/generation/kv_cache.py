"""A KV cache with spare room, for the slot scheduler's decode loop.

transformers' `DynamicLayer` appends a decoded token with `torch.cat`, which copies the whole cache every
step (O(T) per token, so O(T²) per row); for long few-shot prompts that copy cost more than attention itself.
`SpareRoomLayer` keeps keys/values as views of a larger buffer and writes new columns in place, growing the
buffer geometrically; `assign` re-seats it after the scheduler joins or drops rows.
"""

from __future__ import annotations

from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE = 64  # columns reserved beyond what is stored, at least; growth doubles


class SpareRoomLayer(DynamicLayer):
    def assign(self, keys: Any, values: Any) -> None:
        """Store these keys/values ([rows, heads, T, dim]) in a fresh buffer with room to append."""
        spare = max(SPARE, keys.shape[-2])
        shape = (*keys.shape[:-2], keys.shape[-2] + spare, keys.shape[-1])
        self._k, self._v = keys.new_empty(shape), values.new_empty(shape)
        self._n = keys.shape[-2]
        self._k[:, :, : self._n] = keys
        self._v[:, :, : self._n] = values
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.assign(key_states, value_states)
            return self.keys, self.values
        n, t = self._n, key_states.shape[-2]
        if n + t > self._k.shape[-2]:
            self.assign(self.keys, self.values)  # doubles the room
        self._k[:, :, n : n + t] = key_states
        self._v[:, :, n : n + t] = value_states
        self._n = n + t
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]
        return self.keys, self.values

    def batch_select_indices(self, indices: Any) -> None:
        self.assign(self.keys[indices], self.values[indices])


class SpareRoomCache(DynamicCache):
    """A DynamicCache whose layers are SpareRoomLayer (models that check for a DynamicCache accept it)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_class_to_replicate = SpareRoomLayer
