"""CLI commands (see disent_bench.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
