"""`aicd up`: the whole stack on this machine — API, worker and UI — stopped together with Ctrl-C.

Embedded defaults (nothing to install): SQLite under AICD_HOME (default `.aicd`) and jobs run by the API's own
executor, so no Redis is needed. With AICD_REDIS_URL (or AICD_BROKER_URL) set, Celery workers are started for the
`gpu` and `cpu` queues; with AICD_DATABASE_URL set, that database is used. The API applies migrations when it
starts. Each child runs in its own process group, so stopping one also stops whatever it started.

Settings come from the environment and from `.env` files (the checkout's, then the current directory's; the
environment wins), read once here with the backend's own `Settings`: what they decide — broker or embedded
executor, database, home, API token — is passed explicitly to every child, so the API, the workers and the UI
(AICD_API_URL, AICD_API_TOKEN) all agree with what `up` prints.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from aicd.cli.options import threads_option
from aicd.errors import AICDError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen[bytes] | None = None
    ready: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Stack:
    """What `up` decided from the environment and the .env files."""

    env: dict[str, str]  # of the API and the workers: every setting that was given, spelled out
    ui_env: dict[str, str]  # of the UI: the same plus where the API is and its token
    broker: str | None  # Celery broker URL; None = the API's embedded executor
    token: str | None
    database: str  # for the banner


def env_files(cwd: Path | None = None) -> tuple[Path, ...]:
    """The `.env` files honoured, later ones winning: the checkout's (the API, started there, would read it by
    itself) and the current directory's."""
    files = [ROOT / ".env", (cwd or Path.cwd()) / ".env"]
    out: list[Path] = []
    for f in files:
        if f.is_file() and all(f.resolve() != o.resolve() for o in out):
            out.append(f)
    return tuple(out)


def _spell(value: object) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value.expanduser().resolve())  # relative to where `up` was started, not to the API's cwd
    if isinstance(value, dict | list | tuple):
        import json

        return json.dumps(value)
    return str(value)


def resolve_stack(api_url: str, home: Path | None = None, cwd: Path | None = None) -> Stack:
    """Build the backend's Settings once (environment + .env files + --home) and spell out its decisions."""
    from pydantic import ValidationError

    from backend.core.settings import Settings

    files = env_files(cwd)
    try:
        settings = Settings(
            _env_file=files or None,  # type: ignore[call-arg]
            **({"home": home.expanduser().resolve()} if home is not None else {}),
        )
    except ValidationError as exc:
        where = ", ".join(map(str, files)) or "the environment"
        problems = "; ".join(f"AICD_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise AICDError(f"invalid settings (from {where}): {problems}") from None
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is not None:
            env[f"AICD_{name.upper()}"] = _spell(value)
    if "home" not in settings.model_fields_set:  # the default home, where the API (cwd: the checkout) puts it
        env["AICD_HOME"] = str((ROOT / settings.home).resolve())
    token = settings.api_token.get_secret_value() if settings.api_token else None
    ui_env = {**env, "AICD_API_URL": api_url}
    if token:
        ui_env["AICD_API_TOKEN"] = token
    else:
        ui_env.pop("AICD_API_TOKEN", None)
    database = settings.database_url or f"SQLite in {env['AICD_HOME']}/aicd.db"
    return Stack(env=env, ui_env=ui_env, broker=settings.celery_broker, token=token, database=database)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(url: str, child: Child, timeout: float, stop: threading.Event) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if not child.alive():
            return False
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _spawn(child: Child, env: dict[str, str]) -> None:
    child.proc = subprocess.Popen(child.cmd, env=env, cwd=ROOT, start_new_session=True)


def _stop_all(children: list[Child], grace: float) -> None:
    """SIGTERM every child's process group (newest first), then SIGKILL what is left after `grace` seconds."""
    started = [c for c in children if c.proc is not None]
    for child in reversed(started):
        if child.alive():
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in reversed(started):
        assert child.proc is not None
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            typer.echo(f"  {child.name} did not stop in {grace:g}s; killing it", err=True)
            _signal_group(child, signal.SIGKILL)
            child.proc.wait()
        _signal_group(child, signal.SIGKILL)  # leftovers of its group (e.g. a job it had started)


def _signal_group(child: Child, sig: int) -> None:
    assert child.proc is not None
    try:
        os.killpg(child.proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def up_command(
    api_port: int = typer.Option(8000, "--api-port", help="port of the REST API"),
    ui_port: int = typer.Option(8501, "--ui-port", help="port of the Streamlit UI"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    no_ui: bool = typer.Option(False, "--no-ui", help="start only the API and the worker"),
    home: Path = typer.Option(
        None, "--home", help="where the embedded database and artifacts live (default: AICD_HOME or .aicd)"
    ),
    startup_timeout: float = typer.Option(
        180.0, "--startup-timeout", help="seconds to wait for each service"
    ),
    grace: float = typer.Option(
        15.0, "--grace", help="seconds each service gets to stop before it is killed"
    ),
    threads: int | None = threads_option(),
) -> None:
    """Start the API, a worker and the UI; print their URLs; stop everything cleanly on Ctrl-C."""
    for name, port in (("--api-port", api_port), *((("--ui-port", ui_port),) if not no_ui else ())):
        if not _port_free(host, port):
            raise AICDError(f"{name}: port {port} on {host} is already in use; pick another one")
    if not no_ui and api_port == ui_port:
        raise AICDError("--ui-port must differ from --api-port")

    api_url = f"http://{host}:{api_port}"
    stack = resolve_stack(api_url, home)
    env, broker = stack.env, stack.broker
    py = sys.executable

    api = Child("api", [py, "-m", "uvicorn", "backend.main:app", "--host", host, "--port", str(api_port)])
    workers = (
        [
            Child(
                f"worker-{queue}",
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "worker.celery_app:app",
                    "worker",
                    "-Q",
                    queue,
                    "--pool=solo",
                    "--concurrency=1",
                    "-n",
                    f"{queue}@%h",
                    "--loglevel=INFO",
                ],
            )
            for queue in ("gpu", "cpu")
        ]
        if broker
        else []
    )
    ui = Child(
        "ui",
        [
            py,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "ui" / "app.py"),
            "--server.port",
            str(ui_port),
            "--server.address",
            host,
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
    )

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    code = 0
    try:
        children.append(api)
        _spawn(api, env)
        if not _wait_http(f"{api_url}/health", api, startup_timeout, stop):
            if not stop.is_set():
                raise AICDError(
                    f"the API did not become healthy at {api_url}/health "
                    f"({'it exited' if not api.alive() else 'timed out'}); see its log above"
                )
            return
        for worker in workers:
            children.append(worker)
            _spawn(worker, env)
        if not no_ui:
            children.append(ui)
            _spawn(ui, stack.ui_env)
            if not _wait_http(f"http://{host}:{ui_port}/_stcore/health", ui, startup_timeout, stop):
                if not stop.is_set():
                    raise AICDError(f"the UI did not start on port {ui_port}; see its log above")
                return
        db = stack.database
        lines = ["", "AICD Workbench is up:"]
        if not no_ui:
            lines.append(f"  UI      http://{host}:{ui_port}")
        lines += [
            f"  API     {api_url}  (docs {api_url}/docs)",
            f"  worker  {'Celery on ' + _redact(broker) if broker else 'embedded in the API (no Redis)'}",
            f"  data    {_redact(db)}",
            *(["  auth    API token required (the UI has it)"] if stack.token else []),
            "  pids    " + ", ".join(f"{c.name}={c.proc.pid}" for c in children if c.proc),
            "Press Ctrl-C to stop.",
            "",
        ]
        typer.echo("\n".join(lines))
        while not stop.wait(0.5):
            dead = [c for c in children if not c.alive()]
            if dead:
                typer.secho(
                    f"{dead[0].name} exited with code {dead[0].proc.returncode}; stopping everything",
                    fg=typer.colors.RED,
                    err=True,
                )
                code = 1
                break
    finally:
        typer.echo("stopping ...", err=True)
        _stop_all(children, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        typer.echo("stopped.", err=True)
    if code:
        raise SystemExit(code)  # (typer.Exit is swallowed by the non-standalone CLI runner)


def _redact(url: str) -> str:
    """Hide a password in a URL (redis://:secret@host -> redis://:***@host)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def register(app: typer.Typer) -> None:
    """Add `aicd up`."""
    app.command("up")(up_command)
