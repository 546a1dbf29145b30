"""How far UDR agrees with the supervised metrics: the analogue of Duan et al. (2020), Figure 2.

Per section, over every run that has a UDR score (settings with two or more seeds): the Spearman rank
correlation between each UDR variant (Lasso, Spearman) and each supervised headline metric (left), and
the runs themselves, UDR (Lasso) against the metric the family table selects by, coloured by family
(right). A high correlation means choosing by UDR would choose what the ground truth would.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402
import seaborn as sns  # noqa: E402

from disent_bench.report.plots import save_figure, slug  # noqa: E402
from disent_bench.report.runs import HEADLINE, family_names, section_title, sections  # noqa: E402
from disent_bench.report.tables import SELECT_BY, UNSUPERVISED_SELECTORS, supervised_headline  # noqa: E402

#: Fewer runs than this give no correlation worth drawing.
MIN_RUNS = 4


def rank_correlations(part: pd.DataFrame) -> pd.DataFrame:
    """Spearman rho (and its number of runs) between each UDR column and each supervised headline metric,
    over the runs of ``part`` that have both; columns ``udr``, ``metric``, ``rho``, ``n``."""
    rows = []
    for selector in UNSUPERVISED_SELECTORS:
        if selector not in part.columns:
            continue
        for metric in supervised_headline(part):
            both = part[[selector, metric]].dropna()
            rho = np.nan
            if len(both) >= MIN_RUNS and both[selector].nunique() > 1 and both[metric].nunique() > 1:
                rho = float(scipy.stats.spearmanr(both[selector], both[metric]).statistic)
            rows.append({"udr": selector, "metric": metric, "rho": rho, "n": len(both)})
    return pd.DataFrame(rows, columns=["udr", "metric", "rho", "n"])


def udr_agreement(per_run: pd.DataFrame, out_dir: Path) -> list[dict]:
    """One figure per section with UDR scores; ``[{"section", "kind": "udr", "png", "pdf"}]``."""
    if "udr.lasso" not in per_run.columns:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for section, part in sections(per_run):
        scored = part[part["udr.lasso"].notna()]
        correlations = rank_correlations(scored)
        if scored.empty or correlations["rho"].notna().sum() == 0:
            continue
        target = next((c for c in SELECT_BY if c in scored.columns and scored[c].notna().any()), None)
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
        shown = correlations.assign(
            metric=correlations["metric"].map(lambda c: HEADLINE.get(c, c)),
            udr=correlations["udr"].map(lambda c: HEADLINE.get(c, c)))
        sns.barplot(shown, x="metric", y="rho", hue="udr", ax=axes[0], palette="deep")
        axes[0].axhline(0, color="black", linewidth=0.8)
        axes[0].set_ylim(-1, 1)
        axes[0].set_xlabel("")
        axes[0].set_ylabel("Spearman ρ with UDR, over runs")
        axes[0].tick_params(axis="x", rotation=40)
        for label in axes[0].get_xticklabels():
            label.set_horizontalalignment("right")
        axes[0].legend(title="", fontsize=8, loc="lower left")
        axes[0].set_title(f"Rank correlation of UDR with each supervised metric ({len(scored)} runs)", fontsize=10,
                          loc="left")
        if target is not None:
            sns.scatterplot(x=scored["udr.lasso"], y=scored[target], hue=family_names(scored), ax=axes[1], s=40)
            axes[1].set_xlabel(HEADLINE["udr.lasso"] + " (no labels)")
            axes[1].set_ylabel(HEADLINE.get(target, target) + " (ground truth)")
            axes[1].legend(title="", fontsize=7, loc="best")
            axes[1].set_title("Every run", fontsize=10, loc="left")
        else:
            axes[1].axis("off")
        fig.suptitle(f"UDR against the supervised metrics: {section_title(section)}", fontsize=11)
        fig.tight_layout()
        figures.append({"section": section, "kind": "udr",
                        **save_figure(fig, out_dir, f"udr-{slug(*section.values())}")})
    return figures
