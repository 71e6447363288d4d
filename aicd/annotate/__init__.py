"""Rationale annotation: a teacher LLM (OpenAI-compatible), the dataset's gold rationales, or a local model.

from aicd.annotate import AnnotateConfig, JsonlSink, annotate
report = annotate(AnnotateConfig(base_url=..., teacher=...), examples, JsonlSink("x.raw.jsonl"))
write_examples("x.jsonl", report.examples)
"""

from aicd.annotate.client import TeacherError, redact
from aicd.annotate.config import PAPER_PROMPT, AnnotateConfig, ModelPrice
from aicd.annotate.postprocess import FilterStats, normalize_ending, postprocess
from aicd.annotate.records import AnnotationRecord, RecordKey, Usage
from aicd.annotate.runner import AnnotateReport, annotate, annotate_async
from aicd.annotate.sinks import CallbackSink, JsonlSink, MemorySink, RationaleSink, read_raw

__all__ = [
    "PAPER_PROMPT",
    "AnnotateConfig",
    "AnnotateReport",
    "AnnotationRecord",
    "CallbackSink",
    "FilterStats",
    "JsonlSink",
    "MemorySink",
    "ModelPrice",
    "RationaleSink",
    "RecordKey",
    "TeacherError",
    "Usage",
    "annotate",
    "annotate_async",
    "normalize_ending",
    "postprocess",
    "read_raw",
    "redact",
]
