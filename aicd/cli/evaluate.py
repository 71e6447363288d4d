"""`aicd eval`: k-shot accuracy of a student over seeds, printed as a table and saved with every generation."""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from aicd.cli.options import threads_option
from aicd.errors import ConfigError
from aicd.evaluate import EvalCallback
from aicd.objective_registry import demonstrations_for


def parse_int_list(value: str | None, option: str) -> list[int] | None:
    """`"0,1,2"` -> [0, 1, 2]; a bad list raises ConfigError naming the option."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ConfigError(
            f"{option}: expected comma-separated non-negative integers like 0,1,2; got '{value}'"
        )
    return [int(p) for p in parts]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip("/")).strip("-") or "model"


def default_output_dir(model: str, dataset: str) -> Path:
    """runs/eval/<model>__<dataset>; a checkpoint's `final` folder is named after its run."""
    path = Path(model)
    name = (
        path.parent.name if path.name in ("final", "") or path.name.startswith("checkpoint-") else path.name
    )
    if path.name.startswith("checkpoint-"):
        name = f"{name}-{path.name}"
    return (
        Path("runs")
        / "eval"
        / f"{_slug(name)}__{_slug(Path(dataset).stem if dataset.endswith('.jsonl') else dataset)}"
    )


def print_summary(result: Any, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from aicd.evaluate import format_mean_std

    table = Table(title=title)
    for col in ("shots", "accuracy % (mean ± std)", "seeds", "per seed %", "no answer"):
        table.add_column(col, justify="right")
    for s in result.summary:
        rows = [r for r in result.rows if r["shots"] == s["shots"]]
        per_seed = ", ".join(f"{r['seed']}: {100 * r['accuracy']:.1f}" for r in rows)
        invalid = sum(r["n_invalid"] for r in rows)
        table.add_row(
            str(s["shots"]),
            format_mean_std(s["mean"], s["std"]),
            str(s["n_seeds"]),
            per_seed,
            f"{invalid}/{sum(r['n'] for r in rows)}",
        )
    Console().print(table)


def eval_command(
    model: str | None = typer.Option(
        None, "--model", "-m", help="checkpoint dir (runs/X/final), hub id or tiny:gpt2"
    ),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="built-in name or path to a JSONL"),
    split: str | None = typer.Option(None, "--split", help="split to evaluate (default: test)"),
    shots: str | None = typer.Option(None, "--shots", help="shot counts, e.g. 0,1,2,3"),
    seeds: str | None = typer.Option(None, "--seeds", help="seeds for drawing demonstrations, e.g. 0,1,2"),
    shots_dataset: str | None = typer.Option(None, "--shots-dataset", help="where demonstrations come from"),
    shots_split: str | None = typer.Option(None, "--shots-split", help="split of the demonstrations (train)"),
    demonstrations: str | None = typer.Option(
        None,
        "--demonstrations",
        help="rationale | answer: what a demonstration shows after `Answer:` (default: answer for a "
        "checkpoint trained with objective nocot, else rationale)",
    ),
    limit: int | None = typer.Option(None, "--limit", help="evaluate only the first N items"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="prompts per generate call"),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens"),
    max_length: int | None = typer.Option(None, "--max-length", help="prompt + generation budget in tokens"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for results.json and generations.jsonl"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="EvalConfig YAML (options override it)"),
    overrides: list[str] | None = typer.Option(None, "--set", help="override a config field: key=value"),
    device: str | None = typer.Option(
        None, "--device", help="cuda | cpu | cuda:1 (default: cuda if available)"
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="hf (default) | vllm (pip install 'aicd-workbench[vllm]') | openai (--base-url)",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="openai backend: server API root, e.g. http://localhost:8000/v1"
    ),
    served_model: str | None = typer.Option(
        None, "--served-model", help="openai backend: the model's name on the server (default: --model)"
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", help="openai backend: requests in flight"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="reuse the chains already saved in --out (e.g. by an interrupted run) and generate only the rest",
    ),
    threads: int | None = threads_option(),
) -> None:
    """Accuracy at each shot count over seeds; writes results.json + generations.jsonl."""
    from aicd.config import EvalConfig, build_config, read_yaml

    data: dict[str, Any] = read_yaml(config) if config else {}
    options = {
        "model": model,
        "dataset": dataset,
        "split": split,
        "shots": parse_int_list(shots, "--shots"),
        "seeds": parse_int_list(seeds, "--seeds"),
        "shots_dataset": shots_dataset,
        "shots_split": shots_split,
        "demonstrations": demonstrations,
        "limit": limit,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "output_dir": str(out) if out is not None else None,
        "backend": backend,
        "base_url": base_url,
        "served_model": served_model,
        "concurrency": concurrency,
    }
    data.update({k: v for k, v in options.items() if v is not None})
    if "model" not in data and not any(o.startswith("model=") for o in overrides or []):
        raise ConfigError("--model: required (a checkpoint dir, hub id or tiny:gpt2)")
    if "demonstrations" not in data and not any(o.startswith("demonstrations=") for o in overrides or []):
        trained = trained_objective(data.get("model"))
        if demonstrations_for(trained) == "answer":
            data["demonstrations"] = "answer"
            typer.echo(f"demonstrations: answer only (the checkpoint was trained with objective {trained})")
    cfg = build_config(EvalConfig, data, overrides, source=str(config) if config else "eval")
    if cfg.output_dir is None:
        cfg = cfg.model_copy(update={"output_dir": str(default_output_dir(cfg.model, cfg.dataset))})

    from aicd.evaluate import evaluate

    reuse = saved_chains(cfg) if resume else None
    if reuse:
        typer.echo(f"resuming: {len(reuse)} saved generations are scored, not generated again")
    stop = _StopOnInterrupt()
    with stop.installed():
        result = evaluate(cfg, progress=progress, device=device, callback=stop, reuse=reuse)
    print_summary(result, title=f"{cfg.model} on {cfg.dataset}/{cfg.split} ({result.meta['answer_kind']})")
    typer.echo(f"saved {cfg.output_dir}/results.json and generations.jsonl ({len(result.items)} generations)")
    if result.stopped:
        typer.secho("interrupted: the table holds only the finished (shots, seed) pairs", err=True)
        raise SystemExit(130)  # typer.Exit codes are lost in the non-standalone runner


def trained_objective(model: Any) -> str | None:
    """The objective a checkpoint folder was trained with (from its run config.yaml), or None."""
    if not isinstance(model, str) or model.startswith("tiny:"):
        return None
    path = Path(model) / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("objective") if isinstance(data, dict) else None


# fields that only choose which (item, shots, seed) are evaluated, or how fast: a saved chain stays valid
SELECTION_FIELDS = {"shots", "seeds", "limit", "batch_size", "output_dir"} | {
    "backend",
    "base_url",
    "concurrency",
    "max_retries",
    "request_timeout",  # how chains are produced, not which
}


def saved_chains(cfg: Any) -> dict[tuple[str, int, int], str]:
    """The chains an earlier run of the same evaluation saved in cfg.output_dir, by (example id, shots, seed)."""
    from aicd.evaluate import EvalResult

    out = Path(cfg.output_dir)
    if not (out / "results.json").is_file():
        raise ConfigError(f"--resume: nothing to resume in {out} (no results.json)")
    previous = EvalResult.load(out)
    before, now = previous.meta.get("config", {}), cfg.model_dump(mode="json")
    for name, value in type(cfg)(model=cfg.model).model_dump(mode="json").items():
        before.setdefault(name, value)  # a field added since that run: it ran with the default
    for field in sorted(set(before) | set(now) - SELECTION_FIELDS):
        if field not in SELECTION_FIELDS and before.get(field) != now.get(field):
            raise ConfigError(
                f"--resume: {out} was produced with a different {field} ({before.get(field)!r}, now "
                f"{now.get(field)!r}); drop --resume or choose another --out"
            )
    return {(r.example_id, r.shots, r.seed): r.generation for r in previous.items}


class _StopOnInterrupt(EvalCallback):
    """First Ctrl-C: finish the current batch, then save what is done. Second Ctrl-C: stop at once."""

    def __init__(self) -> None:
        self.requested = False

    def should_stop(self) -> bool:
        return self.requested

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            typer.secho("\nstopping after the current batch (Ctrl-C again to abort)", err=True)

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def register(app: typer.Typer) -> None:
    """Add `aicd eval` to the CLI."""
    app.command("eval")(eval_command)
