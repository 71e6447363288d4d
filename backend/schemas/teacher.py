"""Teacher keys as the API shows them: which endpoints have a key, never the key itself."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from backend.schemas.common import ORM

BASE_URL_MAX = 500  # teacher_keys.base_url


class TeacherKeyPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="OpenAI-compatible base URL; empty = OpenAI")
    api_key: SecretStr = Field(description="stored server-side, never returned")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        if len(value) > BASE_URL_MAX:
            raise ValueError(f"must be at most {BASE_URL_MAX} characters")
        return value

    @field_validator("api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        if "\x00" in value.get_secret_value():
            raise ValueError("contains a NUL character")
        return value


class TeacherKeyPublic(ORM):
    base_url: str
    created_at: datetime
    updated_at: datetime
