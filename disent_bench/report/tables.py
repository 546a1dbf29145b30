"""The tables as data: summaries of the runs frame and, per section, what each table shows and emphasises.

Building, not rendering: nothing here formats text. From the runs frame (:mod:`disent_bench.report.runs`):

* :func:`summarise`: per setting (a section, see :data:`~disent_bench.report.runs.SECTION_COLUMNS`,
  x model setting x varying training settings), mean, std and n over seeds of every metric
  (``<metric>:mean``, ``:std``, ``:n``) and each score's 95% interval of the mean (``:low``, ``:high``);
  written as is to ``summary.csv``;
* :func:`family_summary`: per section and family, median, quartiles, min, max and n of every metric
  over all runs of the family's sweep (``<metric>:median``, ``:q25``, ``:q75``, ``:min``, ``:max``,
  ``:n``), each score's 95% interval of the median (``:low``, ``:high``), and its best setting by one
  metric (``best_label``, ``best:mean``, ``best:std``, ``best:n``, ``best:low``, ``best:high``); written
  as is to ``families.csv``;
* :func:`section_tables`: per section, a :class:`SectionTable`: its rows of one of those summaries, the
  headline metrics it shows, and its ``best`` mask, the cells to emphasise: every row not significantly
  worse than the column's best (:func:`significance_mask`), with the notes that say why when none can be;
* :func:`build_tables`: all of the above plus the provenance lines, as one :class:`Tables`.

The seam between building and rendering is :class:`Tables`. The renderers (Markdown and LaTeX in
:mod:`disent_bench.report.render`, HTML in :mod:`disent_bench.report.html`) take one and only format
it: they print the summary columns of each ``SectionTable.rows`` and embolden exactly the cells its
``best`` mask marks; they compute no statistic and choose no best. The numbers behind the intervals
and the masks come from :mod:`disent_bench.report.statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disent_bench.errors import UserError
from disent_bench.report import statistics
from disent_bench.report.runs import (
    SECTION_COLUMNS,
    family_names,
    group_columns,
    headline_columns,
    lower_is_better,
    metric_columns,
    per_run,
    provenance_lines,
    section_rows,
    sections,
    setting_columns,
)

#: The scores by which the family table picks each family's best setting, first present wins.
SELECT_BY = ("dci.disentanglement", "mig.score", "factor_vae.eval_accuracy", "beta_vae.eval_accuracy",
             "sap.score", "modularity.score")
#: Selectors that read no ground truth (UDR, Duan et al. 2020): choosing by one of them, the family table
#: also gives each supervised headline metric of the chosen setting beside the best setting by that metric.
UNSUPERVISED_SELECTORS = ("udr.lasso", "udr.spearman")
FAMILY_STATS = ("median", "q25", "q75", "min", "max")
#: The centre each kind of table shows and compares: the mean over seeds of a setting, the median over
#: every run of a family.
CENTRE = {"settings": "mean", "families": "median"}
#: The confidence of every interval, and the level of the test behind the bold cells.
CONFIDENCE = 0.95
ALPHA = 0.05


def digits(column: str) -> int:
    """Decimal places a metric is reported with."""
    return 1 if column.startswith("reconstruction.") else 3


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds for every metric, per dataset x source x preset x representation x setting,
    and for every score the 95% bootstrap interval of the mean (``<metric>:low``, ``:high``; NaN for n < 3)."""
    return _summarise(frame)[0]


def _summarise(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.Index]]:
    """:func:`summarise` and, per row, the index labels of the runs it summarises."""
    if frame.empty:
        return pd.DataFrame(), []
    keys = group_columns(frame)
    metrics = metric_columns(frame) + [c for c in ("train_seconds", "eval_seconds") if c in frame.columns]
    grouped = frame.groupby(keys, dropna=False, sort=False)
    parts = []
    for stat in ("mean", "std", "count"):
        part = getattr(grouped[metrics], stat)()
        part.columns = [f"{c}:{'n' if stat == 'count' else stat}" for c in part.columns]
        parts.append(part)
    summary = pd.concat(parts, axis=1)
    scores = score_columns(frame)
    bounds = {f"{c}:{end}": [] for c in scores for end in ("low", "high")}
    members = []
    for key, part in grouped:  # the order of the aggregates above (sort=False: first appearance)
        members.append(part.index)
        for c in scores:
            low, high = _interval(part[c], "mean", key, c)
            bounds[f"{c}:low"].append(low)
            bounds[f"{c}:high"].append(high)
    for name, values in bounds.items():
        summary[name] = values
    ordered = []
    for c in metrics:
        ordered += [f"{c}:mean", f"{c}:std", f"{c}:n"] + ([f"{c}:low", f"{c}:high"] if c in scores else [])
    summary = summary[ordered].reset_index()
    summary.insert(len(keys), "n_seeds", grouped.size().values)
    return summary, members


def score_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns that are scores (not timings or counts): those that get intervals and tests."""
    return [c for c in metric_columns(frame) if not c.endswith("seconds") and c != "images_encoded"]


def _interval(values: pd.Series, statistic: str, key: Any, column: str) -> tuple[float, float]:
    bounds = statistics.interval(values.to_numpy(dtype=float), statistic, confidence=CONFIDENCE,
                                 seed=statistics.cell_seed(statistic, key, column))
    return (np.nan, np.nan) if bounds is None else bounds


def selection_metric(frame: pd.DataFrame, select_by: str | None = None) -> str | None:
    """The metric that picks each family's best setting: ``select_by`` or the first of SELECT_BY present."""
    if select_by is not None:
        if select_by not in frame.columns or frame[select_by].isna().all():
            known = ", ".join(c for c in headline_columns(frame) if not c.startswith("reconstruction."))
            raise UserError(f"cannot pick best settings by {select_by!r}: no run has that metric "
                            f"(headline metrics here: {known})")
        return select_by
    return next((c for c in SELECT_BY if c in frame.columns and frame[c].notna().any()), None)


def family_summary(frame: pd.DataFrame, select_by: str | None = None) -> pd.DataFrame:
    """Per section and family: median, quartiles, min and max of every metric over all its runs
    (every setting of its sweep, every seed), the 95% bootstrap interval of each score's median
    (``<metric>:low``, ``:high``), and its best setting by ``selection_metric``.

    The best setting is the one with the best mean over seeds (ties: the first in table order). It is
    chosen with the ground-truth factors, which an unsupervised user does not have (Locatello et al.
    2019), so it flatters a family: the median and spread are the fair comparison.
    Quartiles use linear interpolation between runs (numpy's default).
    """
    return _family_summary(frame, select_by)[0]


def _family_summary(frame: pd.DataFrame, select_by: str | None = None) -> tuple[pd.DataFrame, list[pd.Index]]:
    """:func:`family_summary` and, per row, the index labels of the runs it summarises."""
    if frame.empty:
        return pd.DataFrame(), []
    chosen = selection_metric(frame, select_by)
    # A family run with a fixed parameter other than the reference's (a variant) is a sweep of its own.
    keys = SECTION_COLUMNS + ["family", "variant"] + setting_columns(frame)
    metrics = metric_columns(frame) + [c for c in ("train_seconds", "eval_seconds") if c in frame.columns]
    scores = set(score_columns(frame))
    records, members = [], []
    for key, part in frame.groupby(keys, dropna=False, sort=False):
        members.append(part.index)
        record = dict(zip(keys, key))
        record.update(models=", ".join(dict.fromkeys(part["model"])), n_settings=part["label"].nunique(),
                      n_runs=len(part), n_seeds=part["seed"].nunique(), selected_by=chosen)
        best = {"best_label": None, "best_label_tex": None, "best:mean": np.nan, "best:std": np.nan, "best:n": 0,
                "best:low": np.nan, "best:high": np.nan}
        if chosen is not None and part[chosen].notna().any():
            per_setting = part.groupby("label", sort=False)[chosen].agg(["mean", "std", "count"]).dropna(
                subset=["mean"])
            label = (per_setting["mean"].idxmin() if lower_is_better(chosen) else per_setting["mean"].idxmax())
            low, high = _interval(part.loc[part["label"] == label, chosen], "mean", (key, label), chosen)
            best = {"best_label": label,
                    "best_label_tex": part.loc[part["label"] == label, "label_tex"].iloc[0],
                    "best:mean": per_setting.loc[label, "mean"], "best:std": per_setting.loc[label, "std"],
                    "best:n": int(per_setting.loc[label, "count"]), "best:low": low, "best:high": high}
        record.update(best)
        if chosen in UNSUPERVISED_SELECTORS:
            record.update(_against_oracle(part, best["best_label"], chosen))
        for c in metrics:
            values = part[c].dropna().to_numpy(dtype=float)
            stats = (np.median(values), *np.quantile(values, [0.25, 0.75]), values.min(), values.max()) \
                if len(values) else (np.nan,) * 5
            record.update({f"{c}:{name}": float(v) for name, v in zip(FAMILY_STATS, stats)})
            record[f"{c}:n"] = len(values)
            if c in scores:
                record[f"{c}:low"], record[f"{c}:high"] = _interval(part[c], "median", key, c)
        records.append(record)
    return pd.DataFrame(records), members


def supervised_headline(frame: pd.DataFrame) -> list[str]:
    """The headline scores that read the ground truth (not reconstruction, not an unsupervised selector)."""
    return [c for c in headline_columns(frame)
            if c not in UNSUPERVISED_SELECTORS and not c.startswith("reconstruction.")]


def _against_oracle(part: pd.DataFrame, label: str | None, chosen: str) -> dict[str, Any]:
    """For a family selected by an unsupervised ``chosen``: per supervised headline metric ``c``, the mean
    over seeds of the selected setting (``selected:<c>``) and of the best setting by ``c`` itself
    (``oracle:<c>``, its label ``oracle_label:<c>``: what choosing with the ground truth would give)."""
    out: dict[str, Any] = {}
    for c in supervised_headline(part):
        means = part.groupby("label", sort=False)[c].mean().dropna()
        if means.empty:
            continue
        oracle = means.idxmin() if lower_is_better(c) else means.idxmax()
        out[f"selected:{c}"] = float(means[label]) if label in means.index else np.nan
        out[f"oracle:{c}"] = float(means[oracle])
        out[f"oracle_label:{c}"] = oracle
        out[f"oracle_label_tex:{c}"] = part.loc[part["label"] == oracle, "label_tex"].iloc[0]
    return out


@dataclass(frozen=True)
class SectionTable:
    """One section's table as data: which rows, which metrics, which cells are bold and why. No text."""

    kind: str                  # "settings" (rows of summarise) or "families" (rows of family_summary)
    section: dict[str, Any]    # the section's keys, SECTION_COLUMNS
    rows: pd.DataFrame         # the section's rows of the summary, in table order
    metrics: list[str]         # the headline metrics it shows (those with a value here), in HEADLINE order
    extra: list[str]           # training settings that vary over the runs, named beside each setting
    best: pd.DataFrame         # bool, index rows.index, columns metrics: the cells to emphasise
    notes: tuple[str, ...] = ()  # what the reader must know about the bold cells (e.g. why there are none)


@dataclass(frozen=True)
class Tables:
    """Everything the report's tables show, built once from the runs frame; what the renderers take."""

    runs: pd.DataFrame              # the runs frame (runs.csv: a row per evaluation repeat, if any)
    summary: pd.DataFrame           # summarise (summary.csv)
    families: pd.DataFrame          # family_summary (families.csv)
    provenance: list[str]           # the header of every table file and of the page
    settings: list[SectionTable]    # per section, the table of its settings (rows of summary)
    by_family: list[SectionTable]   # per section (the same, in the same order), the table of its families
    per_run: pd.DataFrame           # the runs frame with one row per run (repeats averaged): what is summarised


def significance_mask(runs: pd.DataFrame, rows: pd.DataFrame, members: list[pd.Index], metrics: list[str],
                      centre: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Per metric, True for every row not significantly worse than the row with the best ``centre``
    (:func:`~disent_bench.report.statistics.not_worse_than_best`: one-sided exact Mann-Whitney U test at
    level :data:`ALPHA`), and the notes a caption needs: why a column has no bold cell (a row with fewer
    than 3 runs) or why every row is bold (too few runs for any difference to reach the level)."""
    mask, notes = {}, []
    names = _row_names(rows)
    for c in metrics:
        groups = {}
        for index in rows.index:
            values = runs.loc[members[index], c].dropna().to_numpy(dtype=float)
            if len(values):
                groups[names[index]] = values
        flags = [False] * len(rows)
        if groups:
            bold = statistics.not_worse_than_best(groups, not lower_is_better(c), alpha=ALPHA, centre=centre)
            if bold.labels is not None:
                flags = [names[index] in bold.labels for index in rows.index]
            if bold.note:
                notes.append(bold.note)
        mask[c] = flags
    return pd.DataFrame(mask, index=rows.index, columns=metrics, dtype=bool), tuple(dict.fromkeys(notes))


def _row_names(rows: pd.DataFrame) -> dict[Any, str]:
    """A readable, unique name per row (what a caption's note calls it)."""
    names: dict[Any, str] = {}
    labels = rows["label"].astype(str) if "label" in rows.columns else family_names(rows)
    for index, name in labels.items():
        names[index] = name if name not in names.values() else f"{name} (row {len(names) + 1})"
    return names


def section_tables(frame: pd.DataFrame, table: pd.DataFrame, kind: str,
                   members: list[pd.Index]) -> list[SectionTable]:
    """Per section of ``frame``, in order, its :class:`SectionTable` of ``table``: for ``kind``
    "settings" a table from :func:`summarise`, for "families" one from :func:`family_summary`, with
    ``members`` each row's runs (as :func:`_summarise` and :func:`_family_summary` give them), from which
    :func:`significance_mask` decides the bold cells."""
    extra = setting_columns(frame)
    headline = headline_columns(frame)
    centre = CENTRE[kind]
    out = []
    for section, _ in sections(frame):
        rows = section_rows(table, section)
        metrics = [c for c in headline if rows[f"{c}:{centre}"].notna().any()]
        mask, notes = significance_mask(frame, rows, members, metrics, centre)
        out.append(SectionTable(kind, section, rows, metrics, extra, mask, notes))
    return out


def build_tables(frame: pd.DataFrame, select_by: str | None = None) -> Tables:
    """The summaries, section tables and provenance of a (non-empty) runs frame.

    ``select_by`` is the metric by which the family tables pick each family's best setting (default: the
    first of :data:`SELECT_BY` present); one that no run has raises :class:`UserError`.
    """
    runs = per_run(frame)  # a run scored with several evaluation seeds counts once, with their mean
    summary, setting_members = _summarise(runs)
    families, family_members = _family_summary(runs, select_by)
    return Tables(runs=frame, summary=summary, families=families, provenance=provenance_lines(frame),
                  settings=section_tables(runs, summary, "settings", setting_members),
                  by_family=section_tables(runs, families, "families", family_members), per_run=runs)
