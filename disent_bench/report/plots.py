"""Seaborn figures of the results (PNG for the page, PDF for a paper).

* metric against beta per dataset: one panel per headline metric, every seed as a point, the mean as a
  line for beta-VAE; the VAE (beta = 1) as its own marker; the AE (no KL term, so no beta) as a dashed
  horizontal line at its mean with a band of +- one std;
* the trade-off of reconstruction error against each disentanglement score (one point per run);
* the Spearman rank correlation between metrics over runs (as in Locatello et al. 2019, Fig. 2).
"""

from __future__ import annotations

import math
import re
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
from disent_bench.report.tables import (  # noqa: E402
    HEADLINE,
    headline_columns,
    lower_is_better,
    section_title,
    sections,
)

AE_COLOR = "#555555"
VAE_COLOR = "#d62728"
BETA_COLOR = "#1f77b4"


def slug(*parts: object) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", str(p)).strip("_") for p in parts)


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


def metric_vs_beta(part: pd.DataFrame, section: dict, out_dir: Path) -> dict[str, Path] | None:
    """Each headline metric against beta: seeds as points, means as lines; AE and VAE marked apart."""
    columns = [c for c in headline_columns(part) if part[c].notna().any()]
    if not columns:
        return None
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    fig, axes = _grid(len(columns))
    rng = np.random.default_rng(0)
    betas = sorted(b for b in part.loc[part["model"].isin(["beta_vae", "vae"]), "beta"].dropna().unique())
    others = sorted(set(part["model"]) - {"ae", "vae", "beta_vae"})
    for ax, column in zip(axes, columns):
        beta_part = part[part["model"] == "beta_vae"].dropna(subset=[column])
        if not beta_part.empty:
            jitter = np.exp(rng.uniform(-0.06, 0.06, len(beta_part)))  # spread seeds without hiding them
            ax.scatter(beta_part["beta"] * jitter, beta_part[column], s=18, color=BETA_COLOR, alpha=0.6,
                       label="β-VAE (seeds)", zorder=3)
            means = beta_part.groupby("beta")[column].mean()
            ax.plot(means.index, means.values, "-o", color=BETA_COLOR, lw=2, ms=5, label="β-VAE (mean)", zorder=4)
        vae_part = part[part["model"] == "vae"].dropna(subset=[column])
        if not vae_part.empty:
            jitter = np.exp(rng.uniform(-0.06, 0.06, len(vae_part)))
            ax.scatter(vae_part["beta"] * jitter, vae_part[column], s=30, marker="D", color=VAE_COLOR,
                       alpha=0.6, label="VAE, β=1 (seeds)", zorder=5)
            ax.scatter([1.0], [vae_part[column].mean()], s=110, marker="D", facecolor="none",
                       edgecolor=VAE_COLOR, lw=2, label="VAE (mean)", zorder=6)
        ae_part = part[part["model"] == "ae"].dropna(subset=[column])
        if not ae_part.empty:
            mean, std = ae_part[column].mean(), ae_part[column].std()
            ax.axhline(mean, color=AE_COLOR, ls="--", lw=1.5, label="AE, no KL (mean ± std)", zorder=2)
            if not math.isnan(std):
                ax.axhspan(mean - std, mean + std, color=AE_COLOR, alpha=0.12, lw=0, zorder=1)
        for i, name in enumerate(others):
            other = part[part["model"] == name].dropna(subset=[column])
            ax.axhline(other[column].mean(), color=f"C{i + 2}", ls=":", lw=1.5, label=f"{name} (mean)")
        ax.set_xscale("log", base=2)
        if betas:
            ax.set_xticks(betas)
            ax.set_xticklabels([f"{b:g}" for b in betas])
            ax.set_xlim(min(betas) / 1.5, max(betas) * 1.5)
        ax.minorticks_off()
        ax.set_xlabel("β (KL weight)")
        ax.set_ylabel(_axis_label(column))
    handles, labels = [], []
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * math.ceil(len(labels) / 6)))
    n_seeds = part.groupby("label")["seed"].nunique()
    n_text = (f"{n_seeds.min()}–{n_seeds.max()}" if n_seeds.min() != n_seeds.max() else f"{n_seeds.min()}")
    fig.suptitle(f"Metrics against β (n = {n_text} seeds per setting)\n{section_title(section)}", fontsize=11)
    fig.tight_layout(rect=(0, 0.02, 1, 0.98))
    return save_figure(fig, out_dir, slug(*section.values(), "metrics_vs_beta"))


def tradeoff(part: pd.DataFrame, section: dict, out_dir: Path) -> dict[str, Path] | None:
    """Reconstruction error (x) against each disentanglement score (y): one point per run, coloured by model."""
    recon = "reconstruction.bce"
    if recon not in part.columns or part[recon].isna().all():
        return None
    scores = [c for c in headline_columns(part) if not c.startswith("reconstruction.") and part[c].notna().any()]
    if not scores:
        return None
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    fig, axes = _grid(len(scores), ncols=3)
    order = list(dict.fromkeys(part["label"]))  # load_runs' order: AE, VAE, beta-VAE by beta, others
    palette = dict(zip(order, sns.color_palette("viridis", len(order)) if len(order) > 1 else ["C0"]))
    if "AE" in palette:
        palette["AE"] = AE_COLOR
    if "VAE" in palette:
        palette["VAE"] = VAE_COLOR
    markers = {label: ("s" if label == "AE" else "D" if label == "VAE" else "o") for label in order}
    for ax, column in zip(axes, scores):
        sns.scatterplot(data=part, x=recon, y=column, hue="label", hue_order=order, palette=palette,
                        style="label", markers=markers, s=45, ax=ax, legend=ax is axes[0])
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.set_xlabel("reconstruction error, BCE per image\n(lower is better)")
        ax.set_ylabel(_axis_label(column))
    if axes[0].get_legend() is not None:
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].get_legend().remove()
        fig.legend(handles, labels, loc="center left", frameon=False, bbox_to_anchor=(1.0, 0.5), title="model")
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
        for kind, make in (("metrics_vs_beta", metric_vs_beta), ("tradeoff", tradeoff),
                           ("rank_correlation", rank_correlation)):
            paths = make(part, section, out_dir)
            if paths:
                figures.append({"section": section, "kind": kind, **paths})
    return figures
