"""Teacher API keys, stored server-side (encrypted) per endpoint so a key is entered once and reused by later jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigId, utcnow


class TeacherKey(Base):
    __tablename__ = "teacher_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base_url: Mapped[str] = mapped_column(String(500), unique=True, doc="normalised endpoint (no trailing /)")
    api_key_encrypted: Mapped[str] = mapped_column(
        Text, doc="the key as a Fernet token (backend.core.secrets): encrypted at rest, never returned"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
