"""The ``disent-bench`` command: a thin layer that parses arguments and prints; the library does the work.

Every command module registers its commands on :data:`app`. Bad input raises
:class:`disent_bench.errors.UserError`, which :func:`main` prints on one line with exit code 2.

The command modules import the library inside each command, the one place in the package that does
so, for a measured reason: ``import torch`` takes 2.5 s on a 2-core machine, ``import disent_bench.cli``
0.09 s, and ``--help``, a typo's error message or ``data list`` should not wait for torch.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from disent_bench import __version__
from disent_bench.errors import StorageError, UserError, storage_error

app = typer.Typer(
    name="disent-bench",
    help="Benchmark disentangled representation learning: datasets, models, training, metrics, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"disent-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", envvar="DISENT_BENCH_DATA",
        help="Data home for official and synthetic datasets [default: ./datasets].")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    if data_dir is not None:
        # The environment carries the data home to library code and to worker processes alike.
        os.environ["DISENT_BENCH_DATA"] = str(data_dir)


def _register_commands() -> None:
    from disent_bench.cli import data, evaluate, report, run, speed

    for module in (data, speed, evaluate, run, report):
        module.register(app)


_register_commands()


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def main() -> None:
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StorageError as exc:  # disk full, read-only, permission denied: the place, not the input
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # the same raised by a write outside disent_bench._io (a lock file, a library)
        converted = storage_error(exc, exc.filename or "a file")
        if converted is None:
            raise
        typer.echo(f"error: {converted}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
