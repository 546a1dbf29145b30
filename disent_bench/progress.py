"""What the user sees while work runs: a rich progress bar on a terminal (plain periodic lines otherwise)
and one-line status messages (:func:`say`) that do not break the bars."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def is_terminal() -> bool:
    return console.is_terminal


def say(message: str) -> None:
    """One status line on stderr (through rich on a terminal, so it does not break progress bars)."""
    if is_terminal():
        console.print(message, highlight=False, markup=False)
    else:
        print(message, file=sys.stderr, flush=True)


class ProgressReporter:
    """A progress bar (terminal) or plain lines at most every ``line_every_s`` seconds (logs, CI).

    ``update(advance, **fields)`` moves the bar and shows ``fields`` (e.g. loss=...) after it.
    """

    def __init__(self, description: str, total: int | None, *, enabled: bool = True,
                 line_every_s: float = 10.0, completed: int = 0) -> None:
        self.description = description
        self.total = total
        self.enabled = enabled
        self.completed = completed
        self.line_every_s = line_every_s
        self._fields = ""
        self._progress: Progress | None = None
        self._task = None
        self._start = time.perf_counter()
        self._start_completed = completed
        self._last_line = self._start

    def __enter__(self) -> "ProgressReporter":
        if self.enabled and is_terminal():
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"), console=console, transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total,
                                                 completed=self.completed, info="")
        return self

    def update(self, advance: int = 1, **fields: object) -> None:
        self.completed += advance
        if fields:
            self._fields = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, info=self._fields)
        elif self.enabled:
            now = time.perf_counter()
            done = self.total is not None and self.completed >= self.total
            if now - self._last_line >= self.line_every_s or done:
                self._last_line = now
                self._print_line(now)

    def _print_line(self, now: float) -> None:
        elapsed = now - self._start
        rate = (self.completed - self._start_completed) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.description}: {self.completed}" + (f"/{self.total}" if self.total else "")]
        if self.total and rate > 0:
            parts.append(f"eta {max(self.total - self.completed, 0) / rate:.0f}s")
        if self._fields:
            parts.append(self._fields)
        print("  ".join(parts), file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def track(items: Iterable[T], description: str, total: int | None = None, *, enabled: bool = True) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with ProgressReporter(description, total, enabled=enabled) as reporter:
        for item in items:
            yield item
            reporter.update(1)
