"""Figures of the statistics layer (PNG for the page, PDF for a paper), in the style of :mod:`plots`.

* :func:`every_run`: every run shown, as in the study's own figures: a panel per headline metric, the
  families along x, each run a point (settings of one family side by side, shaded light to dark) over a
  light box and violin of the family's runs;
* :func:`improvement_heatmaps`: the probability of improvement P(A > B) of each family A (row) over each
  family B (column), a panel per metric, on a diverging scale centred at 0.5;
* :func:`critical_differences` / :func:`critical_difference`: critical-difference diagrams (Demšar 2006,
  "Statistical comparisons of classifiers over multiple data sets", JMLR 7): average ranks on an axis,
  the critical difference as a bar, and thick lines joining the families that are not significantly
  different (:func:`cd_groups`);
* :func:`variance_shares`: how much the model matters: the share of the variance of each metric over
  runs explained by the family, by its hyper-parameter (within family) and by the seed (residual).

The numbers come from the statistics layer; these functions only draw them. Each returns
``save_figure``'s ``{"png": path, "pdf": path}``, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.colors  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from disent_bench.report.analysis import ALL_DATASETS, Analysis  # noqa: E402
from disent_bench.report.plots import family_styles, save_figure, slug  # noqa: E402
from disent_bench.report.runs import (  # noqa: E402
    HEADLINE,
    family_names,
    headline_columns,
    lower_is_better,
    section_rows,
    section_title,
    sections,
)

#: Colours of the three variance components (Okabe & Ito's colour-blind-safe palette; the residual grey).
SHARE_COLORS = {"family": "#0072B2", "setting": "#E69F00", "seed": "#BBBBBB"}
SHARE_LABELS = {"family": "family", "setting": "hyper-parameter (within family)", "seed": "seed (residual)"}
#: Segments narrower than this share are not annotated with their percentage.
MIN_ANNOTATED_SHARE = 0.05


def _label(column: str) -> str:
    return HEADLINE.get(column, column)


def _direction(column: str) -> str:
    return "↓ lower is better" if lower_is_better(column) else "↑ higher is better"


def _shade(colour: str, t: float) -> tuple[float, float, float]:
    """``colour`` mixed with white (t < 0) or black (t > 0); |t| <= 1."""
    rgb = np.asarray(matplotlib.colors.to_rgb(colour))
    target = np.zeros(3) if t > 0 else np.ones(3)
    return tuple(rgb + (target - rgb) * abs(t))


def _shades(colour: str, n: int) -> list[tuple[float, float, float]]:
    """``n`` shades of ``colour``, light to dark (the colour itself when n == 1)."""
    if n == 1:
        return [matplotlib.colors.to_rgb(colour)]
    return [_shade(colour, t) for t in np.linspace(-0.55, 0.40, n)]


def _short(label: str, family: str) -> str:
    """A setting's label without its family's name: "β-VAE (β = 4)" -> "β = 4"."""
    label = str(label)
    if label.startswith(family):
        rest = label[len(family):].strip()
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1].strip()
        return rest or label
    return label


def _finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------- every run

def every_run(part: pd.DataFrame, section: dict, metrics: list[str], out_dir: Path) -> dict[str, Path] | None:
    """Every run of a section as a point: a panel per metric, x = family (in order of first appearance),
    settings of a family side by side (light to dark, in order of appearance), over a light box (median,
    quartiles) of the family's runs and, where it has four runs or more, a light violin. NaN: not drawn,
    counted in the title; a family without a value in a metric keeps its place, marked "no value"."""
    if part is None or part.empty or "family" not in part.columns:
        return None
    part = part[part["family"].notna()]
    columns = [c for c in dict.fromkeys(metrics) if c in part.columns and
               pd.to_numeric(part[c], errors="coerce").notna().any()]
    if not columns:
        return None
    part = part.assign(**{c: pd.to_numeric(part[c], errors="coerce") for c in columns})
    if "label" not in part.columns:
        part = part.assign(label=part["family"])
    part = part.assign(label=part["label"].where(part["label"].notna(), part["family"]).astype(str))
    families = list(dict.fromkeys(part["family"]))
    styles = family_styles(families)
    settings = {f: list(dict.fromkeys(part.loc[part["family"] == f, "label"])) for f in families}

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    width = max(3.0, 0.62 * len(families) + 1.1)
    ncols = max(1, min(len(columns), 4, int(15 // width)))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 2.9 * nrows + 0.7), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)
    rotate = len(families) > 3 and max(len(f) for f in families) * len(families) > 4.5 * width
    for ax, column in zip(axes.flat, columns):
        for i, family in enumerate(families):
            rows = part[part["family"] == family]
            colour, marker = styles[family]
            values = rows[column].dropna().to_numpy()
            if len(values) >= 4 and np.unique(values).size >= 3:
                body = ax.violinplot(values, positions=[i], widths=0.84, showextrema=False)
                for patch in body["bodies"]:
                    patch.set_facecolor(colour)
                    patch.set_edgecolor(colour)
                    patch.set_alpha(0.16)
                    patch.set_zorder(1)
            if not len(values):  # say so rather than leave a silent gap
                ax.text(i, 0.02, "no value", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=7.5, color="#888888", style="italic")
            else:
                ax.boxplot(values, positions=[i], widths=0.5, showfliers=False, showcaps=False,
                           patch_artist=True, zorder=2, manage_ticks=False,
                           boxprops={"facecolor": (*matplotlib.colors.to_rgb(colour), 0.10),
                                     "edgecolor": (*matplotlib.colors.to_rgb(colour), 0.55), "lw": 0.8},
                           whiskerprops={"color": colour, "alpha": 0.55, "lw": 0.8},
                           medianprops={"color": "#222222", "lw": 1.3})
            labels = settings[family]
            step = min(0.2, 0.64 / max(len(labels) - 1, 1)) if len(labels) > 1 else 0.0
            for j, (label, shade) in enumerate(zip(labels, _shades(colour, len(labels)))):
                run_values = rows.loc[rows["label"] == label, column].dropna().to_numpy()
                if not len(run_values):
                    continue
                jitter = rng.uniform(-1, 1, len(run_values)) * (step / 4 if step else 0.09)
                x = i + (j - (len(labels) - 1) / 2) * step + jitter
                ax.scatter(x, run_values, s=22, color=shade, marker=marker, zorder=3,
                           edgecolor=_shade(colour, 0.55), lw=0.5, alpha=0.95)
        ax.set_xticks(range(len(families)))
        ax.set_xticklabels(families, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                           fontsize=9)
        ax.set_xlim(-0.6, len(families) - 0.4)
        ax.set_title(f"{_label(column)}  ({_direction(column)})", fontsize=10)
        ax.set_ylabel(_label(column), fontsize=9)
        ax.grid(axis="x", visible=False)
    by_setting = part.groupby("label", sort=False)
    n_runs = by_setting["seed"].nunique() if "seed" in part.columns else by_setting.size()
    n_text = f"{n_runs.min()}–{n_runs.max()}" if n_runs.min() != n_runs.max() else f"{n_runs.min()}"
    unit = ("seed" if n_runs.max() == 1 else "seeds") if "seed" in part.columns else \
        ("run" if n_runs.max() == 1 else "runs")
    missing = int(part[columns].isna().sum().sum())
    n_text = f"{n_text} {unit} per setting" + (f"; {missing} missing values not shown" if missing else "")
    chars = int(fig.get_figwidth() * 12)  # an 11 pt line holds about 12 characters an inch
    heading = [f"Every run shown (n = {n_text}): a point per run over its family's violin "
               "and box", section_title(section)]
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in heading), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.99))
    spare = axes.flat[len(columns)] if len(columns) < axes.size else None
    _settings_legend(fig, families, settings, styles, spare)
    return save_figure(fig, out_dir, f"every_run-{slug(*section.values())}")


def _settings_legend(fig: plt.Figure, families: list[str], settings: dict[str, list[str]],
                     styles: dict[str, tuple[str, str]], spare: plt.Axes | None) -> None:
    """A column per family with several settings: its settings, left to right; in the first unused panel
    when it fits there, else under the panels."""
    several = [f for f in families if len(settings[f]) > 1]
    if not several:
        return
    depth = max(len(settings[f]) for f in several)
    blank = matplotlib.lines.Line2D([], [], ls="", marker="")
    handles, labels, bold = [], [], []
    for family in several:  # legend columns fill top to bottom: pad each family to the same depth
        colour, marker = styles[family]
        bold.append(len(labels))
        handles.append(blank)
        labels.append(family)
        for label, shade in zip(settings[family], _shades(colour, len(settings[family]))):
            handles.append(matplotlib.lines.Line2D([], [], ls="", marker=marker, color=shade, ms=6,
                                                   markeredgecolor=_shade(colour, 0.55), markeredgewidth=0.5))
            labels.append(_short(label, family))
        for _ in range(depth - len(settings[family])):
            handles.append(blank)
            labels.append("")

    def draw(**where):
        legend = fig.legend(handles, labels, ncol=len(several), frameon=False, fontsize=8, handletextpad=0.3,
                            columnspacing=1.0, title="settings of each family, left to right in its column",
                            title_fontsize=9, **where)
        for k in bold:
            legend.get_texts()[k].set_fontweight("bold")
        return legend

    if spare is not None:
        box = spare.get_position()  # the unused panel, its tick labels' room and the margin to its right
        x0 = max((ax.get_position().x1 for ax in fig.axes if ax.get_visible() and
                  ax.get_position().x1 < box.x0 and ax.get_position().y0 < box.y1 and
                  ax.get_position().y1 > box.y0), default=0.0) + 0.015
        x1 = 0.995
        legend = draw(loc="center", bbox_to_anchor=((x0 + x1) / 2, box.y0 + box.height / 2))
        fig.canvas.draw()
        inside = legend.get_window_extent().transformed(fig.transFigure.inverted())
        if inside.width <= x1 - x0 and inside.height <= box.height * 1.15:
            return
        legend.remove()
    draw(loc="upper center", bbox_to_anchor=(0.5, 0.0))


# ------------------------------------------------------------------------------ probability of improvement

def improvement_heatmaps(frame: pd.DataFrame, title: str, order: list[str], out_dir: Path,
                         stem: str) -> dict[str, Path] | None:
    """P(A > B) per metric as heatmaps in one figure (a panel per metric): rows A, columns B in ``order``
    (families only in ``frame`` follow), each cell annotated with p and, where it fits, its interval."""
    if frame is None or frame.empty:
        return None
    frame = frame.assign(p=pd.to_numeric(frame["p"], errors="coerce"))
    frame = frame[frame["a"] != frame["b"]]
    metrics = [m for m in dict.fromkeys(frame["metric"]) if frame.loc[frame["metric"] == m, "p"].notna().any()]
    if not metrics:
        return None
    seen = set(frame["a"]) | set(frame["b"])
    families = [f for f in dict.fromkeys([*order, *frame["a"], *frame["b"]]) if f in seen]
    n = len(families)
    index = {f: i for i, f in enumerate(families)}
    bounds = ["low", "high"]
    with_interval = n <= 6 and set(bounds) <= set(frame.columns) and \
        frame[bounds].apply(pd.to_numeric, errors="coerce").notna().all(axis=1).any()

    # Geometry in inches: square cells, tick labels only on the outer panels (one order everywhere).
    cell = 0.62 if with_interval else 0.4
    side = cell * n
    names = max(len(f) for f in families) * 0.072
    left, bottom = names + 0.45, names * 0.72 + 0.5  # y tick labels and label; x tick labels at 40 degrees
    gap_x, gap_y, heading = 0.25, 0.4, 0.3
    ncols = max(1, min(len(metrics), 4, int(12.5 // (side + gap_x))))
    nrows = math.ceil(len(metrics) / ncols)
    cbar_w = 1.6
    content = left + ncols * side + (ncols - 1) * gap_x + cbar_w
    width = content
    chars = max(50, int(width * 12.5))  # a 10 pt line holds about 12.5 characters an inch
    lines = textwrap.wrap(title, chars) + textwrap.wrap(
        "Probability of improvement P(A\u00a0>\u00a0B): chance that a run of A (row) beats a run of B (column) "
        "in the metric's better direction; 0.5\u00a0=\u00a0even" +  # no-break spaces: never split there
        ("; small print: its interval" if with_interval else ""), chars)
    width = max(width, chars / 12.5)
    shift = (width - content) / 2  # a narrow figure widened for its title: the panels centred
    top = 0.19 * len(lines) + 0.2
    height = top + nrows * (heading + side) + (nrows - 1) * gap_y + bottom
    sns.set_theme(style="white", context="paper", font_scale=1.0)
    fig = plt.figure(figsize=(width, height))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#f2f2f2")  # ColorBrewer's diverging: colour-blind safe
    image = None
    for k, metric in enumerate(metrics):
        r, c = divmod(k, ncols)
        x0 = shift + left + c * (side + gap_x)
        y0 = height - top - heading - r * (heading + side + gap_y) - side
        ax = fig.add_axes((x0 / width, y0 / height, side / width, side / height))
        outer_bottom = k + ncols >= len(metrics)  # no panel below it
        rows = frame[frame["metric"] == metric]
        p = np.full((n, n), np.nan)
        low, high = np.full((n, n), np.nan), np.full((n, n), np.nan)
        for row in rows.itertuples(index=False):
            i, j = index[row.a], index[row.b]
            p[i, j] = row.p
            if with_interval:
                low[i, j] = pd.to_numeric(row.low, errors="coerce")
                high[i, j] = pd.to_numeric(row.high, errors="coerce")
        image = ax.imshow(np.ma.masked_invalid(p), cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal")
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                if not math.isfinite(p[i, j]):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="#888888")
                    continue
                colour = "white" if abs(p[i, j] - 0.5) > 0.3 else "#111111"
                has_interval = math.isfinite(low[i, j]) and math.isfinite(high[i, j])
                ax.text(j, i - (0.14 if has_interval else 0.0), f"{p[i, j]:.2f}", ha="center", va="center",
                        fontsize=9 if with_interval else 7.5, color=colour)
                if has_interval:
                    ax.text(j, i + 0.24, f"{low[i, j]:.2f}–{high[i, j]:.2f}", ha="center", va="center",
                            fontsize=6, color=colour)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(families if outer_bottom else [], rotation=40, ha="right", fontsize=8.5,
                           rotation_mode="anchor")
        ax.set_yticklabels(families if c == 0 else [], fontsize=8.5)
        ax.tick_params(length=2, pad=2)
        ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1.2)
        ax.tick_params(which="minor", length=0)
        if c == 0:
            ax.set_ylabel("A (row)", fontsize=9)
        if outer_bottom:
            ax.set_xlabel("B (column)", fontsize=9)
        ax.set_title(f"{_label(metric)}  ({_direction(metric)})", fontsize=9.5, pad=4)
    fig.suptitle("\n".join(lines), fontsize=10, y=1 - 0.1 / height, va="top")
    bar_h = min(max(side, 1.6), 3.0)
    cax = fig.add_axes(((shift + content - cbar_w + 0.2) / width, (height - top - heading - bar_h) / height,
                        0.14 / width, bar_h / height))
    bar = fig.colorbar(image, cax=cax, ticks=[0.0, 0.25, 0.5, 0.75, 1.0])
    bar.ax.set_yticklabels(["0: B always better", "0.25", "0.5: even", "0.75", "1: A always better"],
                           fontsize=8)
    bar.ax.set_title("P(A > B)", fontsize=9, pad=12)
    return save_figure(fig, out_dir, stem)


# ----------------------------------------------------------------------------------- critical difference

def cd_groups(ranks: Mapping[str, float], cd: float | None) -> list[tuple[str, ...]]:
    """The groups of families joined in a critical-difference diagram: the maximal sets (of two or more)
    whose average ranks all differ by less than ``cd`` (maximal cliques of "not significantly
    different"), each in rank order, the groups ordered by their best rank. No ``cd`` -> no groups.

    On a line, "|r_i - r_j| < cd" makes every maximal clique a run of consecutive families in rank
    order: from each family, the families after it within cd; a run inside an earlier one is not maximal.
    """
    if not _finite(cd):
        return []
    items = sorted(((float(r), f) for f, r in ranks.items() if _finite(r)), key=lambda t: t[0])
    groups, last_end = [], -1
    for i, (rank, _) in enumerate(items):
        end = i
        while end + 1 < len(items) and items[end + 1][0] - rank < cd:
            end += 1
        if end > last_end and end > i:
            groups.append(tuple(f for _, f in items[i:end + 1]))
        last_end = max(last_end, end)
    return groups


def critical_difference(ranks: Mapping[str, float], cd: float | None, title: str, out_dir: Path, stem: str,
                        *, subtitle: str = "") -> dict[str, Path] | None:
    """One critical-difference diagram: families at their average ranks (1 = best, left), a bar of length
    ``cd`` and thick lines joining families not significantly different; ``cd=None`` draws ranks only."""
    return critical_differences({"": (ranks, cd)}, title, out_dir, stem, subtitle=subtitle)


#: Vertical layout of a diagram, in inches: above the axis (tick labels, CD bar) and below it.
_CD_TOP, _CD_TOP_NO_BAR, _CD_GROUP_STEP, _CD_ROW_STEP = 0.68, 0.32, 0.11, 0.2


def critical_differences(per_metric: Mapping[str, tuple[Mapping[str, float], float | None]], title: str,
                         out_dir: Path, stem: str, *, subtitle: str = "") -> dict[str, Path] | None:
    """Critical-difference diagrams, a panel per metric (key ``""``: one diagram without a metric heading).

    ``per_metric`` maps a metric column to (average rank per family, critical difference or None).
    """
    panels = []
    for metric, (ranks, cd) in per_metric.items():
        ranks = {f: float(r) for f, r in ranks.items() if _finite(r)}
        if ranks:
            panels.append((metric, ranks, float(cd) if _finite(cd) and float(cd) > 0 else None))
    if not panels:
        return None
    sns.set_theme(style="white", context="paper", font_scale=1.0)
    styles = family_styles(list(dict.fromkeys(f for _, ranks, _ in panels for f in ranks)))
    width = 7.2
    longest = max(len(f) for _, ranks, _ in panels for f in ranks) + 6  # "name  2.33"
    margin = min(0.3, (longest * 0.068 + 0.35) / width)  # the names' side columns, as a figure fraction
    heights = [_cd_height(ranks, cd) for _, ranks, cd in panels]
    no_cd = "no critical difference (Friedman test not significant or not computable): ranks only"
    headings = [(f"{_label(metric)}  ({_direction(metric)})" + ("" if cd is not None else f"\n{no_cd}"))
                if metric else "" for metric, _, cd in panels]
    lines = [title] + ([subtitle] if subtitle else [])
    if len(panels) == 1 and panels[0][2] is None:
        lines.append(no_cd)
    lines.append("average rank, 1 = best; a thick line joins families not significantly different (< CD)"
                 if any(cd is not None for _, _, cd in panels) else "average rank, 1 = best")
    lines = [wrapped for line in lines for wrapped in textwrap.wrap(line, 95)]
    top = 0.18 * len(lines) + 0.2
    heading_heights = [0.28 + 0.16 * (h.count("\n") + 1) if h else 0.0 for h in headings]
    total = sum(heights) + sum(heading_heights) + top
    fig = plt.figure(figsize=(width, total))
    y = total - top
    for (metric, ranks, cd), height, head, head_height in zip(panels, heights, headings, heading_heights):
        y -= head_height
        ax = fig.add_axes((margin, (y - height) / total, 1 - 2 * margin, height / total))
        y -= height
        _cd_panel(ax, ranks, cd, styles, height)
        if head:
            ax.set_title(head, fontsize=9.5, loc="center", pad=9)
    fig.suptitle("\n".join(lines), fontsize=10, y=1 - 0.08 / total, va="top")
    return save_figure(fig, out_dir, stem)


def _cd_height(ranks: Mapping[str, float], cd: float | None) -> float:
    rows = math.ceil(len(ranks) / 2)
    return ((_CD_TOP if cd is not None else _CD_TOP_NO_BAR) + 0.15 + _CD_GROUP_STEP * len(cd_groups(ranks, cd))
            + _CD_ROW_STEP * rows + 0.1)


def _cd_panel(ax: plt.Axes, ranks: dict[str, float], cd: float | None, styles: dict, height: float) -> None:
    """One diagram; y is in inches with the rank axis at 0."""
    k = len(ranks)
    lo, hi = 1.0, float(max(k, math.ceil(max(ranks.values()))))
    if hi == lo:
        hi = lo + 1.0
    top = _CD_TOP if cd is not None else _CD_TOP_NO_BAR
    ax.set_xlim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
    ax.set_ylim(top - height, top)
    ax.axis("off")
    ink = "#222222"
    ax.plot([lo, hi], [0, 0], color=ink, lw=1.2, solid_capstyle="butt")
    for t in range(int(lo), int(hi) + 1):
        ax.plot([t, t], [0, 0.07], color=ink, lw=1.0)
        ax.text(t, 0.1, str(t), ha="center", va="bottom", fontsize=8.5)
    for half in np.arange(lo + 0.5, hi, 1.0):
        ax.plot([half, half], [0, 0.04], color=ink, lw=0.7)
    if cd is not None:
        y_bar = 0.5
        end = min(lo + cd, hi)  # a CD longer than the axis is drawn to its end (its value is written)
        ax.plot([lo, end], [y_bar, y_bar], color=ink, lw=1.6, clip_on=False)
        for x in (lo, end):
            ax.plot([x, x], [y_bar - 0.04, y_bar + 0.04], color=ink, lw=1.2, clip_on=False)
        per_inch = (hi - lo) * 1.06 / (ax.get_position().width * ax.figure.get_figwidth())
        fits = end - lo > 0.75 * per_inch  # "CD = 1.23" is about 0.65 in wide
        ax.text((lo + end) / 2 if fits else end + 0.05 * per_inch, y_bar + 0.06, f"CD = {cd:.2f}",
                ha="center" if fits else "left", va="bottom", fontsize=8.5)
    groups = cd_groups(ranks, cd)
    pad = 0.012 * (hi - lo)  # a clique's line reaches a little past its end families, as in Demšar
    for g, group in enumerate(groups):
        y = -0.13 - _CD_GROUP_STEP * g
        ax.plot([ranks[group[0]] - pad, ranks[group[-1]] + pad], [y, y], color=ink, lw=3.2,
                solid_capstyle="butt", zorder=4)
    first_row = -0.15 - _CD_GROUP_STEP * len(groups) - 0.12
    ordered = sorted(ranks, key=lambda f: ranks[f])
    left = ordered[: math.ceil(k / 2)]
    right = ordered[math.ceil(k / 2):][::-1]  # the worst nearest the top: elbows never cross
    x_left, x_right = ax.get_xlim()
    for side, names, x_text, ha in (("left", left, x_left, "right"), ("right", right, x_right, "left")):
        for r, family in enumerate(names):
            rank = ranks[family]
            y = first_row - _CD_ROW_STEP * r
            ax.plot([rank, rank, x_text], [0, y, y], color="#555555", lw=0.8, zorder=2, clip_on=False)
            colour, marker = styles[family]
            ax.plot([rank], [0], ls="", marker=marker, color=colour, ms=7, markeredgecolor="white",
                    markeredgewidth=0.6, zorder=5, clip_on=False)
            text = f"{family}  {rank:.2f}" if side == "left" else f"{rank:.2f}  {family}"
            ax.text(x_text + (-1 if side == "left" else 1) * 0.01 * (hi - lo), y, text, ha=ha, va="center",
                    fontsize=9, clip_on=False)


# --------------------------------------------------------------------------------------- variance shares

def variance_shares(shares: pd.DataFrame, title: str, out_dir: Path, stem: str) -> dict[str, Path] | None:
    """How much the model matters: a stacked horizontal bar per metric (family / hyper-parameter within
    family / seed), percentages written on segments wider than 5%; a row with NaN says what is missing."""
    if shares is None or shares.empty:
        return None
    parts = list(SHARE_COLORS)
    shares = shares.assign(**{c: pd.to_numeric(shares[c], errors="coerce") if c in shares.columns else np.nan
                              for c in parts})
    if not shares[parts].notna().any().any():
        return None
    shares = shares.drop_duplicates("metric", keep="last").reset_index(drop=True)
    n = len(shares)
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    fig, ax = plt.subplots(figsize=(7.2, 0.42 * n + 1.9))
    for i, row in shares.iterrows():
        values = {c: row[c] for c in parts}
        missing = [SHARE_LABELS[c] for c in parts if not math.isfinite(values[c])]
        if len(missing) == len(parts):
            ax.text(0.5, i, "not estimable", ha="center", va="center", fontsize=8.5, color="#777777",
                    style="italic", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
            continue
        left = 0.0
        for c in parts:
            v = values[c]
            if not math.isfinite(v) or v <= 0:
                continue
            ax.barh(i, v, left=left, height=0.68, color=SHARE_COLORS[c], edgecolor="white", lw=0.8)
            if v >= MIN_ANNOTATED_SHARE:
                text_colour = "white" if c == "family" else "#111111"
                ax.text(left + v / 2, i, f"{100 * v:.0f}%", ha="center", va="center", fontsize=8.5,
                        color=text_colour)
            left += v
        if missing:
            ax.text(1.01, i, "\n".join(f"{m}:\nnot estimable" for m in missing), ha="left", va="center",
                    fontsize=7, color="#777777", transform=ax.get_yaxis_transform(), clip_on=False)
    ax.set_yticks(range(n))
    ax.set_yticklabels([_label(m) for m in shares["metric"]], fontsize=9)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of the variance over runs", fontsize=9)
    ax.grid(axis="y", visible=False)
    handles = [matplotlib.patches.Patch(color=SHARE_COLORS[c], label=SHARE_LABELS[c]) for c in parts]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False,
              fontsize=8.5, handlelength=1.4, columnspacing=1.5, borderaxespad=0.2)
    ax.set_title(f"{textwrap.fill(title, 90)}\nHow much the model matters: variance of each metric over runs "
                 "split into family, hyper-parameter and seed", fontsize=10, pad=22)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


def make_analysis_figures(analysis: Analysis, per_run: pd.DataFrame, out_dir: Path) -> list[dict]:
    """Every figure of the statistics layer for a report: per section every run, the families'
    probability of improvement and the variance shares; per group of datasets the average improvement
    and the critical-difference diagrams. Returns ``[{"section" | "group", "kind", "png", "pdf"}]``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[dict] = []
    metrics = headline_columns(per_run)
    pairs = analysis.improvement
    for section, part in sections(per_run):
        key = slug(*section.values())
        title = section_title(section)
        made = every_run(part, section, metrics, out_dir)
        if made:
            figures.append({"section": section, "kind": "every_run", **made})
        families = section_rows(pairs, section) if not pairs.empty else pairs
        if not families.empty:
            families = families[families["level"] == "family"]
            made = improvement_heatmaps(families, f"{title}, between families (all runs of each sweep)",
                                        list(dict.fromkeys(family_names(part))), out_dir, f"improvement-{key}")
            if made:
                figures.append({"section": section, "kind": "improvement", **made})
        if not analysis.variance.empty:
            shares = section_rows(analysis.variance, section)
            made = variance_shares(shares, title, out_dir,
                                   f"variance-{key}")
            if made:
                figures.append({"section": section, "kind": "variance", **made})
    for group in analysis.ranks:
        if len(group.datasets) < 2:
            continue
        name = ", ".join(str(v) for v in group.group.values())
        key = slug(*group.group.values())
        if not pairs.empty:
            average = pairs[pairs["dataset"].astype(str).str.startswith(ALL_DATASETS)]
            for column, value in group.group.items():
                average = average[average[column] == value]
            made = improvement_heatmaps(average, f"{name}: averaged over {len(group.datasets)} datasets "
                                                 f"({', '.join(group.datasets)}), each weighted equally",
                                        list(dict.fromkeys([*average["a"], *average["b"]])), out_dir,
                                        f"improvement-all-{key}")
            if made:
                figures.append({"group": group.group, "kind": "improvement_average", **made})
        per_metric = {m: ({f: float(r) for f, r in result.average_ranks.items()}, result.critical_difference)
                      for m, result in group.results.items() if result.average_ranks is not None}
        methods = "; ".join(dict.fromkeys(r.method for r in group.results.values() if r.method))
        made = critical_differences(per_metric, f"{name}: average ranks over {', '.join(group.datasets)}",
                                    out_dir, f"critical_difference-{key}", subtitle=methods) if per_metric else None
        if made:
            figures.append({"group": group.group, "kind": "critical_difference", **made})
    return figures
