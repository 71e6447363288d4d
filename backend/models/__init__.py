"""All tables; importing this module registers them on `Base.metadata` (Alembic's target)."""

from backend.models.base import ACTIVE, RESUMABLE, Base, JobStatus
from backend.models.dataset import AnnotationRecordRow, Dataset, Example, Rationale
from backend.models.jobs import AnnotationJob, Artifact, Evaluation, Generation, MetricPoint, Run, Sweep
from backend.models.teacher import TeacherKey

__all__ = [
    "ACTIVE",
    "RESUMABLE",
    "AnnotationJob",
    "AnnotationRecordRow",
    "Artifact",
    "Base",
    "Dataset",
    "Evaluation",
    "Example",
    "Generation",
    "JobStatus",
    "MetricPoint",
    "Rationale",
    "Run",
    "Sweep",
    "TeacherKey",
]
