"""What an annotation run asks for: source, teacher endpoint, sampling, limits, filters and prices.

Pydantic and no torch, so the API can validate it. The API key is a `SecretStr`: it never shows in a repr, a log
line or a saved config.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

PAPER_PROMPT = "Question: {question} Hint: The answer should be {answer}. Answer: Let's think step by step."
"""The paper's rationalisation prompt: the teacher sees the gold answer and explains it."""


class ModelPrice(BaseModel):
    """USD per one million tokens."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")


class AnnotateConfig(BaseModel):
    """One annotation run. Defaults follow the paper: 3 rationales per question at temperature 1.0."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    source: Literal["teacher", "gold", "self"] = Field("teacher", description="where rationales come from")
    # teacher endpoint
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (vLLM/Ollama: http://host:port/v1)"
    )
    api_key: SecretStr | None = Field(None, description="API key; falls back to $OPENAI_API_KEY")
    teacher: str = Field("gpt-3.5-turbo", min_length=1, description="teacher model name")
    # sampling
    k: int = Field(3, gt=0, le=128, description="rationales per question")
    temperature: float = Field(1.0, ge=0, le=2)
    max_tokens: int = Field(512, gt=0)
    stop: list[str] | None = Field(None, description="stop sequences")
    prompt_template: str = Field(PAPER_PROMPT, description="prompt with {question} and {answer}")
    system_prompt: str | None = None
    n_mode: Literal["auto", "batch", "single"] = Field(
        "auto",
        description="batch: n=k in one request; single: k requests; auto: batch, falling back to single",
    )
    # limits and retries
    concurrency: int = Field(16, gt=0, le=1024, description="requests in flight at once")
    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute (prompt estimate + max_tokens × n)")
    max_retries: int = Field(6, ge=0, description="retries per request on 429/5xx/timeouts/connection errors")
    backoff_initial: float = Field(0.5, ge=0, description="first backoff in seconds (doubles, with jitter)")
    backoff_max: float = Field(
        30.0, gt=0, description="longest exponential backoff between retries, in seconds"
    )
    retry_after_max: float = Field(
        300.0, gt=0, description="longest Retry-After honoured, in seconds (a longer one is cut to this)"
    )
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    max_retry_time: float = Field(
        300.0, gt=0, description="longest time one sample is retried, waits included, in seconds"
    )
    breaker_after: int = Field(
        8,
        ge=0,
        description="stop the run when its first N requests all fail, or N samples in a row fail after every "
        "retry (a dead or hung endpoint; resumable); 0: never",
    )
    http_backend: Literal["auto", "httpx", "aiohttp"] = Field(
        "auto", description="SDK transport; auto: aiohttp when installed (less CPU per request), else httpx"
    )
    preflight: bool = Field(True, description="check the endpoint, key and model before the first request")
    # self-rationalisation
    model: str | None = Field(
        None, description="local HF model for source=self (path, hub id or tiny:<arch>)"
    )
    batch_size: int = Field(8, gt=0, description="questions per generate() batch for source=self")
    seed: int = 0
    # post-processing
    answer_kind: Literal["number", "yesno", "auto"] = "auto"
    filter_correct: bool = Field(
        True, description="keep only rationales whose final answer matches the gold one"
    )
    drop_hint_mentions: bool = Field(
        True, description="drop rationales that mention or paraphrase the hint ('the given answer is…')"
    )
    drop_contradictions: bool = Field(
        True, description="drop rationales that announce two different final answers"
    )
    normalize_ending: bool = Field(True, description="end every kept rationale with 'So, the answer is X.'")
    drop_truncated: bool = Field(
        True, description="drop rationales cut off by max_tokens (finish_reason=length)"
    )
    keep_empty: bool = Field(False, description="keep examples left without any rationale in the output")
    # accounting
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="per-model prices over the built-ins"
    )
    fsync: bool = Field(
        False, description="fsync the raw store after every record (slower, survives power loss)"
    )

    @field_validator("prompt_template")
    @classmethod
    def _has_placeholders(cls, value: str) -> str:
        missing = [p for p in ("{question}", "{answer}") if p not in value]
        if missing:
            raise ValueError(f"must contain {' and '.join(missing)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _self_needs_model(self) -> AnnotateConfig:
        if self.source == "self" and not self.model:
            raise ValueError("source 'self' needs 'model' (a local HF model path or tiny:<arch>)")
        return self

    @property
    def prompt_hash(self) -> str:
        """Identifies the prompt (template and system prompt) in record keys, so a new prompt re-asks."""
        text = (self.system_prompt or "") + "\x00" + self.prompt_template
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def writer(self) -> str:
        """The name stored as a record's `teacher`: the teacher model, the self model, or "gold"."""
        if self.source == "gold":
            return "gold"
        if self.source == "self":
            return str(self.model)
        return self.teacher

    def resolved_api_key(self) -> str | None:
        """The key from the config, else $OPENAI_API_KEY (never logged)."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or None

    def render(self, question: str, answer: str) -> str:
        """The prompt for one question; `str.replace`, so braces in questions are safe."""
        return self.prompt_template.replace("{question}", question).replace("{answer}", answer)

    def public_dict(self) -> dict[str, Any]:
        """The config without the key, for logs and saved metadata."""
        return self.model_dump(mode="json", exclude={"api_key"})
