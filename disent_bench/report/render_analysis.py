"""The analysis as files: ``improvement.csv``, ``variance.csv``, ``ranks.csv``, ``eval_noise.csv`` and
``statistics.md``, a page a person reads (and pastes from) beside the tables.

Rendering only: everything here formats an :class:`~disent_bench.report.analysis.Analysis`; it decides
no number. What could not be computed is said where the number would have been.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from disent_bench._io import atomic_path, atomic_write_text
from disent_bench.report.analysis import ALL_DATASETS, Analysis, RankGroup
from disent_bench.report.runs import HEADLINE, SECTION_COLUMNS, section_rows, section_title
from disent_bench.report.tables import digits

METHODS = (
    "**Probability of improvement** P(A > B): the probability that a run of A scores better than a run of B "
    "(the Mann-Whitney U statistic over n_A n_B, ties counting half; \"better\" is lower for reconstruction), "
    "over every run of a family's sweep or of a setting's seeds, with a 95% percentile bootstrap interval "
    "(A and B resampled apart, 2,000 resamples; none with fewer than 3 runs a side; \"every pair\": every run "
    "of A beats (1.00) or loses to (0.00) every run of B, where the interval would collapse). 0.5: no difference. "
    "Over several datasets: the mean of the per-dataset values, each dataset weighted equally "
    "(Agarwal et al. 2021). "
    "**How much the model matters**: the metric's sum of squares over runs split into family, hyper-parameter "
    "value within the family, and seed (the rest), sequentially (type I for unbalanced designs); shares of "
    "the observed variation, not variance components: with few seeds, seed noise also inflates the other two "
    "(Locatello et al. 2019; Bouthillier et al. 2021). "
    "**Ranks across datasets**: each family's average rank over datasets by its median (1 = best), the "
    "Friedman test and the Nemenyi critical difference at 5% (Demšar 2006); two families: the Wilcoxon "
    "signed-rank test instead.")


def _number(value: float, places: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{places}f}"


def _improvement_cell(p: float, low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return f"{p:.2f} (n < 3)"
    if p in (0.0, 1.0) and low == high == p:
        # Every resample agrees because every pair does: say that, not a certain-looking [1.00, 1.00].
        return f"{p:.2f} (every pair)"
    return f"{p:.2f} [{low:.2f}, {high:.2f}]"


def improvement_matrix(pairs: pd.DataFrame, metric: str, order: list[str]) -> list[str]:
    """A Markdown table of P(row > column) for one metric."""
    part = pairs[pairs["metric"] == metric]
    cells = {(r.a, r.b): _improvement_cell(r.p, r.low, r.high) for r in part.itertuples()}
    names = [n for n in order if any(n in (a, b) for a, b in cells)]
    lines = ["| P(row > column) | " + " | ".join(names) + " |", "|:---|" + "---:|" * len(names)]
    for a in names:
        lines.append(f"| {a} | " + " | ".join("" if a == b else cells.get((a, b), "–") for b in names) + " |")
    return lines


def variance_lines(shares: pd.DataFrame) -> list[str]:
    lines = ["| Metric | family | hyper-parameter (within family) | seed (rest) | runs | not estimable because |",
             "|:---|---:|---:|---:|---:|:---|"]
    for r in shares.itertuples():
        pct = [("–" if math.isnan(v) else f"{100 * v:.0f}%") for v in (r.family, r.setting, r.seed)]
        lines.append(f"| {HEADLINE.get(r.metric, r.metric)} | {' | '.join(pct)} | {r.n_runs} | {r.note} |")
    return lines


def rank_lines(group: RankGroup) -> list[str]:
    if group.note:
        return [f"*{group.note}.*"]
    if not group.results:
        return ["*No family has a value on every dataset: no ranks.*"]
    families = list(dict.fromkeys(f for r in group.results.values() if r.average_ranks is not None
                                  for f in r.average_ranks.index))
    metrics = list(group.results)
    lines = ["| Family | " + " | ".join(HEADLINE.get(m, m) for m in metrics) + " |",
             "|:---|" + "---:|" * len(metrics)]
    for family in families:
        cells = []
        for m in metrics:
            ranks = group.results[m].average_ranks
            cells.append(_number(float(ranks[family])) if ranks is not None and family in ranks else "–")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines.append("")
    for m, result in group.results.items():
        test = (f"{result.test}: statistic {_number(result.statistic)}, p = {_number(result.p_value, 3)}"
                if result.test and result.p_value is not None else "no test")
        cd = f"; critical difference {_number(result.critical_difference)}" if result.critical_difference else ""
        note = f" ({result.note})" if result.note else ""
        lines.append(f"- {HEADLINE.get(m, m)}: {test}{cd}; {result.method}{note}")
    return lines


def statistics_markdown(analysis: Analysis, provenance: list[str], sections: list[dict],
                        orders: dict[str, list[str]]) -> str:
    """statistics.md: per section the variance shares and the families' probabilities of improvement,
    then the averages and ranks across datasets, then the evaluation noise."""
    lines = ["# disent-bench statistics", ""] + [f"- {line}" for line in provenance] + ["", METHODS]
    pairs = analysis.improvement
    for section in sections:
        title = section_title(section)
        lines += ["", f"## {title}", "", "### How much the model matters", ""]
        shares = section_rows(analysis.variance, section) if not analysis.variance.empty else analysis.variance
        lines += variance_lines(shares) if not shares.empty else ["*No headline metric has values here.*"]
        families = section_rows(pairs, section)
        families = families[families["level"] == "family"]
        lines += ["", "### Probability of improvement between families (all runs of each sweep)", ""]
        if families.empty:
            lines.append("*One family here: nothing to compare.*")
        for metric in dict.fromkeys(families["metric"]):
            lines += [f"**{HEADLINE.get(metric, metric)}**", ""]
            lines += improvement_matrix(families, metric, orders.get(title, [])) + [""]
        lines.append("Pairs of settings: improvement.csv (level = setting).")
    for group in analysis.ranks:
        name = ", ".join(f"{k} {v}" for k, v in group.group.items())
        lines += ["", f"## Across datasets: {name}", ""]
        if len(group.datasets) > 1:
            average = pairs[pairs["dataset"].astype(str).str.startswith(ALL_DATASETS)]
            for key, value in group.group.items():
                average = average[average[key] == value]
            lines += [f"Datasets: {', '.join(group.datasets)}.", "", "### Average probability of improvement", ""]
            order = list(dict.fromkeys([*average["a"], *average["b"]]))
            for metric in dict.fromkeys(average["metric"]):
                lines += [f"**{HEADLINE.get(metric, metric)}**", ""] + improvement_matrix(average, metric, order) + [""]
            lines += ["### Ranks", ""]
        lines += rank_lines(group)
    lines += ["", "## Evaluation noise apart from training noise", ""] + noise_lines(analysis)
    if analysis.notes:
        lines += [""] + [f"*{note}.*" for note in analysis.notes]
    return "\n".join(lines) + "\n"


def noise_lines(analysis: Analysis) -> list[str]:
    """The evaluation-noise table, or why there is none."""
    if analysis.noise.empty:
        return ["*Each model was scored once ([eval] repeats = 1): set repeats = k in the grid to score every "
                "saved model with k evaluation seeds and compare the two sources of noise.*"]
    lines = ["| Section | Metric | repeats | std over evaluation seeds | std over training seeds | runs |",
             "|:---|:---|---:|---:|---:|---:|"]
    for r in analysis.noise.itertuples():
        section = {k: getattr(r, k) for k in SECTION_COLUMNS}
        places = digits(r.metric) + 1
        lines.append(f"| {section_title(section)} | {HEADLINE.get(r.metric, r.metric)} | {r.repeats} | "
                     f"{_number(r.std_over_evaluation_seeds, places)} | "
                     f"{_number(r.std_over_training_seeds, places)} | {r.runs} |")
    return lines


def ranks_frame(groups: list[RankGroup]) -> pd.DataFrame:
    """ranks.csv: a row per group, metric and family: average rank, test, statistic, p, CD, method, note."""
    rows = []
    for group in groups:
        if group.note or not group.results:
            rows.append({**group.group, "datasets": len(group.datasets), "note": group.note or "no common family"})
            continue
        for metric, result in group.results.items():
            ranks = result.average_ranks if result.average_ranks is not None else pd.Series(dtype=float)
            for family, rank in ranks.items():
                rows.append({**group.group, "datasets": len(group.datasets), "metric": metric, "family": family,
                             "average_rank": float(rank), "test": result.test, "statistic": result.statistic,
                             "p_value": result.p_value, "critical_difference": result.critical_difference,
                             "method": result.method, "note": result.note})
    return pd.DataFrame(rows)


def write_analysis(analysis: Analysis, provenance: list[str], sections: list[dict],
                   orders: dict[str, list[str]], out_dir: Path) -> dict[str, Path]:
    """Write the analysis' CSVs and statistics.md atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {"improvement.csv": analysis.improvement, "variance.csv": analysis.variance,
              "ranks.csv": ranks_frame(analysis.ranks)}
    if not analysis.noise.empty:
        frames["eval_noise.csv"] = analysis.noise
    paths = {}
    for name, frame in frames.items():
        paths[name] = out_dir / name
        with atomic_path(paths[name]) as tmp:
            frame.to_csv(tmp, index=False)
    paths["statistics.md"] = out_dir / "statistics.md"
    atomic_write_text(paths["statistics.md"], statistics_markdown(analysis, provenance, sections, orders))
    return paths
