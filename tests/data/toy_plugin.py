"""A dataset module that registers itself on import (a `loaders.PLUGINS` entry)."""

from aicd.data.loaders import DatasetInfo, register_dataset
from aicd.data.record import Example

INFO = DatasetInfo(name="toyplug", answer_kind="yesno", n_shots=6, description="toy plugin for tests")


def _load(split: str, seed: int) -> list[Example]:
    return [
        Example(id=f"toy/{split}/{seed}/{i}", question=f"Is {i} even?", answer=i % 2 == 0) for i in range(5)
    ]


register_dataset(INFO, _load)
