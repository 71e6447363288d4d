"""Data records, JSONL I/O and dataset loaders."""

from aicd.data.jsonl import read_examples, write_examples
from aicd.data.record import Example, Rationale, RationaleSource

__all__ = ["Example", "Rationale", "RationaleSource", "read_examples", "write_examples"]
