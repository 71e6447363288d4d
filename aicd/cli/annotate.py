"""`aicd annotate`: rationales from a teacher LLM, the dataset's gold solutions, or a local model (STaR).

Files: every raw sample is appended to `<out stem>.raw.jsonl` (or `--raw`) the moment it arrives; `--resume`
reads it and asks only for what is missing. When the run ends (or is stopped), the filtered, normalised examples
are written atomically to `--out`, and the run's counts/cost to `<out stem>.report.json`.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from aicd.cli.options import threads_option


def raw_path_for(out: Path) -> Path:
    """`data/gsm8k-cot.jsonl` -> `data/gsm8k-cot.raw.jsonl`."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".raw.jsonl")


def report_path_for(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".report.json")


def _prompt_template(value: str | None) -> str | None:
    """`--prompt` is a template string, or a path to a file holding one."""
    if value is None:
        return None
    path = Path(value)
    if "{question}" not in value and path.is_file():
        return path.read_text(encoding="utf-8").strip("\n")
    return value


class _StopOnSigint:
    """First Ctrl-C: stop starting requests, store those in flight, write the output. Second: abort at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopOnSigint:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        typer.secho(
            "\nstopping: finishing requests in flight (Ctrl-C again to abort; --resume continues)", err=True
        )

    def __call__(self) -> bool:
        return self.requested

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def annotate_command(
    dataset: str = typer.Option(..., "--dataset", "-d", help="built-in dataset name or path to a JSONL/CSV"),
    out: Path = typer.Option(..., "--out", "-o", help="output JSONL of Example records with kept rationales"),
    split: str = typer.Option("train", "--split"),
    limit: int | None = typer.Option(None, "--limit", help="only the first N questions"),
    source: str = typer.Option("teacher", "--source", help="teacher | gold | self"),
    teacher: str | None = typer.Option(None, "--teacher", help="teacher model name (default gpt-3.5-turbo)"),
    model: str | None = typer.Option(None, "--model", help="local HF model for --source self"),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        envvar="OPENAI_BASE_URL",
        help="OpenAI-compatible URL, e.g. http://localhost:8000/v1",
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help="API key (default: $OPENAI_API_KEY); prefer the variable: a key on the command line is visible "
        "to other users in ps and lands in shell history",
        show_default=False,
    ),
    k: int | None = typer.Option(None, "--k", help="rationales per question (default 3)"),
    temperature: float | None = typer.Option(
        None, "--temperature", help="sampling temperature (default 1.0)"
    ),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    stop: list[str] | None = typer.Option(None, "--stop", help="stop sequence (repeatable)"),
    prompt: str | None = typer.Option(
        None, "--prompt", help="prompt template with {question} and {answer}, or a file holding one"
    ),
    n_mode: str | None = typer.Option(None, "--n-mode", help="auto | batch (n=k) | single (k requests)"),
    concurrency: int | None = typer.Option(None, "--concurrency", help="requests in flight (default 16)"),
    rpm: float | None = typer.Option(None, "--rpm", help="requests per minute"),
    tpm: float | None = typer.Option(None, "--tpm", help="tokens per minute"),
    max_retries: int | None = typer.Option(None, "--max-retries"),
    timeout: float | None = typer.Option(None, "--timeout", help="seconds per request"),
    answer_kind: str | None = typer.Option(None, "--answer-kind", help="number | yesno | auto"),
    filter_correct: bool | None = typer.Option(
        None, "--filter-correct/--no-filter-correct", help="keep only rationales reaching the gold answer"
    ),
    drop_hint: bool | None = typer.Option(
        None, "--drop-hint-mentions/--keep-hint-mentions", help="drop rationales that mention the hint"
    ),
    normalize: bool | None = typer.Option(
        None, "--normalize-ending/--no-normalize-ending", help="end rationales with 'So, the answer is X.'"
    ),
    prices: Path | None = typer.Option(
        None, "--prices", help="YAML/JSON {model: {input: $/1M, output: $/1M}}"
    ),
    config_file: Path | None = typer.Option(None, "--config", help="YAML AnnotateConfig; flags override it"),
    overrides: list[str] | None = typer.Option(None, "--set", help="config override key=value (repeatable)"),
    raw: Path | None = typer.Option(None, "--raw", help="raw store (default: <out stem>.raw.jsonl)"),
    resume: bool = typer.Option(False, "--resume", help="continue: ask only for samples not yet stored"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard an existing raw store and start over"),
    seed: int = typer.Option(0, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    threads: int | None = threads_option(),
) -> None:
    """Annotate a dataset with k rationales per question (paper: 3 at temperature 1.0 from the teacher).

    Every sample is appended to <out stem>.raw.jsonl as it arrives; --resume asks only for what is missing there
    (failed samples included). At the end the kept rationales go to --out and the counts/cost to
    <out stem>.report.json. Ctrl-C stops after the requests in flight; a second Ctrl-C aborts.
    """
    from aicd.annotate import AnnotateConfig, JsonlSink, annotate, redact
    from aicd.annotate.prices import load_prices
    from aicd.config import build_config, read_yaml
    from aicd.data import write_examples
    from aicd.data.loaders import answer_kind_of, load_examples
    from aicd.errors import AICDError, ConfigError

    data: dict[str, Any] = read_yaml(config_file) if config_file else {}
    flags = {
        "source": source, "teacher": teacher, "model": model, "base_url": base_url, "api_key": api_key,
        "k": k, "temperature": temperature, "max_tokens": max_tokens, "stop": stop or None,
        "prompt_template": _prompt_template(prompt), "n_mode": n_mode, "concurrency": concurrency, "rpm": rpm,
        "tpm": tpm, "max_retries": max_retries, "timeout": timeout, "answer_kind": answer_kind,
        "filter_correct": filter_correct, "drop_hint_mentions": drop_hint, "normalize_ending": normalize,
        "seed": seed if seed else None,
    }  # fmt: skip
    data.update({key: value for key, value in flags.items() if value is not None})
    if prices is not None:
        data["prices"] = {
            **data.get("prices", {}),
            **{m: p.model_dump() for m, p in load_prices(prices).items()},
        }
    config = build_config(AnnotateConfig, data, overrides, source="annotate")
    secret = config.resolved_api_key()

    raw_path = raw or raw_path_for(out)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if raw_path.exists() and raw_path.stat().st_size > 0 and not resume and not overwrite:
        raise ConfigError(
            f"{raw_path} already holds annotations: pass --resume to continue it or --overwrite to start over"
        )

    examples = load_examples(dataset, split, limit=limit, seed=seed)
    if not examples:
        raise ConfigError(f"dataset '{dataset}' split '{split}' has no examples")
    if config.answer_kind == "auto":
        config.answer_kind = answer_kind_of(dataset, examples)

    sink = JsonlSink(
        raw_path, fsync=config.fsync, overwrite=overwrite
    )  # the old store goes at the first record
    try:
        with _StopOnSigint() as stopper:
            report = annotate(config, examples, sink, should_stop=stopper, progress=progress)
    except AICDError:
        raise
    except Exception as exc:  # an SDK or network error we did not map: one line, key removed
        import openai

        if isinstance(exc, openai.OpenAIError | OSError):
            raise AICDError(redact(f"annotate failed: {exc}", secret)) from None
        raise
    finally:
        sink.close()

    if report.ok or report.already_stored:
        write_examples(out, report.examples)
        report_file = report_path_for(out)
        payload = {**report.model_dump(mode="json"), "config": config.public_dict(), "raw": str(raw_path)}
        report_file.write_text(redact(json.dumps(payload, indent=2), secret) + "\n", encoding="utf-8")
    typer.echo(report.summary(), err=True)
    if report.ok or report.already_stored:
        typer.echo(f"wrote {len(report.examples)} examples to {out} (raw samples: {raw_path})", err=True)
    if report.stopped:
        typer.secho(
            "stopped before the end: rerun with --resume to continue", fg=typer.colors.YELLOW, err=True
        )
        sys.exit(130)
    if report.failed:
        first = report.failures[0] if report.failures else {}
        typer.secho(
            f"{report.failed} samples failed after retries (first: {first.get('error')}); "
            "rerun with --resume to retry them",
            fg=typer.colors.YELLOW,
            err=True,
        )
        sys.exit(1)


def register(app: typer.Typer) -> None:
    """Add `aicd annotate`."""
    app.command("annotate")(annotate_command)
