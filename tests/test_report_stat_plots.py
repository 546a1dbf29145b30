"""The statistics figures (disent_bench.report.stat_plots): each writes a PNG and a PDF, draws nothing from
nothing, copes with NaN and with a single family; the critical-difference groups on hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from disent_bench.report import stat_plots
from disent_bench.report.stat_plots import (
    cd_groups,
    critical_difference,
    critical_differences,
    every_run,
    improvement_heatmaps,
    variance_shares,
)

SECTION = {"dataset": "dsprites", "source": "synthetic", "preset": "fast", "metric_settings": "preset",
           "representation": "mean"}
METRICS = ["mig.score", "sap.score", "reconstruction.bce"]
FAMILIES = ["VAE", "β-VAE", "FactorVAE"]


def _written(paths) -> None:
    assert paths is not None and set(paths) == {"png", "pdf"}
    assert paths["png"].suffix == ".png" and paths["pdf"].suffix == ".pdf"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"


def _runs(families=FAMILIES, settings=2, seeds=3) -> pd.DataFrame:
    """families x settings x seeds runs with every metric column."""
    rng = np.random.default_rng(0)
    rows = []
    for f, family in enumerate(families):
        for s in range(settings):
            for seed in range(seeds):
                rows.append({"family": family, "label": f"{family} (β = {s + 1})", "seed": seed,
                             "mig.score": 0.2 + 0.1 * f + 0.05 * s + rng.normal(0, 0.02),
                             "sap.score": 0.3 + 0.05 * f + rng.normal(0, 0.02),
                             "reconstruction.bce": 60 + 3 * s + rng.normal(0, 1)})
    return pd.DataFrame(rows)


def _improvement(families=FAMILIES, metrics=("mig.score", "sap.score"), intervals=True) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        for a, b in itertools.permutations(families, 2):
            p = 0.5 + 0.2 * (families.index(a) - families.index(b)) / len(families)
            rows.append({"metric": metric, "a": a, "b": b, "p": p,
                         "low": p - 0.1 if intervals else math.nan, "high": p + 0.1 if intervals else math.nan})
    return pd.DataFrame(rows)


def _shares() -> pd.DataFrame:
    return pd.DataFrame({"metric": METRICS, "family": [0.6, 0.02, 0.8], "setting": [0.25, 0.5, math.nan],
                         "seed": [0.15, 0.48, 0.2]})


# ------------------------------------------------------------------------------------------------ every run

def test_every_run_writes_png_and_pdf(tmp_path):
    paths = every_run(_runs(), SECTION, METRICS, tmp_path)
    _written(paths)
    assert paths["png"].name == "every_run-dsprites-synthetic-fast-preset-mean.png"


def test_every_run_nothing_to_draw(tmp_path):
    assert every_run(_runs().iloc[:0], SECTION, METRICS, tmp_path) is None
    assert every_run(_runs(), SECTION, [], tmp_path) is None
    assert every_run(_runs(), SECTION, ["dci.disentanglement"], tmp_path) is None  # not a column
    assert every_run(_runs().assign(**{"mig.score": math.nan}), SECTION, ["mig.score"], tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_every_run_nan_and_single_family(tmp_path):
    runs = _runs()
    runs.loc[::2, "mig.score"] = math.nan
    runs.loc[runs["family"] == "FactorVAE", "sap.score"] = math.nan  # a family missing from one panel
    runs["reconstruction.bce"] = math.nan  # a metric missing everywhere: no panel
    _written(every_run(runs, SECTION, METRICS, tmp_path / "nan"))
    one = _runs(families=["β-VAE"], settings=1, seeds=1)  # one family, one run
    _written(every_run(one, SECTION, METRICS, tmp_path / "one"))
    no_label = _runs().drop(columns=["label", "seed"])
    _written(every_run(no_label, SECTION, ["mig.score"], tmp_path / "bare"))


def test_setting_labels_lose_their_family():
    assert stat_plots._short("β-VAE (β = 4)", "β-VAE") == "β = 4"
    assert stat_plots._short("VAE", "VAE") == "VAE"
    assert stat_plots._short("my model (k = 2)", "other") == "my model (k = 2)"


# ------------------------------------------------------------------------------- probability of improvement

def test_improvement_heatmaps_write_png_and_pdf(tmp_path):
    _written(improvement_heatmaps(_improvement(), "a section", FAMILIES, tmp_path, "improvement"))
    _written(improvement_heatmaps(_improvement(intervals=False), "a section", FAMILIES, tmp_path, "no_ci"))
    frame = _improvement().drop(columns=["low", "high"])  # no interval columns at all
    _written(improvement_heatmaps(frame, "a section", FAMILIES, tmp_path, "no_columns"))


def test_improvement_heatmaps_nothing_to_draw(tmp_path):
    assert improvement_heatmaps(_improvement().iloc[:0], "t", FAMILIES, tmp_path, "empty") is None
    assert improvement_heatmaps(_improvement().assign(p=math.nan), "t", FAMILIES, tmp_path, "nan") is None
    single = pd.DataFrame({"metric": ["mig.score"], "a": ["VAE"], "b": ["VAE"], "p": [0.5], "low": [0.4],
                           "high": [0.6]})
    assert improvement_heatmaps(single, "t", ["VAE"], tmp_path, "single") is None  # only the diagonal
    assert not list(tmp_path.iterdir())


def test_improvement_heatmaps_with_nan_cells_and_unlisted_family(tmp_path):
    frame = _improvement(families=[*FAMILIES, "AE"])
    frame.loc[frame.index[::3], "p"] = math.nan
    frame.loc[frame.index[::2], ["low", "high"]] = math.nan
    frame.loc[frame["metric"] == "sap.score", "p"] = math.nan  # a metric with no value: no panel
    _written(improvement_heatmaps(frame, "a section", FAMILIES, tmp_path, "improvement"))  # AE not in order


# ------------------------------------------------------------------------------------ critical difference

def test_cd_groups_hand_worked():
    ranks = {"A": 1.0, "B": 1.8, "C": 2.6, "D": 3.9}
    # CD 1: |A-B| = |B-C| = 0.8 < 1, |A-C| = 1.6 and |C-D| = 1.3 are not: two overlapping pairs, D alone.
    assert cd_groups(ranks, 1.0) == [("A", "B"), ("B", "C")]
    # CD 2: A, B, C all within 1.6; C-D 1.3; B-D 2.1 is not: {A, B, C} and {C, D}.
    assert cd_groups(ranks, 2.0) == [("A", "B", "C"), ("C", "D")]
    assert cd_groups(ranks, 3.0) == [("A", "B", "C", "D")]  # everything within 2.9
    assert cd_groups(ranks, 0.5) == []  # every pair differs
    assert cd_groups(ranks, None) == [] and cd_groups(ranks, math.nan) == []
    # "less than CD": a difference of exactly CD is significant.
    assert cd_groups({"A": 1.0, "B": 2.0, "C": 2.5}, 1.0) == [("B", "C")]


def test_cd_groups_order_and_subsets():
    # Given in any order; a group inside a larger one is not drawn; NaN ranks are left out.
    ranks = {"D": 4.0, "B": 2.0, "A": 1.0, "C": 2.5, "E": math.nan}
    # A-B 1.0, A-C 1.5, B-C 0.5, C-D 1.5 are < 1.6; B-D 2.0 is not: {A, B, C}, {C, D}; {B, C} is in the first.
    assert cd_groups(ranks, 1.6) == [("A", "B", "C"), ("C", "D")]
    assert cd_groups(ranks, 2.1) == [("A", "B", "C"), ("B", "C", "D")]
    assert cd_groups({"A": 1.0}, 2.0) == []
    assert cd_groups({}, 2.0) == []


def _maximal_cliques_brute_force(ranks, cd):
    names = list(ranks)
    cliques = [set(c) for k in range(2, len(names) + 1) for c in itertools.combinations(names, k)
               if all(abs(ranks[a] - ranks[b]) < cd for a, b in itertools.combinations(c, 2))]
    return {frozenset(c) for c in cliques if not any(c < d for d in cliques)}


def test_cd_groups_are_the_maximal_cliques():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(2, 8))
        ranks = {f"m{i}": float(r) for i, r in enumerate(rng.uniform(1, k, k).round(2))}
        cd = float(rng.uniform(0.2, 3.0))
        groups = cd_groups(ranks, cd)
        assert {frozenset(g) for g in groups} == _maximal_cliques_brute_force(ranks, cd)
        for g in groups:  # each group in rank order
            assert [ranks[f] for f in g] == sorted(ranks[f] for f in g)


def test_critical_difference_writes_png_and_pdf(tmp_path):
    ranks = {"AE": 3.6, "VAE": 2.9, "β-VAE": 1.5, "FactorVAE": 2.0}
    _written(critical_difference(ranks, 1.2, "MIG", tmp_path, "cd", subtitle="Friedman p = 0.01"))
    _written(critical_difference(ranks, None, "MIG", tmp_path, "cd_none"))  # ranks only
    _written(critical_difference(ranks, 10.0, "MIG", tmp_path, "cd_long"))  # a CD longer than the axis
    _written(critical_difference({"VAE": 1.0}, 0.5, "MIG", tmp_path, "cd_single"))  # one family
    _written(critical_difference({**ranks, "AE": math.nan}, math.nan, "MIG", tmp_path, "cd_nan"))


def test_critical_differences_panels(tmp_path):
    ranks = {"AE": 3.6, "VAE": 2.9, "β-VAE": 1.5, "FactorVAE": 2.0}
    per_metric = {"mig.score": (ranks, 1.2), "sap.score": (ranks, None), "reconstruction.bce": ({}, 1.0)}
    _written(critical_differences(per_metric, "a section", tmp_path, "cds", subtitle="Nemenyi, α = 0.05"))


def test_critical_difference_nothing_to_draw(tmp_path):
    assert critical_difference({}, 1.0, "t", tmp_path, "empty") is None
    assert critical_difference({"A": math.nan}, 1.0, "t", tmp_path, "nan") is None
    assert critical_differences({}, "t", tmp_path, "none") is None
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------- variance shares

def test_variance_shares_write_png_and_pdf(tmp_path):
    _written(variance_shares(_shares(), "a section", tmp_path, "shares"))
    shares = _shares()
    shares.loc[1, ["family", "setting", "seed"]] = math.nan  # a metric not estimable at all
    _written(variance_shares(shares, "a section", tmp_path, "shares_nan"))
    _written(variance_shares(_shares().drop(columns=["setting"]), "a section", tmp_path, "no_setting"))


def test_variance_shares_nothing_to_draw(tmp_path):
    assert variance_shares(_shares().iloc[:0], "t", tmp_path, "empty") is None
    nan = _shares().assign(family=math.nan, setting=math.nan, seed=math.nan)
    assert variance_shares(nan, "t", tmp_path, "nan") is None
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("n", [1, 7])
def test_variance_shares_any_number_of_metrics(tmp_path, n):
    shares = pd.DataFrame({"metric": [f"m{i}" for i in range(n)], "family": 0.5, "setting": 0.3, "seed": 0.2})
    _written(variance_shares(shares, "a section", tmp_path, "shares"))
