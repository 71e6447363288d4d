"""docker-compose.yml cannot be run here (no Docker engine): check its structure by parsing it."""

from __future__ import annotations

import yaml

from tests.backend.conftest import REPO, compose_command


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_dependencies() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker-gpu", "worker-cpu", "ui"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-gpu", "worker-cpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["AICD_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["AICD_REDIS_URL"].startswith("redis://")
        assert env["AICD_AUTO_MIGRATE"] == "false"  # the migrate service owns the schema
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "deploy" not in services["worker-cpu"]
    assert services["worker-gpu"]["stop_grace_period"]  # time to checkpoint on `docker stop`


def test_commands_are_the_ones_tests_run() -> None:
    assert compose_command("migrate") == ["alembic", "upgrade", "head"]
    api = compose_command("api")
    assert api[:4] == ["gunicorn", "backend.main:app", "-k", "uvicorn_worker.UvicornWorker"]
    assert api[api.index("--workers") + 1] == "${AICD_API_WORKERS:-2}"  # 2 processes, as benchmarked
    assert "--reuse-port" in api  # run as is by tests/backend/test_api_server.py
    for service, queue in (("worker-gpu", "gpu"), ("worker-cpu", "cpu")):
        cmd = compose_command(service)
        assert cmd[:4] == ["celery", "-A", "worker.celery_app:app", "worker"]
        assert cmd[cmd.index("-Q") + 1] == queue
        assert "--pool=solo" in cmd and "--concurrency=1" in cmd
    assert compose_command("ui")[:3] == ["streamlit", "run", "ui/app.py"]
    assert (REPO / "ui" / "app.py").exists()


def test_env_example_covers_compose_variables() -> None:
    text = (REPO / ".env.example").read_text()
    for var in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "AICD_API_TOKEN", "AICD_API_WORKERS"):
        assert f"{var}=" in text


def test_image_holds_what_the_services_read() -> None:
    """The Dockerfile copies every folder the api/worker/ui read at run time, shipped configs included."""
    copied = {
        line.split()[1].rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    for folder in ("aicd", "backend", "worker", "ui", "migrations", "alembic.ini"):
        assert folder in copied, folder
    configs = [p for p in (REPO / "configs", REPO / "aicd" / "configs") if any(p.glob("*.yaml"))]
    assert configs, "no shipped configs found"
    for path in configs:  # aicd/configs comes with `COPY aicd`
        assert path.relative_to(REPO).parts[0] in copied, path
    for src in copied:  # a COPY of a missing path breaks the build
        assert (REPO / src).exists() or src in ("pyproject.toml", "README.md"), src
