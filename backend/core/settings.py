"""The one settings object of the web service and workers, read from `AICD_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Defaults give embedded mode: SQLite under `home`, no Redis, jobs run by an in-process executor."""

    model_config = SettingsConfigDict(env_prefix="AICD_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".aicd"), description="where the embedded database and artifacts live by default")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<home>/aicd.db")
    redis_url: str | None = Field(
        None, description="Redis URL of the Celery broker; unset = embedded executor"
    )
    broker_url: str | None = Field(None, description="explicit Celery broker URL (overrides redis_url)")
    redis_prefix: str = Field(
        "", description="key prefix for Celery's Redis keys (isolates deployments/tests)"
    )
    api_token: SecretStr | None = Field(None, description="when set, every request but health/docs needs it")
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) encrypting teacher keys at rest (comma-separated to rotate); unset = a key "
        "generated once into <home>/secret.key (0600)",
    )
    artifact_dir: Path | None = Field(None, description="runs, evaluations, sweeps; default <home>/artifacts")
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0, description="largest dataset upload (multipart)")
    max_json_bytes: int = Field(
        1024 * 1024, gt=0, description="largest body of every other request (JSON configs, keys, ...)"
    )
    broker_check_timeout_s: float = Field(
        1.0, gt=0, description="how long /health waits for the broker before calling it unreachable"
    )
    auto_migrate: bool = Field(True, description="run `alembic upgrade head` when the API starts")
    heartbeat_interval_s: float = Field(2.0, gt=0)
    heartbeat_timeout_s: float = Field(
        30.0, gt=0, description="a running job silent this long is marked lost"
    )
    reaper_interval_s: float = Field(5.0, gt=0)
    cancel_poll_s: float = Field(1.0, gt=0, description="how often workers read cancel requests")
    stall_timeout_s: float = Field(
        900.0, ge=0, description="a running job whose phase makes no progress this long is failed (0: never)"
    )
    embedded_workers: int = Field(
        1, ge=1, description="parallel jobs per queue in embedded mode (unset: one per GPU, one on CPU)"
    )
    page_max: int = Field(500, gt=0)
    api_read_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="threads per API process for the hot read routes (run and generation lists, compare); "
        "a few contend less for the GIL than anyio's default 40 (bench/results/api.md)",
    )
    db_pool_size: int = Field(20, gt=0, description="PostgreSQL connections kept open per API/worker process")
    db_max_overflow: int = Field(
        20,
        ge=0,
        description="extra connections a process may open under load; keep pool + overflow >= 40 (the API's "
        "thread pool), or requests can wait on each other for a connection until the pool timeout (503)",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads each job computes with (torch, OpenMP); unset: the cores shared evenly "
        "between the jobs that run at once",
    )

    @field_validator("threads")
    @classmethod
    def _threads_fit(cls, value: int | None) -> int | None:
        """More threads than cores only makes jobs fight: refused at start-up, naming the variable."""
        from aicd.threads import check_threads

        if value is not None:
            try:
                check_threads(value)
            except ValueError as exc:
                raise ValueError(f"AICD_{exc}") from None
        return value

    def job_threads(self, concurrent_jobs: int) -> int:
        """Threads for one job: AICD_THREADS, else the available cores ÷ the jobs that run at once."""
        from aicd.threads import default_threads

        return self.threads or default_threads(concurrent_jobs)

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """A malformed secret stops start-up with this message, not the first request that stores a key."""
        from cryptography.fernet import Fernet

        if value is None or not value.get_secret_value().strip():
            return None  # `AICD_SECRET_KEY=` in a .env: unset, i.e. the generated key file
        for part in value.get_secret_value().split(","):
            try:
                Fernet(part.strip())
            except ValueError:
                raise ValueError(
                    "AICD_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes each), e.g. from "
                    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
                ) from None
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'aicd.db').resolve()}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def artifacts(self) -> Path:
        return (self.artifact_dir or self.home / "artifacts").resolve()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def celery_broker(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def embedded(self) -> bool:
        return self.celery_broker is None


@lru_cache
def get_settings() -> Settings:
    """Cached; tests change the environment and call `get_settings.cache_clear()`."""
    return Settings()
