"""`aicd` command line. Each sub-module registers its commands; heavy imports happen inside commands."""

from __future__ import annotations

import os
import sys

import typer

from aicd.errors import AICDError
from aicd.progress import Cancelled

app = typer.Typer(
    name="aicd",
    help="Autoregressive In-Context Distillation workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


PLUGIN_GROUP = "aicd.cli"
"""Entry-point group of commands other installed packages add (the workbench's `aicd up`, backend.up): the
core imports nothing of the web service, so `aicd` works without it."""


def _register() -> None:
    from importlib.metadata import entry_points

    from aicd.cli import annotate, data, evaluate, sweep, train

    for module in (data, annotate, train, evaluate, sweep):
        module.register(app)
    for plugin in entry_points(group=PLUGIN_GROUP):
        try:
            register = plugin.load()
        except ImportError:  # its package is not importable here: the command is simply absent
            continue
        register(app)


_register()


def main() -> None:
    """Entry point: user errors print one line and exit 2; Ctrl-C exits 130 without a traceback."""
    if "--no-progress" in sys.argv:  # also silence the hub's and transformers' own bars (saving, loading)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        code = app(standalone_mode=False)  # click returns (not raises) typer.Exit codes in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except AICDError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except (KeyboardInterrupt, Cancelled):  # Cancelled: a Ctrl-C seen while a model was loading
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            sys.exit(1)
        # typer >= 0.2x raises its own copy of click's exceptions (typer.TyperException), with the same show()
        if isinstance(exc, click.exceptions.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
