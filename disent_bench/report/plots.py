"""Seaborn figures of the results (PNG for the page, PDF for a paper).

* each metric against regularisation strength: one column per family that sweeps a parameter (its own
  parameter on its own x axis, log where the sweep spans a decade), one row per headline metric with a
  shared y axis so families compare across a row; every seed as a point, the mean as a line; the AE
  and VAE (and models without a swept parameter) as horizontal reference lines in every panel;
* the trade-off of reconstruction error against each disentanglement score (one point per run),
  coloured by family, marker size growing with the family's regularisation;
* the Spearman rank correlation between metrics over runs (as in Locatello et al. 2019, Fig. 2).
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from disent_bench._io import atomic_path  # noqa: E402
from disent_bench.report.families import axis_label, format_value, larger_is_weaker, log_axis  # noqa: E402
from disent_bench.report.runs import (  # noqa: E402
    HEADLINE,
    headline_columns,
    lower_is_better,
    section_title,
    sections,
    setting_columns,
)

AE_COLOR = "#555555"
VAE_COLOR = "#d62728"
#: One colour and marker per family, the same in every figure (colour-blind readers get the marker).
FAMILY_STYLE = {
    "AE": (AE_COLOR, "s"), "VAE": (VAE_COLOR, "D"), "β-VAE": ("#1f77b4", "o"), "FactorVAE": ("#ff7f0e", "^"),
    "β-TCVAE": ("#2ca02c", "v"), "DIP-VAE-I": ("#9467bd", "P"), "DIP-VAE-II": ("#8c564b", "X"),
    "AnnealedVAE": ("#17becf", "*"),
}
OTHER_COLORS = ("#bcbd22", "#e377c2", "#7f7f7f", "#000000")
OTHER_MARKERS = ("h", "p", "<", ">")


def family_styles(families: list[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per family; a user's model gets the next free one."""
    styles, i = {}, 0
    for family in families:
        if family in FAMILY_STYLE:
            styles[family] = FAMILY_STYLE[family]
        else:
            styles[family] = (OTHER_COLORS[i % len(OTHER_COLORS)], OTHER_MARKERS[i % len(OTHER_MARKERS)])
            i += 1
    return styles


def slug(*parts: object) -> str:
    """A file-name stem from ``parts``; empty parts (a section's default training data and supervision)
    are left out, so adding such a section key renames no existing figure."""
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", str(p)).strip("_") for p in parts if str(p) != "")


def save_figure(fig: plt.Figure, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically; close the figure."""
    paths = {}
    for fmt, kwargs in (("png", {"dpi": 130}), ("pdf", {})):
        path = out_dir / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", **kwargs)
        paths[fmt] = path
    plt.close(fig)
    return paths


def _axis_label(column: str) -> str:
    arrow = "lower is better" if lower_is_better(column) else "higher is better"
    return f"{HEADLINE.get(column, column)}\n({arrow})"


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.6, 3.0)):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _swept(part: pd.DataFrame) -> list[tuple[str, str]]:
    """(family, x axis label) of each family with a swept parameter, in table order."""
    swept = part.dropna(subset=["sweep_value"]).drop_duplicates("family")
    return [(r["family"], axis_label(r["model"], r["sweep_param"])) for _, r in swept.iterrows()]


def _strength_axis(ax: plt.Axes, values: list[float]) -> bool:
    """Log or linear x axis ticked at the sweep's values; True when log."""
    log = log_axis(values)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 1.35, max(values) * 1.35)
    else:
        span = (max(values) - min(values)) or 1.0
        ax.set_xlim(min(values) - 0.08 * span, max(values) + 0.08 * span)
    ax.set_xticks(values)
    labels = [format_value(v) for v in values]
    where = np.log(values) if log else np.asarray(values, dtype=float)
    lo, hi = ax.get_xlim()
    inches = ax.get_position().width * ax.figure.get_figwidth() / ((np.log(hi / lo)) if log else (hi - lo))
    # Upright labels need their half-widths plus a space between neighbours (8 pt digits ~ 0.07 in).
    need = [(len(a) + len(b)) / 2 + 1 for a, b in zip(labels, labels[1:])]
    crowded = any(gap * inches < n * 0.07 for gap, n in zip(np.diff(where), need))
    ax.set_xticklabels(labels, fontsize=8, rotation=90 if crowded else 0)
    ax.minorticks_off()
    return log


def _reference_lines(ax: plt.Axes, part: pd.DataFrame, column: str, styles: dict) -> None:
    """Models without a swept parameter (AE, VAE, ...): their mean as a line, +- one std as a band."""
    fixed = part[part["sweep_value"].isna()].dropna(subset=[column])
    dashes = {"AE": "--", "VAE": "-."}
    for label, rows in fixed.groupby("label", sort=False):
        colour = styles[rows["family"].iloc[0]][0]
        mean, std = rows[column].mean(), rows[column].std()
        ax.axhline(mean, color=colour, ls=dashes.get(label, ":"), lw=1.4, zorder=2,
                   label=f"{label}: mean ± std over seeds")
        if not math.isnan(std):
            ax.axhspan(mean - std, mean + std, color=colour, alpha=0.10, lw=0, zorder=1)


def _lines_of(rows: pd.DataFrame, settings: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The settings of one family split into lines: one per fixed-parameter variant and training setting."""
    keys = rows["variant"].astype(str)
    for c in settings:
        keys = keys + rows[c].map(lambda v, c=c: f", {c}={v}")
    return [(key.strip(", "), group) for key, group in rows.groupby(keys, sort=False)]


def metrics_vs_strength(part: pd.DataFrame, section: dict, out_dir: Path) -> dict[str, Path] | None:
    """Each headline metric against each family's own regularisation parameter."""
    columns = [c for c in headline_columns(part) if part[c].notna().any()]
    swept = _swept(part)
    if not columns or not swept:
        return None
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    styles = family_styles(list(dict.fromkeys(part["family"])))
    settings = setting_columns(part)
    rng = np.random.default_rng(0)
    if len(swept) == 1:  # one family: its metrics wrap into rows of four panels
        fig, flat = _grid(len(columns))
        panels = [(ax, column, swept[0], True, True) for ax, column in zip(flat, columns)]
    else:  # a row per metric (shared y: families compare along a row), a column per family
        fig, axes = plt.subplots(len(columns), len(swept), squeeze=False, sharey="row",
                                 figsize=(2.45 * len(swept) + 1.0, 1.9 * len(columns) + 1.4))
        panels = [(axes[i, j], column, family, i == len(columns) - 1, j == 0)
                  for i, column in enumerate(columns) for j, family in enumerate(swept)]
    for ax, column, (family, axis_text), bottom, left in panels:
        colour, marker = styles[family]
        rows = part[part["family"] == family]
        values = sorted(rows["sweep_value"].dropna().unique())
        log = _strength_axis(ax, values)
        _reference_lines(ax, part, column, styles)
        lines = _lines_of(rows.dropna(subset=[column, "sweep_value"]), settings)
        for i, (variant, line) in enumerate(lines):
            if log:  # spread the seeds sideways without hiding them
                x = line["sweep_value"] * np.exp(rng.uniform(-0.05, 0.05, len(line)))
            else:
                x = line["sweep_value"] + rng.uniform(-0.015, 0.015, len(line)) * ((values[-1] - values[0]) or 1)
            ax.scatter(x, line[column], s=13, color=colour, marker=marker, alpha=0.45, lw=0, zorder=3)
            means = line.groupby("sweep_value")[column].mean()
            ax.plot(means.index, means.values, marker=marker, color=colour, lw=1.8, ms=5, zorder=4,
                    ls=("-", "--", ":", "-.")[i % 4],
                    label=f"{family}, {variant or 'reference values'}" if len(lines) > 1 else None)
        if bottom:
            ax.set_xlabel(textwrap.fill(axis_text, 30), fontsize=9)
        if left:
            ax.set_ylabel(_axis_label(column), fontsize=9)
        if len(swept) > 1 and column == columns[0]:
            ax.set_title(family, fontsize=11, color=colour, fontweight="bold")
    _legend_below(fig, [p[0] for p in panels])
    n_seeds = part.groupby("label")["seed"].nunique()
    n_text = (f"{n_seeds.min()}–{n_seeds.max()}" if n_seeds.min() != n_seeds.max() else f"{n_seeds.min()}")
    whose = f"{swept[0][0]}'s" if len(swept) == 1 else "each family's"
    fig.suptitle(f"Metrics against {whose} regularisation strength (n = {n_text} seeds per setting)\n"
                 f"{section_title(section)}", fontsize=11)
    fig.tight_layout(rect=(0, 0.0, 1, 0.98))
    return save_figure(fig, out_dir, slug(*section.values(), "metrics_vs_strength"))


def _legend_below(fig: plt.Figure, axes: list[plt.Axes]) -> None:
    """One legend under the panels: what points and lines are, then the reference lines and variants."""
    grey = "#666666"
    handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", color=grey, alpha=0.5, ms=4),
               matplotlib.lines.Line2D([], [], ls="-", marker="o", color=grey, lw=1.8, ms=5)]
    labels = ["one run (seed)", "mean over seeds"]
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    ncol = min(len(labels), 4)
    fig.legend(handles, labels, loc="upper center", ncol=ncol, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 0.0))


SIZES = (15.0, 55.0, 95.0)  # marker areas of the weakest, middle and strongest setting of a family


def strength_sizes(part: pd.DataFrame) -> np.ndarray:
    """Marker area per row: the rank of its setting within its family, weakest smallest; models without a
    swept parameter (AE, VAE) get the middle size."""
    sizes = np.full(len(part), SIZES[1])
    for family, rows in part.groupby("family", sort=False):
        values = rows["sweep_value"]
        if values.isna().all():
            continue
        rank = values.rank(method="dense", ascending=not larger_is_weaker(family))
        top = rank.max()
        fraction = (rank - 1) / (top - 1) if top > 1 else rank * 0 + 0.5
        sizes[part.index.get_indexer(rows.index)] = SIZES[0] + (SIZES[2] - SIZES[0]) * fraction.fillna(0.5)
    return sizes


def tradeoff(part: pd.DataFrame, section: dict, out_dir: Path) -> dict[str, Path] | None:
    """Reconstruction error (x) against each disentanglement score (y): one point per run, coloured by
    family; within a family the marker grows with its regularisation (rank of its swept value)."""
    recon = "reconstruction.bce"
    if recon not in part.columns or part[recon].isna().all():
        return None
    scores = [c for c in headline_columns(part) if not c.startswith("reconstruction.") and part[c].notna().any()]
    if not scores:
        return None
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    fig, axes = _grid(len(scores), ncols=3)
    families = list(dict.fromkeys(part["family"]))
    styles = family_styles(families)
    part = part.assign(_size=strength_sizes(part))
    for ax, column in zip(axes, scores):
        for family in families:
            rows = part[part["family"] == family]
            colour, marker = styles[family]
            ax.scatter(rows[recon], rows[column], s=rows["_size"], color=colour, marker=marker, alpha=0.7,
                       edgecolor="white", lw=0.4, label=family)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.set_xlabel("reconstruction error, BCE per image\n(lower is better)")
        ax.set_ylabel(_axis_label(column))
    # One legend (two never overlap): the families, then what marker size means.
    blank = matplotlib.lines.Line2D([], [], ls="", marker="")
    handles = [blank] + [matplotlib.lines.Line2D([], [], ls="", marker=styles[f][1], color=styles[f][0], ms=8)
                         for f in families]
    labels = ["$\\bf{family}$"] + families
    if part["sweep_value"].notna().any():
        handles += [blank] + [matplotlib.lines.Line2D([], [], ls="", marker="o", color="#888888",
                                                               ms=math.sqrt(size)) for size in SIZES]
        labels += ["$\\bf{marker\\ size}$", "weakest setting of its family", "middle", "strongest setting of its family"]
    fig.legend(handles, labels, loc="center left", frameon=False, bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Reconstruction against disentanglement, one point per run\n{section_title(section)}",
                 fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_dir, slug(*section.values(), "tradeoff"))


def rank_correlation(part: pd.DataFrame, section: dict, out_dir: Path) -> dict[str, Path] | None:
    """Spearman rank correlation between the headline metrics over all runs of a section."""
    columns = [c for c in headline_columns(part) if part[c].notna().sum() >= 3]
    if len(columns) < 2 or len(part) < 3:
        return None
    corr = part[columns].corr(method="spearman")
    corr.index = corr.columns = [HEADLINE.get(c, c) for c in columns]
    sns.set_theme(style="white", context="paper", font_scale=1.05)
    fig, ax = plt.subplots(figsize=(1.0 * len(columns) + 2.2, 0.85 * len(columns) + 1.6))
    with warnings.catch_warnings():  # seaborn 0.13 calls a matplotlib API that is being deprecated
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(corr, vmin=-1, vmax=1, center=0, cmap="vlag", annot=True, fmt=".2f", square=True,
                    linewidths=0.5, cbar_kws={"label": "Spearman ρ", "shrink": 0.8}, ax=ax)
    ax.set_xticklabels(ax.get_xticklabels(), rotation=35, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    blank = " (blank: a metric constant over runs)" if corr.isna().any().any() else ""
    lower = [HEADLINE.get(c, c) for c in columns if lower_is_better(c)]
    if lower:  # correlations are of raw values: say which ones improve downwards
        blank += f"\nraw values; lower is better for {', '.join(lower)}"
    ax.set_title(f"Rank correlation of metrics over {len(part)} runs{blank}\n{section_title(section)}",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_dir, slug(*section.values(), "rank_correlation"))


def make_plots(frame: pd.DataFrame, out_dir: Path) -> list[dict]:
    """Every figure for every section; returns [{"section", "kind", "png", "pdf"}]."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for section, part in sections(frame):
        for kind, make in (("metrics_vs_strength", metrics_vs_strength), ("tradeoff", tradeoff),
                           ("rank_correlation", rank_correlation)):
            paths = make(part, section, out_dir)
            if paths:
                figures.append({"section": section, "kind": kind, **paths})
    return figures
