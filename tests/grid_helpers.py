"""Helpers of the grid tests: the tiny grid file they run, a small TOML writer, what a finished run leaves.

``tiny_grid`` builds every test's grid from Python values in one place: one dataset (``dsprites_tiny``),
a few steps, small metric samples; a test names only what its grid does differently.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pytest

#: Small samples for each metric a tiny grid scores (only the listed metrics get their table).
SMALL_METRIC_SETTINGS: dict[str, dict[str, int]] = {
    "mig": {"num_train": 100},
    "sap": {"num_train": 200, "num_test": 100},
    "modularity": {"num_train": 200, "num_test": 100},
    "beta_vae": {"batch_size": 8, "num_train": 20, "num_eval": 10},
    "reconstruction": {"num_batches": 2, "batch_size": 16},
}

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def tiny_grid(where: Path, *, name: str = "tiny", seeds: int | Sequence[int] = (0,), device: str = "cpu",
              steps: int = 6, datasets: Sequence[str | Mapping[str, Any]] = ("dsprites_tiny",),
              models: Sequence[str | Mapping[str, Any]] = ("ae", "vae"),
              metrics: Sequence[str] = ("mig", "reconstruction"), benchmark: Mapping[str, Any] | None = None,
              train: Mapping[str, Any] | None = None, eval: Mapping[str, Any] | None = None,
              **tables: Mapping[str, Any]) -> Path:
    """Write a tiny grid file and return its path.

    ``where``: the file (a ``.toml`` path) or a folder to write ``grid.toml`` in.
    ``datasets`` and ``models``: entries, a bare name standing for ``{"name": name}`` (datasets: from the
    synthetic source). ``benchmark``, ``train`` and ``eval``: keys added to or replacing the defaults (a
    metric's settings table is merged key by key; ``None`` leaves a key out). ``tables``: further
    top-level tables, e.g. ``slurm={...}``.
    Defaults: ``[train]`` steps, batch_size 8, latent_dim 4, checkpoint_every 2, log_every 2; ``[eval]``
    the metrics, preset "quick" and ``SMALL_METRIC_SETTINGS`` of each listed metric.
    """
    where = Path(where)
    path = where if where.suffix == ".toml" else where / "grid.toml"
    grid = {
        "benchmark": _merged({"name": name, "seeds": seeds, "device": device}, benchmark),
        "train": _merged({"steps": steps, "batch_size": 8, "latent_dim": 4, "checkpoint_every": 2,
                          "log_every": 2}, train),
        "datasets": [{"name": d, "source": "synthetic"} if isinstance(d, str) else dict(d) for d in datasets],
        "models": [{"name": m} if isinstance(m, str) else dict(m) for m in models],
        "eval": _merged({"metrics": list(metrics), "preset": "quick",
                         **{m: SMALL_METRIC_SETTINGS[m] for m in metrics if m in SMALL_METRIC_SETTINGS}}, eval),
        **tables,
    }
    path.write_text(toml_text(grid))
    return path


def _merged(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated by ``overrides``: tables merged one level down, a ``None`` value removes the key."""
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def toml_text(document: Mapping[str, Any]) -> str:
    """A TOML document from nested dicts: tables, arrays of tables (lists of dicts) and plain values."""
    lines: list[str] = []
    _write_table(lines, (), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write_table(lines: list[str], prefix: tuple[str, ...], table: Mapping[str, Any]) -> None:
    tables, arrays = [], []
    for key, value in table.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        lines += ["", f"[{'.'.join(_key(k) for k in (*prefix, key))}]"]
        _write_table(lines, (*prefix, key), value)
    for key, entries in arrays:
        for entry in entries:
            lines += ["", f"[[{'.'.join(_key(k) for k in (*prefix, key))}]]"]
            _write_table(lines, (*prefix, key), entry)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML value for {value!r} ({type(value).__name__})")


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set environment variables (``None``: unset) for a module-scoped fixture; restored on exit."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            if value is None:
                patch.delenv(key, raising=False)
            else:
                patch.setenv(key, value)
        yield


def scores(metrics_path: Path) -> dict[str, dict[str, float]]:
    """A ``metrics.json``'s results without the wall times (those differ between any two runs)."""
    record = json.loads(Path(metrics_path).read_text())
    return {rep: {k: v for k, v in values.items() if not k.endswith("seconds")}
            for rep, values in record["results"].items()}


def run_scores(out_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``scores`` of every run in a results directory, by run id."""
    return {path.parent.name: scores(path) for path in sorted((Path(out_dir) / "runs").glob("*/metrics.json"))}


def run_locally(grid: Path, out: Path) -> dict[str, Any]:
    """``grid`` run by the local executor in this process, every run done: the grid, its runs and their scores
    (what the other executors' tests compare with)."""
    from disent_bench.executors import get_executor
    from disent_bench.grid import expand, load_grid

    runs = expand(load_grid(grid))
    outcomes = get_executor("local").run(runs, out, progress=False)
    assert [o.status for o in outcomes] == ["done"] * len(runs), outcomes
    return {"grid": grid, "runs": runs, "scores": run_scores(out)}
