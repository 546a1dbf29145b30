"""Executors: how a list of runs gets executed (here, on other processes, on a cluster).

An executor is an object with ``run(runs, out_dir, *, jobs=None, progress=True) -> list[RunOutcome]``
that executes every :class:`~disent_bench.grid.RunSpec` by calling
:func:`disent_bench.runner.execute_run` (a plain, picklable module-level function) wherever it likes,
and returns one :class:`~disent_bench.runner.RunOutcome` per run. ``execute_run`` does the claiming
(a file lock per run), resuming and recording, so an executor only has to ship it and collect the
outcomes; runs another process holds come back as ``"claimed"`` and should be retried at the end
with ``wait=True`` (see :class:`disent_bench.executors.local.LocalExecutor`).

New executors (Ray, Slurm) register a factory under a name with :func:`register_executor`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from disent_bench.errors import UserError

__all__ = ["Executor", "get_executor", "available", "register_executor"]


class Executor(Protocol):
    """What ``disent-bench run --executor NAME`` drives."""

    name: str

    def run(self, runs: Sequence[Any], out_dir: Path, *, jobs: int | None = None, progress: bool = True) -> list[Any]:
        ...


# name -> "module:factory" (imported lazily so optional dependencies such as ray stay optional)
_EXECUTORS: dict[str, str | Callable[..., Executor]] = {
    "local": "disent_bench.executors.local:LocalExecutor",
    "ray": "disent_bench.executors.ray:RayExecutor",
    "slurm": "disent_bench.executors.slurm:SlurmExecutor",
}


def register_executor(name: str, factory: str | Callable[..., Executor]) -> None:
    """Make ``get_executor(name, **opts)`` call ``factory(**opts)`` ("module:attr" strings load lazily)."""
    _EXECUTORS[name] = factory


def available() -> list[str]:
    return list(_EXECUTORS)


def get_executor(name: str, **opts: Any) -> Executor:
    """The executor registered as ``name``, built with ``opts``; UserError for an unknown name."""
    if name not in _EXECUTORS:
        close = difflib.get_close_matches(name, list(_EXECUTORS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown executor {name!r}{hint} (available: {', '.join(_EXECUTORS)})")
    factory = _EXECUTORS[name]
    if isinstance(factory, str):
        module_name, attr = factory.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise UserError(f"executor {name!r} needs a package that is not installed ({exc.name}); "
                            f"install it, e.g. pip install 'disent-bench[{name}]'") from None
    return factory(**opts)
