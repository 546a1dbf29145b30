"""The runs frame: every finished run as rows (pandas), and the vocabulary of its columns.

:func:`load_runs` reads the run store (:mod:`disent_bench.run_store`) into one row per run and
representation with every setting and every metric; it is ``runs.csv`` as written, and everything else
in the report (tables, plots, pictures) starts from it. The rest of this module names its columns:
which are metrics and which of them are headline scores (with their labels), which way each metric is
better, which settings vary, how runs split into sections that are never mixed (dataset x source x
preset x metric settings x representation) and the provenance a reader needs to trust the numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from disent_bench.metrics import PRESETS
from disent_bench.data import correlation
from disent_bench.report.families import describe, model_params, supervision, varying_params
from disent_bench.run_store import is_done, read_metrics

#: Columns that identify a group of runs differing only by seed (plus varying settings, see setting_columns).
# Runs are only summarised together when all of these agree; "metric_settings" is a short id of the
# grid's per-metric overrides of the preset (sample sizes), listed in the provenance header.
# "training_data": how training batches were drawn ("" for the independent grid, else e.g. "correlated:
# posX~posY σ=0.2"); "supervision": "" for unsupervised models, "weak: pairs" for models trained on pairs.
# Evaluation is the same for all, but runs of different training data or supervision are never averaged.
SECTION_COLUMNS = ["dataset", "source", "training_data", "supervision", "preset", "metric_settings", "representation"]
SETTING_CANDIDATES = ["latent_dim", "steps", "batch_size", "lr"]

#: The one score per metric shown in summary.md/.tex and in plots, in display order, with its label.
HEADLINE = {
    "beta_vae.eval_accuracy": "BetaVAE",
    "factor_vae.eval_accuracy": "FactorVAE",
    "mig.score": "MIG",
    "dci.disentanglement": "DCI disent.",
    "sap.score": "SAP",
    "modularity.score": "Modularity",
    "reconstruction.bce": "Recon. BCE",
    "downstream.lr.10000.mean_test_accuracy": "LR acc.",
    "downstream.lr.sample_efficiency": "LR effic.",
    "downstream.gbt.10000.mean_test_accuracy": "GBT acc.",
    "downstream.gbt.sample_efficiency": "GBT effic.",
    "irs.score": "IRS",
    "mig_sup.score": "MIG-sup",
    "jemmig.score": "JEMMIG",
    "dcimig.score": "DCIMIG",
    "infomec.m": "InfoM",
    "infomec.c": "InfoC",
    "infomec.e": "InfoE",
    "udr.lasso": "UDR (Lasso)",
    "udr.spearman": "UDR (Spearman)",
}


def lower_is_better(column: str) -> bool:
    """Reconstruction errors and timings are better when lower; every score is better when higher."""
    return column.startswith("reconstruction.") or column.endswith("seconds")


def _flatten_params(params: dict[str, Any]) -> dict[str, Any]:
    return {f"param.{k}": v for k, v in sorted(params.items()) if k != "beta"}


def load_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per finished run and representation under ``results_dir/runs``; empty frame if none.

    Rows are in the order of the tables: dataset, source, preset, representation, then the families in
    the reference order (see :mod:`disent_bench.report.families`) by the value of their parameter.
    """
    rows, run_params = [], []
    for directory in sorted(Path(results_dir).glob("runs/*")):
        if not directory.is_dir() or not is_done(directory):
            continue
        record = read_metrics(directory)
        if record is None:
            continue
        config = record.get("config", {})
        prov = record.get("provenance", {})
        hparams = record.get("model_hparams") or {}
        model_name = config.get("model", {}).get("name", hparams.get("name", "?"))
        # The model's own record of its parameters (defaults included), else what the grid asked for.
        params = model_params(hparams) if hparams else dict(config.get("model", {}).get("params", {}))
        beta = params.get("beta")
        if beta is None and model_name == "vae":
            beta = 1.0  # a VAE is a beta-VAE with beta = 1
        dataset = prov.get("dataset", {})
        train = record.get("train", {})
        correlations = config.get("dataset", {}).get("correlations") or []
        base = {
            "run_id": record.get("run_id", directory.name),
            "benchmark": config.get("benchmark"),
            "dataset": dataset.get("name", config.get("dataset", {}).get("name")),
            "source": dataset.get("source", config.get("dataset", {}).get("source")),
            "training_data": _training_data(correlations),
            "supervision": supervision(model_name),
            "source_requested": config.get("dataset", {}).get("source"),
            "dataset_checksum": dataset.get("checksum"),
            "model": model_name,
            "beta": float(beta) if isinstance(beta, (int, float)) else np.nan,
            "latent_dim": config.get("model", {}).get("latent_dim", hparams.get("latent_dim")),
            **_flatten_params(params),
            "seed": config.get("seed"),
            "steps": config.get("train", {}).get("steps"),
            "batch_size": config.get("train", {}).get("batch_size"),
            "lr": config.get("train", {}).get("lr"),
            "preset": config.get("eval", {}).get("preset", prov.get("eval_preset")),
            "eval_settings": json.dumps(config.get("eval", {}).get("settings", {}), sort_keys=True),
            "device": prov.get("device"),
            "train_seconds": train.get("seconds_total"),
            "disent_bench": prov.get("disent_bench"),
            "python": prov.get("python"),
            "torch": prov.get("torch"),
            "numpy": prov.get("numpy"),
            "scikit_learn": prov.get("scikit_learn"),
            "date": prov.get("date"),
        }
        # ``[eval] repeats``: one row per evaluation repeat (runs scored once have no repeat columns).
        repeats = record.get("repeats") or [{"repeat": None, "seed": None, "results": record.get("results", {})}]
        for entry in repeats:
            for representation, scores in entry.get("results", {}).items():
                row = dict(base, representation=representation,
                           eval_seconds=record.get("eval", {}).get("seconds", {}).get(representation))
                if entry.get("repeat") is not None:
                    row.update(eval_repeat=int(entry["repeat"]), eval_seed=entry.get("seed"))
                for key, value in scores.items():
                    # Any numeric score, known or not (a new metric shows in runs.csv and summary.csv);
                    # never one that would overwrite a setting column.
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in base:
                        row[key] = float(value)
                rows.append(row)
                run_params.append((model_name, params))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["metric_settings"] = [_settings_id(v) for v in frame["eval_settings"]]
        by_model: dict[str, list[dict]] = {}
        for model_name, params in run_params:
            by_model.setdefault(model_name, []).append(params)
        varying = varying_params(by_model)
        settings = [describe(m, p, varying[m]) for m, p in run_params]
        frame["family"] = [s.family for s in settings]
        frame["sweep_param"] = [s.sweep_param for s in settings]
        frame["sweep_value"] = [s.sweep_value for s in settings]
        frame["variant"] = [s.variant for s in settings]
        frame["label"] = [s.label for s in settings]
        frame["label_tex"] = [s.label_tex for s in settings]
        frame["_order"] = [s.order for s in settings]
        order = ["dataset", "source", "preset", "representation", "_order", "family", "sweep_value", "label", "seed"]
        if "eval_repeat" in frame.columns:  # runs scored once are their own repeat 0, with the run's seed
            frame["eval_repeat"] = frame["eval_repeat"].fillna(0).astype(int)
            frame["eval_seed"] = frame["eval_seed"].fillna(frame["seed"]).astype(int)
            order.append("eval_repeat")
        frame = frame.sort_values(order, na_position="first", kind="stable")
        frame = frame.drop(columns="_order").reset_index(drop=True)
        frame = _drop_superseded(frame)
    return frame


def _training_data(entries: list[dict]) -> str:
    """How a run's training batches were drawn, for its section: "" (the independent grid) or
    "correlated: posX~posY σ=0.2" from the canonical ``correlations`` of its configuration."""
    if not entries:
        return ""
    names = list(dict.fromkeys(name for entry in entries for name in entry["factors"]))
    return correlation.describe(correlation.parse_correlations(entries, names))


def per_run(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run and representation: a run scored with several evaluation seeds (``[eval] repeats``)
    gets the mean of its repeats for every metric; a frame without repeats is returned as it is."""
    if frame.empty or "eval_repeat" not in frame.columns:
        return frame
    metrics = metric_columns(frame)
    keys = ["run_id", "representation"]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    first = grouped.first()
    first[metrics] = grouped[metrics].mean()
    first = first.drop(columns=["eval_repeat", "eval_seed"]).reset_index()
    return first[[c for c in frame.columns if c in first.columns]]


def _drop_superseded(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the latest of runs that repeat the same setting and seed (e.g. left by an older grid
    version under another id), so that no seed is counted twice in a mean."""
    key = [c for c in group_columns(frame) + ["seed", "eval_settings", "eval_repeat"] if c in frame.columns]
    latest = frame.sort_values("date", kind="stable").duplicated(subset=key, keep="last")
    repeated = latest.reindex(frame.index)
    if repeated.any():
        dropped = sorted(set(frame.loc[repeated, "run_id"]))
        warnings.warn(f"{len(dropped)} finished run(s) repeat the setting and seed of a newer run and are left "
                      f"out of the report: {', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}",
                      stacklevel=3)
    return frame[~repeated].reset_index(drop=True)


def _settings_id(settings_json: str) -> str:
    """``"preset"`` without overrides, else a short stable id of the overrides."""
    if json.loads(settings_json) == {}:
        return "preset"
    return "custom-" + hashlib.sha256(settings_json.encode()).hexdigest()[:6]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Every metric column of a runs frame ("<metric>.<name>" plus images_encoded)."""
    return [c for c in frame.columns if ("." in c and not c.startswith("param.")) or c == "images_encoded"]


def headline_columns(frame: pd.DataFrame) -> list[str]:
    """The headline metric of each metric present in ``frame`` (in HEADLINE order)."""
    present = [c for c in HEADLINE if c in frame.columns and frame[c].notna().any()]
    if not present:  # unknown metric names: fall back to every non-timing metric
        present = [c for c in metric_columns(frame) if not c.endswith("seconds") and c != "images_encoded"]
    return present


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """Training settings that vary in ``frame`` (the model's own parameters are in its label)."""
    return [c for c in SETTING_CANDIDATES if c in frame.columns and frame[c].astype(str).nunique() > 1]


def group_columns(frame: pd.DataFrame) -> list[str]:
    return (SECTION_COLUMNS + ["family", "model", "sweep_param", "sweep_value", "variant", "beta", "label",
                               "label_tex"]
            + setting_columns(frame))


def sections(frame: pd.DataFrame) -> Iterable[tuple[dict[str, Any], pd.DataFrame]]:
    """(section keys, rows) per dataset x source x preset x representation: results kept apart."""
    if frame.empty:
        return
    for key, part in frame.groupby(SECTION_COLUMNS, sort=False, dropna=False):
        yield dict(zip(SECTION_COLUMNS, key)), part


def section_rows(frame: pd.DataFrame, section: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``frame`` (the runs frame or any frame with the section columns) in ``section``."""
    mask = pd.Series(True, index=frame.index)
    for key in SECTION_COLUMNS:
        mask &= (frame[key] == section[key]) | (frame[key].isna() & pd.isna(section[key]))
    return frame[mask]


def family_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's family, with its variant where it has one ("DIP-VAE-I (lambda_d_factor = 5)"): the
    units the statistics compare."""
    variant = frame["variant"].fillna("") if "variant" in frame.columns else pd.Series("", index=frame.index)
    return frame["family"] + variant.map(lambda v: f" ({v})" if v else "")


def section_title(section: dict[str, Any]) -> str:
    source = section["source"]
    tag = "SYNTHETIC data" if source == "synthetic" else f"{source} data"
    for key in ("training_data", "supervision"):  # empty for the unsupervised study on the independent grid
        if section.get(key):
            tag += f", {section[key]}"
    settings = "" if section.get("metric_settings", "preset") == "preset" else f" ({section['metric_settings']})"
    return (f"{section['dataset']} ({tag}), {section['preset']} metric preset{settings}, "
            f"{section['representation']} representation")


def provenance_lines(frame: pd.DataFrame) -> list[str]:
    """What a reader needs to trust the tables: versions, data sources and checksums, metric settings, date."""
    lines = [f"report date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; "
             f"{frame['run_id'].nunique()} runs, "
             f"trained {frame['date'].min()} .. {frame['date'].max()}"]
    versions = []
    for column in ("disent_bench", "python", "torch", "numpy", "scikit_learn"):
        values = sorted({str(v) for v in frame[column].dropna()})
        versions.append(f"{column.replace('_', '-')} {'/'.join(values) or '?'}")
    lines.append("versions: " + ", ".join(versions))
    lines.append("devices: " + ", ".join(sorted({str(v) for v in frame["device"].dropna()})))
    for (name, source), part in frame.groupby(["dataset", "source"], sort=False):
        checksums = sorted({str(v)[:16] for v in part["dataset_checksum"].dropna()})
        tag = "SYNTHETIC rendering (not the official data)" if source == "synthetic" else f"{source} file"
        lines.append(f"dataset {name}: {tag}, sha256 {', '.join(checksums) or '?'}…")
    for (preset, settings, settings_id), part in frame.groupby(["preset", "eval_settings", "metric_settings"],
                                                               sort=False):
        merged = {m: dict(v) for m, v in PRESETS.get(preset, {}).items()}
        for metric, overrides in json.loads(settings).items():
            merged.setdefault(metric, {}).update(overrides)
        present = {c.split(".")[0] for c in metric_columns(part)}
        text = "; ".join(f"{m} " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in s.items())
                         for m, s in merged.items() if m in present)
        overridden = f" ({settings_id}: the preset with the grid's overrides)" if json.loads(settings) else ""
        lines.append(f"metric preset {preset}{overridden}: {text}")
    steps = sorted({int(s) for s in frame["steps"].dropna()})
    lines.append(f"training steps: {', '.join(map(str, steps))}; seeds per setting as n in each table")
    return lines
