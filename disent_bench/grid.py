"""The grid file: what to train and score, parsed and validated before anything runs.

A grid (TOML, read with :mod:`tomllib`) names datasets, models (with hyper-parameter lists that
expand), seeds, training defaults and the metrics to compute. :func:`load_grid` validates all of it
and raises one :class:`~disent_bench.errors.UserError` naming the file, the key and the problem;
:func:`expand` turns a grid into :class:`RunSpec` s, one per dataset x model x hyper-parameter value x
seed, each with a stable id (``dsprites-beta_vae-beta4-s0-1a2b3c4d``): a readable label plus a short
hash of the settings that decide what the run learns (:mod:`disent_bench.identity` holds that rule).
Settings that do not change the result (checkpoint and log intervals, the device, the benchmark's name,
the order of entries) do not change the id, so editing them never orphans finished work.

The evaluation settings are not part of the id either: changing the metrics of a finished run
re-scores its saved model instead of training it again (see :mod:`disent_bench.runner`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disent_bench import data, metrics
from disent_bench.data import correlation, pairs
from disent_bench import models as model_registry
from disent_bench.errors import UserError
from disent_bench.identity import NON_SEMANTIC_TRAIN_KEYS, RunIds, canonical, run_id
from disent_bench.train import TrainConfig

__all__ = ["Grid", "RunSpec", "Setting", "load_grid", "parse_grid", "expand", "iter_runs", "settings", "run_id",
           "TRAIN_KEYS", "NON_SEMANTIC_TRAIN_KEYS", "DEVICES_PATTERN"]

SOURCES = ("auto", "official", "synthetic")
REPRESENTATIONS = ("mean", "sampled")
DEVICES_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

BENCHMARK_KEYS = ("name", "seeds", "device", "gpus_per_run", "cpus_per_run", "pack")
DATASET_KEYS = ("name", "source", "correlations")
EVAL_KEYS = ("metrics", "preset", "representation", "repeats")
SLURM_KEYS = {"partition": str, "time_min": int, "gpus_per_node": int, "array_parallelism": int}
TOP_KEYS = ("benchmark", "train", "datasets", "models", "eval", "slurm")

# Keys of [train] (and of a [[models]] entry) that configure training rather than the model. The
# trainer's own TrainConfig fields are added to these at load time; latent_dim goes to the model.
TRAIN_KEYS = ("steps", "batch_size", "lr", "betas", "eps", "checkpoint_every", "log_every")
MODEL_LEVEL_KEYS = ("latent_dim",)
#: CPU threads of one run when the grid does not say (``[benchmark] cpus_per_run``). The thread count
#: changes the last digits of results (the order of floating-point sums), so it is a setting of the grid,
#: the same for every executor. One thread per run, several runs at once, uses a small machine best:
#: two 1-thread processes trained 474 img/s on 2 cores where one 2-thread process trained 411.
DEFAULT_CPUS_PER_RUN = 1


@dataclass(frozen=True)
class RunSpec:
    """One run: a dataset, a model with its hyper-parameters, training settings, a seed, what to score.

    Plain data (JSON-able, picklable) so executors can ship it to other processes or machines.
    """

    id: str
    benchmark: str
    dataset: dict[str, str]           # {"name", "source"}
    model: dict[str, Any]             # {"name", "latent_dim", "params": {...}} as build() takes it
    train: dict[str, Any]             # TrainConfig keyword arguments (seed included)
    seed: int
    device: str
    eval: dict[str, Any]              # {"metrics", "preset", "representation", "settings"[, "repeats"]}
    resources: dict[str, Any] = field(default_factory=dict)  # gpus_per_run / cpus_per_run

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Grid:
    """A validated grid file."""

    path: Path
    name: str
    seeds: list[int]
    device: str
    train: dict[str, Any]
    datasets: list[dict[str, str]]
    models: list[dict[str, Any]]
    eval: dict[str, Any]
    resources: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] | None = None

    @property
    def default_out(self) -> Path:
        """``results/<name>`` relative to the working directory."""
        return Path("results") / self.name


# -- helpers ----------------------------------------------------------------------------------------
class _Where:
    """Builds error messages that name the file and the key."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)

    def error(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.path}: {key}: {problem}")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:  # "evaluation" for "eval", "lr_rate" for "lr": a shared prefix is a good guess too
        close = [c for c in choices if len(c) >= 2 and (str(word).startswith(c) or c.startswith(str(word)))][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_keys(where: _Where, prefix: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            raise where.error(f"{prefix}{key}", f"unknown key{_did_you_mean(key, allowed)} "
                                                f"(valid keys: {', '.join(allowed)})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _train_fields() -> dict[str, Any]:
    """TrainConfig's fields and defaults (the trainer owns them)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = None
    return out


# What a [train] / per-model training value must be: (check, description).
_TRAIN_TYPES = {
    "steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "eps": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v),
              "a list of two numbers in [0, 1), e.g. [0.9, 0.999]"),
    "checkpoint_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "log_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "latent_dim": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}


def _check_train_value(where: _Where, key: str, name: str, value: Any, default: Any) -> None:
    if name in _TRAIN_TYPES:
        ok, want = _TRAIN_TYPES[name]
        if not ok(value):
            raise where.error(key, f"must be {want}, got {value!r}")
    elif default is not None and not isinstance(value, type(default)) and not (
            isinstance(default, float) and _is_int(value)):
        raise where.error(key, f"must be {_type_name(default)} like the default {default!r}, got {value!r}")


# -- parsing ----------------------------------------------------------------------------------------
def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file (see the module docstring and the README's grid reference)."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise UserError(f"grid file {path} not found{hint}; pass an existing TOML file, e.g. --grid benchmarks.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text (UTF-8) file; a grid is a TOML file") from None
    return parse_grid(raw, path)


def parse_grid(raw: Mapping[str, Any], path: str | Path = "<grid>") -> Grid:
    """Validate an already-parsed grid mapping (``path`` names it in error messages)."""
    where = _Where(path)
    _check_keys(where, "", raw, TOP_KEYS)
    for key in TOP_KEYS:
        if key in raw:
            want = list if key in ("datasets", "models") else dict
            if not isinstance(raw[key], want):
                form = f"[[{key}]] entries" if want is list else f"a [{key}] table"
                raise where.error(key, f"must be {form}, got {_type_name(raw[key])}")

    # [benchmark]
    bench = raw.get("benchmark", {})
    _check_keys(where, "benchmark.", bench, BENCHMARK_KEYS)
    name = bench.get("name", Path(str(path)).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise where.error("benchmark.name", f"must be a name of letters, digits, '.', '_' or '-', got {name!r}")
    seeds_raw = bench.get("seeds", 1)
    if _is_int(seeds_raw):
        if seeds_raw < 1:
            raise where.error("benchmark.seeds", f"an integer n means seeds 0..n-1 and must be >= 1, got {seeds_raw}")
        seeds = list(range(seeds_raw))
    elif isinstance(seeds_raw, list):
        if not seeds_raw:
            raise where.error("benchmark.seeds", "is an empty list; give at least one seed, e.g. [0, 1]")
        if not all(_is_int(s) and s >= 0 for s in seeds_raw):
            raise where.error("benchmark.seeds", f"must be integers >= 0, got {seeds_raw!r}")
        if len(set(seeds_raw)) != len(seeds_raw):
            raise where.error("benchmark.seeds", f"lists a seed twice: {seeds_raw!r}")
        seeds = list(seeds_raw)
    else:
        raise where.error("benchmark.seeds", f"must be a list of integers or an integer n (seeds 0..n-1), "
                                             f"got {seeds_raw!r}")
    device = bench.get("device", "auto")
    if not isinstance(device, str) or not DEVICES_PATTERN.match(device):
        raise where.error("benchmark.device", f"must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    resources: dict[str, Any] = {}
    if "gpus_per_run" in bench:
        if not _is_number(bench["gpus_per_run"]) or bench["gpus_per_run"] < 0:
            raise where.error("benchmark.gpus_per_run", f"must be a number >= 0, got {bench['gpus_per_run']!r}")
        resources["gpus_per_run"] = bench["gpus_per_run"]
    cpus = bench.get("cpus_per_run", DEFAULT_CPUS_PER_RUN)
    if not _is_int(cpus) or cpus < 1:
        raise where.error("benchmark.cpus_per_run", f"must be an integer >= 1 (CPU threads per run), got {cpus!r}")
    resources["cpus_per_run"] = cpus
    pack = bench.get("pack", "auto")
    if pack != "auto" and (not _is_int(pack) or pack < 1):
        raise where.error("benchmark.pack", f"must be an integer >= 1 (runs trained together; 1: each alone) "
                                            f"or \"auto\" (by device), got {pack!r}")
    resources["pack"] = pack

    # [train]
    train_defaults = _train_fields()
    train_keys = list(dict.fromkeys([*TRAIN_KEYS, *train_defaults, *MODEL_LEVEL_KEYS]))
    # correlations: a dataset's ([[datasets]] correlations), passed to the trainer by the runner
    train_keys = [k for k in train_keys if k not in ("seed", "device", "progress", "correlations")]
    train = dict(raw.get("train", {}))
    _check_keys(where, "train.", train, train_keys)
    for key, value in train.items():
        _check_train_value(where, f"train.{key}", key, value, train_defaults.get(key))

    # [[datasets]]
    known_datasets = data.available()
    datasets_raw = raw.get("datasets")
    if not datasets_raw:
        raise where.error("datasets", "no [[datasets]] entries; add e.g. [[datasets]] name = \"dsprites\"")
    datasets = []
    for i, entry in enumerate(datasets_raw):
        key = f"datasets[{i}]"
        if not isinstance(entry, dict):
            raise where.error(key, f"must be a table, got {_type_name(entry)}")
        _check_keys(where, f"{key}.", entry, DATASET_KEYS)
        dname = entry.get("name")
        if not isinstance(dname, str):
            raise where.error(f"{key}.name", f"missing or not a string; valid names: {', '.join(known_datasets)}")
        if dname not in known_datasets:
            raise where.error(f"{key}.name", f"unknown dataset {dname!r}{_did_you_mean(dname, known_datasets)} "
                                             f"(valid names: {', '.join(known_datasets)})")
        source = entry.get("source", "auto")
        if source not in SOURCES:
            raise where.error(f"{key}.source", f"must be one of {', '.join(SOURCES)}, got {source!r}"
                                               f"{_did_you_mean(str(source), SOURCES)}")
        if source == "official" and data.get_spec(dname).official_filename is None:
            raise where.error(f"{key}.source", f"{dname} has no official file; use source = \"synthetic\"")
        if source == "synthetic" and not data.get_spec(dname).has_synthetic:
            raise where.error(f"{key}.source", f"{dname} has no synthetic version; use source = \"official\" "
                                               f"(`disent-bench data fetch {dname}`)")
        item = {"name": dname, "source": source}
        if "correlations" in entry:
            # Correlated training data (Träuble et al. 2021): only how training batches are drawn changes; the
            # entry is part of the run's id (and its report section), stored in canonical order.
            entries = entry["correlations"]
            if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
                raise where.error(f"{key}.correlations", "must be a non-empty list of tables, e.g. "
                                                         "[{ factors = [\"posX\", \"posY\"], sigma = 0.2 }]")
            try:
                spec = data.get_spec(dname)
                parsed = correlation.parse_correlations(entries, list(spec.factor_names), list(spec.factor_sizes))
            except UserError as exc:
                raise where.error(f"{key}.correlations", str(exc)) from None
            item["correlations"] = correlation.canonical(parsed)
        if item in datasets:
            raise where.error(key, f"duplicate dataset entry {item!r}")
        datasets.append(item)

    # [[models]]
    models_raw = raw.get("models")
    if not models_raw:
        raise where.error("models", "no [[models]] entries; add e.g. [[models]] name = \"vae\"")
    models = []
    for i, entry in enumerate(models_raw):
        key = f"models[{i}]"
        if not isinstance(entry, dict):
            raise where.error(key, f"must be a table, got {_type_name(entry)}")
        models.append(_parse_model(where, key, entry, train_keys, train_defaults))

    # [eval]
    eval_cfg = _parse_eval(where, raw.get("eval", {}))

    # [slurm]
    slurm = None
    if "slurm" in raw:
        slurm = dict(raw["slurm"])
        _check_keys(where, "slurm.", slurm, SLURM_KEYS)
        for key, want in SLURM_KEYS.items():
            if key in slurm:
                value = slurm[key]
                ok = isinstance(value, str) if want is str else (_is_int(value) and value >= 0)
                if not ok:
                    desc = "a string" if want is str else "an integer >= 0"
                    raise where.error(f"slurm.{key}", f"must be {desc}, got {value!r}")

    grid = Grid(path=Path(str(path)), name=name, seeds=seeds, device=device, train=train, datasets=datasets,
                models=models, eval=eval_cfg, resources=resources, slurm=slurm)
    _check_models_build(where, grid)
    # Checked per setting, not per run: a setting's runs differ only by their seed (validated above), so a grid
    # of millions of seeds validates in the time of its few settings.
    images = {d["name"]: math.prod(data.get_spec(d["name"]).factor_sizes) for d in grid.datasets}
    prefixes: dict[str, list[Setting]] = {}
    prefix_ids: dict[str, set[str]] = {}
    for setting in settings(grid):
        try:
            TrainConfig(**{**setting.train, "seed": grid.seeds[0], "device": grid.device})
        except UserError as exc:
            raise where.error("train", f"run {setting.ids(grid.seeds[0])}: {exc}") from None
        if setting.train["batch_size"] > images[setting.dataset["name"]]:
            # Drawn with replacement this would still run, but a batch larger than the dataset is a typo
            # (batch_size = 1000000000 would fail inside the run, allocating it).
            raise where.error("train.batch_size", f"batch_size = {setting.train['batch_size']} is larger than "
                                                  f"{setting.dataset['name']} ({images[setting.dataset['name']]:,} "
                                                  f"images); use 1..{images[setting.dataset['name']]:,} (the "
                                                  f"reference uses 64)")
        # Two settings can give one run id only when their readable parts are equal (the seed and the hash
        # follow it): only such settings' ids are compared, run by run, in the order the runs come.
        earlier = prefixes.setdefault(setting.ids.prefix, [])
        if earlier:
            if prefix_ids.get(setting.ids.prefix) is None:
                prefix_ids[setting.ids.prefix] = {other.ids(seed) for other in earlier for seed in grid.seeds}
            seen = prefix_ids[setting.ids.prefix]
            for seed in grid.seeds:
                rid = setting.ids(seed)
                if rid in seen:
                    raise where.error("models", f"two entries give the same run {rid} (same dataset, model, "
                                                "hyper-parameters and seed); remove the duplicate")
                seen.add(rid)
        earlier.append(setting)
    return grid


def _parse_model(where: _Where, key: str, entry: Mapping[str, Any], train_keys: list[str],
                 train_defaults: Mapping[str, Any]) -> dict[str, Any]:
    mname = entry.get("name")
    known = model_registry.available()
    if not isinstance(mname, str) or not mname:
        raise where.error(f"{key}.name", f"missing or not a string; valid names: {', '.join(known)} "
                                         "or a user model \"package.module:ClassName\"")
    if ":" not in mname and mname not in known:
        raise where.error(f"{key}.name", f"unknown model {mname!r}{_did_you_mean(mname, known)} (valid names: "
                                         f"{', '.join(known)}, or a user model \"package.module:ClassName\")")
    if ":" in mname and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", mname):
        raise where.error(f"{key}.name", f"a user model is named \"package.module:ClassName\", got {mname!r}")
    overrides: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for k, value in entry.items():
        if k == "name":
            continue
        target = overrides if k in train_keys else params
        if isinstance(value, list) and not (k == "betas" and value and not isinstance(value[0], list)):
            if not value:
                raise where.error(f"{key}.{k}", "is an empty list; give at least one value")
            values = value
        else:
            values = [value]
        for v in values:
            if k in train_keys:
                _check_train_value(where, f"{key}.{k}", k, v, train_defaults.get(k))
            elif k == "beta":
                if not _is_number(v) or v <= 0:
                    raise where.error(f"{key}.beta", f"must be a number > 0, got {v!r}")
            elif isinstance(v, (dict, list)):
                raise where.error(f"{key}.{k}", f"must be a number, string or boolean, got {_type_name(v)}")
        if len({json.dumps(canonical(v)) for v in values}) != len(values):
            raise where.error(f"{key}.{k}", f"lists a value twice: {value!r}")
        target[k] = value
    return {"name": mname, "params": params, "train": overrides}


def _parse_eval(where: _Where, raw: Mapping[str, Any]) -> dict[str, Any]:
    known_metrics = list(metrics.available())
    presets = metrics.PRESETS
    metric_names = raw.get("metrics", known_metrics)
    allowed = [*EVAL_KEYS, *known_metrics]
    _check_keys(where, "eval.", raw, allowed)
    if isinstance(metric_names, str):
        metric_names = [metric_names]
    if not isinstance(metric_names, list) or not all(isinstance(m, str) for m in metric_names):
        raise where.error("eval.metrics", f"must be a list of metric names, got {metric_names!r}")
    if not metric_names:
        raise where.error("eval.metrics", f"is an empty list; valid metrics: {', '.join(known_metrics)}")
    for m in metric_names:
        if m not in known_metrics:
            raise where.error("eval.metrics", f"unknown metric {m!r}{_did_you_mean(m, known_metrics)} "
                                              f"(valid metrics: {', '.join(known_metrics)})")
    if len(set(metric_names)) != len(metric_names):
        raise where.error("eval.metrics", f"lists a metric twice: {metric_names!r}")
    preset = raw.get("preset", "paper")
    if not isinstance(preset, str) or preset not in presets:
        raise where.error("eval.preset", f"must be one of {', '.join(presets)}, got {preset!r}"
                                         f"{_did_you_mean(str(preset), presets)}")
    reps = raw.get("representation", ["mean"])
    if isinstance(reps, str):
        reps = [reps]
    if not isinstance(reps, list) or not reps:
        raise where.error("eval.representation", f"must be a non-empty list of {', '.join(REPRESENTATIONS)}, "
                                                 f"got {raw.get('representation')!r}")
    for r in reps:
        if r not in REPRESENTATIONS:
            raise where.error("eval.representation", f"must be {' or '.join(REPRESENTATIONS)}, got {r!r}"
                                                     f"{_did_you_mean(str(r), REPRESENTATIONS)}")
    if len(set(reps)) != len(reps):
        raise where.error("eval.representation", f"lists a representation twice: {reps!r}")
    settings: dict[str, dict[str, Any]] = {}
    for m in known_metrics:
        if m not in raw:
            continue
        table = raw[m]
        if not isinstance(table, dict):
            raise where.error(f"eval.{m}", f"must be a table of settings ([eval.{m}]), got {_type_name(table)}")
        if m not in metric_names:
            raise where.error(f"eval.{m}", f"sets {m} but eval.metrics does not include it")
        defaults = presets[preset].get(m, {}) if isinstance(presets[preset], Mapping) else {}
        if isinstance(defaults, Mapping) and defaults:
            _check_keys(where, f"eval.{m}.", table, defaults)
            for k, v in table.items():
                d = defaults[k]
                if isinstance(d, bool) or d is None:
                    continue
                if isinstance(d, tuple) and not (isinstance(v, list) and v and all(_is_int(x) and x >= 1 for x in v)
                                                 and len(set(v)) == len(v)):
                    raise where.error(f"eval.{m}.{k}", f"must be a list of distinct integers >= 1 like the "
                                                       f"preset's {list(d)!r}, got {v!r}")
                if isinstance(d, int) and not (_is_int(v) and v >= 1):
                    raise where.error(f"eval.{m}.{k}", f"must be an integer >= 1 like the preset's {d!r}, got {v!r}")
                if isinstance(d, float) and not (_is_number(v) and v >= 0):
                    raise where.error(f"eval.{m}.{k}", f"must be a number >= 0 like the preset's {d!r}, got {v!r}")
        settings[m] = dict(table)
    try:  # the metrics' own checks (each setting's minimum), before any run starts rather than at its evaluation
        metrics.presets.resolve_settings(list(metric_names), preset, settings)
    except UserError as exc:
        raise where.error("eval", str(exc)) from None
    out = {"metrics": list(metric_names), "preset": preset, "representation": list(reps), "settings": settings}
    repeats = raw.get("repeats", 1)
    if not _is_int(repeats) or repeats < 1:
        raise where.error("eval.repeats", f"must be an integer >= 1 (evaluation seeds per trained model), "
                                          f"got {repeats!r}")
    if repeats != 1:
        # Only when asked: grids without it keep the evaluation (and so the finished runs) they had.
        out["repeats"] = repeats
    return out


# -- expansion --------------------------------------------------------------------------------------
def _expand_values(table: Mapping[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """Cartesian product of the list-valued entries; returns (values, expanded keys) pairs."""
    keys = sorted(table)
    choices = []
    expanded = []
    for k in keys:
        v = table[k]
        if isinstance(v, list) and not (k == "betas" and v and not isinstance(v[0], list)):
            choices.append(v)
            expanded.append(k)
        else:
            choices.append([v])
    return [(dict(zip(keys, combo)), expanded) for combo in itertools.product(*choices)]


@dataclass(frozen=True)
class Setting:
    """One setting of a grid: a dataset, a model with its values and training settings. Its runs differ only
    by seed (``ids(seed)`` is a run's id), so whatever does not depend on the seed is built and checked once."""

    dataset: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]             # without the seed
    ids: RunIds


def settings(grid: Grid) -> Iterator[Setting]:
    """The grid's settings in grid order: datasets x models x hyper-parameter values (seeds are each run's)."""
    train_defaults = _train_fields()
    for dataset in grid.datasets:
        for model in grid.models:
            for params, _ in _expand_values(model["params"]):
                for overrides, expanded_train in _expand_values(model["train"]):
                    merged = {**grid.train, **overrides}
                    label = {k: merged[k] for k in expanded_train}
                    latent_dim = merged.pop("latent_dim", 10)
                    # correlations: the dataset's, in run.dataset (the runner hands them to the trainer)
                    train = {k: v for k, v in train_defaults.items()
                             if k not in ("seed", "device", "progress", "correlations")}
                    train.update(merged)
                    if isinstance(train.get("betas"), tuple):
                        train["betas"] = list(train["betas"])
                    model_cfg = {"name": model["name"], "latent_dim": latent_dim,
                                 "params": _spelled(model["name"], params)}
                    yield Setting(dataset=dict(dataset), model=model_cfg, train=train,
                                  ids=RunIds(dataset, model_cfg, train, label, train_defaults))


def iter_runs(grid: Grid) -> Iterator[RunSpec]:
    """The runs of :func:`expand` one at a time, so a grid of millions of runs can be walked in bounded memory.

    The runs of one setting share its dataset, model, evaluation and resources mappings (read-only);
    each has its own training settings (its seed is one of them).
    """
    resources = dict(grid.resources)
    for setting in settings(grid):
        for seed in grid.seeds:
            yield RunSpec(id=setting.ids(seed), benchmark=grid.name, dataset=setting.dataset, model=setting.model,
                          train={**setting.train, "seed": seed}, seed=seed, device=grid.device, eval=grid.eval,
                          resources=resources)


def expand(grid: Grid) -> list[RunSpec]:
    """Every run of the grid: datasets x models x hyper-parameter values x seeds, in grid order."""
    return list(iter_runs(grid))


def _check_models_build(where: _Where, grid: Grid) -> None:
    """Build every distinct model once (cheap) so unknown parameters and bad values fail before any run."""
    checked = set()
    for i, model in enumerate(grid.models):
        for dataset in grid.datasets:
            channels = data.get_spec(dataset["name"]).image_shape[2]
            for params, _ in _expand_values(model["params"]):
                latent_dims = model["train"].get("latent_dim", grid.train.get("latent_dim", 10))
                for latent_dim in latent_dims if isinstance(latent_dims, list) else [latent_dims]:
                    key = json.dumps(canonical([model["name"], channels, latent_dim, params]))
                    if key in checked:
                        continue
                    checked.add(key)
                    problem = _unknown_parameter(model["name"], params)
                    if problem:
                        raise where.error(f"models[{i}]", problem)
                    # Before building it: a latent size no machine can hold must not allocate its model here.
                    parameters = _extrapolated_parameters(model["name"], channels, params, latent_dim)
                    problem = _too_large(latent_dim, parameters)
                    if problem:
                        raise where.error(f"models[{i}].latent_dim" if "latent_dim" in model["train"]
                                          else "train.latent_dim", problem)
                    if parameters is not None and parameters * 4 > MAX_VALIDATION_BUILD_BYTES:
                        continue  # allowed, but too large to build here just to check it (the run builds it)
                    try:
                        built = model_registry.build(model["name"], in_channels=channels, latent_dim=latent_dim,
                                                     **params)
                        if built.images_per_example() == 2:
                            _check_pairs(built, data.get_spec(dataset["name"]))
                    except UserError as exc:
                        raise where.error(f"models[{i}]", str(exc)) from None
                    except TypeError as exc:
                        raise where.error(f"models[{i}]", _parameter_problem(model["name"], params, exc)) from None
                    except (ImportError, AttributeError) as exc:
                        raise where.error(f"models[{i}].name", f"cannot load user model {model['name']!r}: {exc}") from None


#: The most memory a run's weights, gradients and Adam moments may need (weights x 16 bytes): more than the
#: largest GPU (141 GB) or a usual node holds; a grid asking for more is a typo (latent_dim = 100000000),
#: refused before anything is allocated.
MAX_PARAMETER_BYTES = 256 << 30
#: Validation builds each model to check its parameters, but not one whose weights alone would take more
#: than this (its size is known from the extrapolation; the run itself builds it).
MAX_VALIDATION_BUILD_BYTES = 2 << 30


def _extrapolated_parameters(name: str, channels: int, params: Mapping[str, Any], latent_dim: Any) -> int | None:
    """The weights of the model at ``latent_dim``, extrapolated from the same model built with 1 and 2 latent
    dimensions (every layer that grows with the latent size grows linearly); None when ``latent_dim`` is small
    enough to build as it is, or the small builds fail (the real build reports why)."""
    if not _is_int(latent_dim) or latent_dim <= 2:
        return None
    try:
        counts = [sum(p.numel() for p in model_registry.build(name, in_channels=channels, latent_dim=size,
                                                              **params).parameters()) for size in (1, 2)]
    except Exception:  # noqa: BLE001 - the real build below reports what is wrong with the model
        return None
    return counts[0] + (counts[1] - counts[0]) * (latent_dim - 1)


def _too_large(latent_dim: int, parameters: int | None) -> str | None:
    """Why a model of ``parameters`` weights (at this ``latent_dim``) cannot train anywhere, or None."""
    if parameters is None or parameters * 16 <= MAX_PARAMETER_BYTES:
        return None
    return (f"latent_dim = {latent_dim} gives about {parameters:.2g} weights, {parameters * 16 / 1e12:.3g} TB with "
            f"their gradients and Adam's moments: no machine holds that (the reference uses 10; a sensible "
            f"range is 1 to a few thousand)")


def _spelled(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with one spelling per value where a model reads two as one: a pair model's ``k = -1`` is its
    ``k = "random"``, so both spellings give one run (one id)."""
    out = dict(params)
    if out.get("k") == -1 and not isinstance(out["k"], bool):
        try:
            if model_registry.resolve(name).images_per_example() == 2:
                out["k"] = "random"
        except UserError:
            pass
    return out


def _check_pairs(model: Any, spec: Any) -> None:
    """A model trained on pairs: its ``k`` must fit the dataset's factors, and a label-informed one needs a
    latent dimension per factor (UserError naming the dataset otherwise)."""
    changeable = pairs.changeable_factors(spec.factor_sizes, model.pairs)
    if not (model.k == -1 or 1 <= model.k <= len(changeable) - 1):
        raise UserError(f"k = {model.k} does not fit {spec.name}: with pairs = {model.pairs!r} it must be -1 "
                        f"(\"random\") or 1..{len(changeable) - 1} (one of its {len(changeable)} changeable "
                        "factors stays shared)")
    check = getattr(model, "check_num_factors", None)
    if check is not None:
        check(len(spec.factor_sizes))


def _unknown_parameter(name: str, params: Mapping[str, Any]) -> str | None:
    """A message for the first key the model's constructor does not take (with a did-you-mean), else None."""
    try:
        signature = inspect.signature(model_registry.resolve(name).__init__)
    except (UserError, TypeError, ValueError):
        return None  # build() will say what is wrong with the name
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None  # takes anything: build() decides
    accepted = [p for p in signature.parameters if p not in ("self", "in_channels", "latent_dim")]
    for key in params:
        if key not in accepted:
            if key == "beta":  # not a typo of "betas": the model has no KL weight
                return f"model {name!r} takes no beta (it has no KL term); use \"vae\" or \"beta_vae\" for one"
            hint = _did_you_mean(key, [*accepted, *TRAIN_KEYS, *MODEL_LEVEL_KEYS])
            takes = ", ".join(accepted) if accepted else "no parameters"
            return (f"unknown key {key!r} for model {name!r}{hint} (its parameters: {takes}; "
                    f"training keys: {', '.join([*TRAIN_KEYS, *MODEL_LEVEL_KEYS])})")
    return None


def _parameter_problem(name: str, params: Mapping[str, Any], exc: Exception) -> str:
    return f"{name} does not accept the parameters {sorted(params)}: {exc}"
