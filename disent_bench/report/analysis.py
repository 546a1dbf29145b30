"""What the statistics say about a results directory, as data: the report's answers to "is this
difference real?" beyond the tables' intervals and bold cells.

From the runs frame (one row per run; :func:`~disent_bench.report.runs.per_run`), with the numbers of
:mod:`disent_bench.report.statistics`:

* :func:`improvement`: per section and headline metric, the probability of improvement P(A > B) between
  every pair of families (over their whole sweeps) and between every pair of settings, with its 95%
  interval; where a grid has several datasets, the family pairs' average over datasets (each weighted
  equally) as rows of dataset ``"all datasets"`` (Agarwal et al. 2021);
* :func:`ranks`: per group of sections that differ only by dataset, each family's average rank over
  datasets (by its median), the Friedman test and the Nemenyi critical difference (Demšar 2006);
* :func:`variance`: per section and metric, the shares of the metric's variance explained by the family,
  by the hyper-parameter value within it and by the seed (Locatello et al. 2019's headline question;
  Bouthillier et al. 2021);
* :func:`evaluation_noise`: with ``[eval] repeats``, per metric, the standard deviation over evaluation
  seeds of one model beside the one over training seeds.

Nothing here formats text; :mod:`disent_bench.report.render` writes these frames, and
:mod:`disent_bench.report.stat_plots` draws them. Every "cannot" is a note, never a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from disent_bench.report import statistics
from disent_bench.report.runs import SECTION_COLUMNS, family_names, headline_columns, lower_is_better, sections

__all__ = ["Analysis", "RankGroup", "analyse", "improvement", "ranks", "variance", "evaluation_noise",
           "MAX_SETTINGS_PAIRED", "ALL_DATASETS"]

#: Settings pairs are listed for sections with at most this many settings (n^2 pairs per metric).
MAX_SETTINGS_PAIRED = 30
#: The ``dataset`` of rows that average over every dataset of a group.
ALL_DATASETS = "all datasets"
#: Sections that may be compared across datasets share these.
GROUP_COLUMNS = [c for c in SECTION_COLUMNS if c != "dataset"]


def improvement(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """P(A > B) for every ordered pair of families and of settings, per section and headline metric.

    Columns: the section's, ``level`` ("family" or "setting"), ``metric``, ``a``, ``b``, ``p``, ``low``,
    ``high`` (NaN where a side has fewer than 3 runs), ``n_a``, ``n_b``. Returns the frame and notes.
    """
    rows, notes = [], []
    metrics = headline_columns(frame)
    for section, part in sections(frame):
        families = family_names(part)
        units = {"family": families, "setting": part["label"]}
        n_settings = part["label"].nunique()
        if n_settings > MAX_SETTINGS_PAIRED:
            units.pop("setting")
            notes.append(f"{section['dataset']}: {n_settings} settings; pairs of settings are listed for at most "
                         f"{MAX_SETTINGS_PAIRED} (families are compared in full)")
        for level, names in units.items():
            order = list(dict.fromkeys(names))
            if len(order) < 2:
                continue
            for metric in metrics:
                values = {name: part.loc[names == name, metric].dropna().to_numpy(dtype=float) for name in order}
                for a in order:
                    for b in order:
                        if a == b or not len(values[a]) or not len(values[b]):
                            continue
                        result = statistics.probability_of_improvement(
                            values[a], values[b], higher_is_better=not lower_is_better(metric),
                            seed=statistics.cell_seed(section, level, metric, a, b))
                        rows.append({**section, "level": level, "metric": metric, "a": a, "b": b,
                                     "p": result.p, "low": _nan(result.low), "high": _nan(result.high),
                                     "n_a": len(values[a]), "n_b": len(values[b])})
    frame_out = pd.DataFrame(rows, columns=[*SECTION_COLUMNS, "level", "metric", "a", "b", "p", "low", "high",
                                            "n_a", "n_b"])
    average = _average_over_datasets(frame, metrics)
    return pd.concat([frame_out, average], ignore_index=True) if not average.empty else frame_out, notes


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _dataset_groups(frame: pd.DataFrame):
    """(group keys, {dataset: rows}) for sections that differ only by dataset."""
    for key, part in frame.groupby(GROUP_COLUMNS, sort=False, dropna=False):
        yield dict(zip(GROUP_COLUMNS, key)), {d: rows for d, rows in part.groupby("dataset", sort=False)}


def _average_over_datasets(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    rows = []
    for group, by_dataset in _dataset_groups(frame):
        if len(by_dataset) < 2:
            continue
        order = list(dict.fromkeys(name for part in by_dataset.values() for name in family_names(part)))
        for metric in metrics:
            for a in order:
                for b in order:
                    if a == b:
                        continue
                    pairs = []
                    for part in by_dataset.values():
                        names = family_names(part)
                        va = part.loc[names == a, metric].dropna().to_numpy(dtype=float)
                        vb = part.loc[names == b, metric].dropna().to_numpy(dtype=float)
                        if len(va) and len(vb):
                            pairs.append((va, vb))
                    if len(pairs) < 2:
                        continue  # not on two datasets: no average
                    result = statistics.average_probability_of_improvement(
                        pairs, higher_is_better=not lower_is_better(metric), seed=statistics.cell_seed(group, metric, a, b))
                    rows.append({**group, "dataset": f"{ALL_DATASETS} ({len(pairs)})", "level": "family",
                                 "metric": metric, "a": a, "b": b, "p": result.p, "low": _nan(result.low),
                                 "high": _nan(result.high), "n_a": np.nan, "n_b": np.nan})
    return pd.DataFrame(rows)


@dataclass
class RankGroup:
    """The rank analysis of sections that differ only by dataset: per metric, the medians and the result."""

    group: dict[str, Any]
    datasets: list[str]
    medians: dict[str, pd.DataFrame] = field(default_factory=dict)   # metric -> datasets x families
    results: dict[str, statistics.RankAnalysis] = field(default_factory=dict)
    note: str | None = None


def ranks(frame: pd.DataFrame) -> list[RankGroup]:
    """Per group of sections differing only by dataset: each family's average rank over the datasets (by
    its median; families present on every dataset), Friedman and Nemenyi, per headline metric. With one
    dataset the group says that ranks across datasets need more than one."""
    out = []
    metrics = headline_columns(frame)
    for group, by_dataset in _dataset_groups(frame):
        entry = RankGroup(group, list(by_dataset))
        if len(by_dataset) < 2:
            entry.note = (f"one dataset ({next(iter(by_dataset))}): ranks across datasets need runs on more than "
                          "one dataset with the same metric settings and representation")
            out.append(entry)
            continue
        for metric in metrics:
            table = {}
            for dataset, part in by_dataset.items():
                medians = part.groupby(family_names(part), sort=False)[metric].median()
                table[dataset] = medians
            medians = pd.DataFrame(table).T  # datasets x families
            common = [c for c in medians.columns if medians[c].notna().all()]
            medians = medians[common]
            if len(common) < 2:
                continue
            entry.medians[metric] = medians
            entry.results[metric] = statistics.rank_analysis(medians, not lower_is_better(metric))
        out.append(entry)
    return out


def variance(frame: pd.DataFrame) -> pd.DataFrame:
    """Per section and headline metric, the shares of variance of family, setting within family and seed.

    Columns: the section's, ``metric``, ``n_runs``, ``family``, ``setting``, ``seed`` (shares or NaN) and
    ``note`` (why a share is missing)."""
    parts = []
    metrics = headline_columns(frame)
    for section, part in sections(frame):
        long = pd.concat([pd.DataFrame({"metric": metric, "family": family_names(part), "setting": part["label"],
                                        "seed": part["seed"], "value": part[metric]}).dropna(subset=["value"])
                          for metric in metrics], ignore_index=True)
        if long.empty:
            continue
        shares = statistics.variance_shares_by(long, ["metric"])
        for key, value in section.items():
            shares.insert(list(section).index(key), key, value)
        parts.append(shares)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def evaluation_noise(runs_with_repeats: pd.DataFrame) -> pd.DataFrame:
    """With ``[eval] repeats``: per section and headline metric, the standard deviation over evaluation
    seeds (mean over runs of each run's std over its repeats) beside the one over training seeds (mean over
    settings of the std over seeds of each run's mean over repeats). Empty without repeats."""
    frame = runs_with_repeats
    if frame.empty or "eval_repeat" not in frame.columns or frame["eval_repeat"].max() < 1:
        return pd.DataFrame()
    rows = []
    for section, part in sections(frame):
        for metric in headline_columns(frame):
            per_run = part.groupby("run_id", sort=False)[metric]
            eval_std = per_run.std(ddof=1)
            run_means = per_run.mean()
            labels = part.groupby("run_id", sort=False)["label"].first()
            seed_std = run_means.groupby(labels, sort=False).std(ddof=1)
            rows.append({**section, "metric": metric,
                         "repeats": int(part.groupby("run_id")["eval_repeat"].nunique().median()),
                         "std_over_evaluation_seeds": float(eval_std.mean()),
                         "std_over_training_seeds": float(seed_std.mean()),
                         "runs": int(part["run_id"].nunique())})
    return pd.DataFrame(rows)


@dataclass
class Analysis:
    """Everything :func:`analyse` finds, per section or group, with the notes of what it could not."""

    improvement: pd.DataFrame
    ranks: list[RankGroup]
    variance: pd.DataFrame
    noise: pd.DataFrame
    notes: list[str]


def analyse(per_run_frame: pd.DataFrame, runs_with_repeats: pd.DataFrame) -> Analysis:
    """The whole analysis of a results directory's runs (one row per run, and the rows per repeat)."""
    pairs, notes = improvement(per_run_frame)
    return Analysis(pairs, ranks(per_run_frame), variance(per_run_frame), evaluation_noise(runs_with_repeats), notes)
