"""The statistics in a report: bold by significance, probability of improvement, ranks across datasets,
variance shares, evaluation noise; and what a report says when a grid cannot support one of them."""

from __future__ import annotations

import pandas as pd
import pytest

from disent_bench.report import make_report
from disent_bench.report.analysis import analyse, improvement, variance
from disent_bench.report.runs import load_runs
from disent_bench.report.tables import build_tables
from report_zoo import write_run


def _family_runs(out, *, values: dict[str, list[float]], dataset: str = "dsprites", prefix: str = ""):
    """One setting per family, a run per value (seed = position), MIG = the value, BCE = 100 - 10 x value."""
    models = {"ae": ("ae", {}, {}), "vae": ("vae", {}, {}), "beta_vae": ("beta_vae", {"beta": 4}, {"beta": 4.0})}
    for name, scores in values.items():
        model, grid_params, hparams = models[name]
        for seed, value in enumerate(scores):
            write_run(out, f"{prefix}{dataset}-{name}-s{seed}", model, grid_params, hparams, seed,
                      {"mean": {"mig.score": value, "reconstruction.bce": 100.0 - 10 * value}}, dataset=dataset)


def test_bold_marks_rows_not_worse_than_the_best(tmp_path):
    out = tmp_path / "results"
    # AE and VAE tie statistically (interleaved values); the beta-VAE is clearly worse on MIG.
    _family_runs(out, values={"ae": [0.50, 0.52, 0.54, 0.56, 0.58], "vae": [0.51, 0.53, 0.55, 0.57, 0.59],
                              "beta_vae": [0.10, 0.11, 0.12, 0.13, 0.14]})
    tables = build_tables(load_runs(out))
    for table in (*tables.settings, *tables.by_family):
        labels = table.rows["label" if table.kind == "settings" else "family"].tolist()
        bold = dict(zip(labels, table.best["mig.score"]))
        assert [name for name, flag in bold.items() if flag] == ["AE", "VAE"], table.kind
        # Lower BCE is better: AE and VAE (BCE about 94.5) tie for it, the beta-VAE (98.8) is clearly worse.
        bce = dict(zip(labels, table.best["reconstruction.bce"]))
        assert [name for name, flag in bce.items() if flag] == ["AE", "VAE"]
        assert not table.notes
    report = make_report(out, pictures=False, progress=False)
    text = (report.directory / "summary.md").read_text()
    assert "| AE | 5 | **0.540 [" in text and "| β-VAE (β = 4) | 5 | 0.120 [" in text


def test_probability_of_improvement_in_the_report(tmp_path):
    out = tmp_path / "results"
    _family_runs(out, values={"ae": [0.5, 0.6, 0.7], "vae": [0.1, 0.6, 0.2]})
    pairs, notes = improvement(load_runs(out))
    row = pairs[(pairs["level"] == "family") & (pairs["metric"] == "mig.score") & (pairs["a"] == "AE")].iloc[0]
    # AE beats VAE in 7 of 9 pairs, ties once (0.6 vs 0.6: half), loses once (0.5 vs 0.6) -> 7.5 / 9.
    assert row["b"] == "VAE" and row["p"] == pytest.approx(7.5 / 9)
    assert row["low"] <= row["p"] <= row["high"]
    bce = pairs[(pairs["metric"] == "reconstruction.bce") & (pairs["a"] == "AE")].iloc[0]
    assert bce["p"] == pytest.approx(7.5 / 9)  # lower BCE is better: the same order
    report = make_report(out, pictures=False, progress=False)
    csv = pd.read_csv(report.directory / "improvement.csv")
    assert {"a", "b", "p", "low", "high", "level", "metric"} <= set(csv.columns)
    assert any(f["kind"] == "improvement" for f in report.figures)


def test_one_dataset_one_seed_says_what_it_cannot(tmp_path):
    out = tmp_path / "results"
    _family_runs(out, values={"ae": [0.5], "vae": [0.4], "beta_vae": [0.3]})
    report = make_report(out, pictures=False, progress=False)
    statistics_md = (report.directory / "statistics.md").read_text()
    assert "ranks across datasets need runs on more than one dataset" in statistics_md
    assert "(n < 3)" in statistics_md  # P(A > B) from one run a side: no interval
    assert "repeats = 1" in statistics_md  # no evaluation noise without repeats
    shares = pd.read_csv(report.directory / "variance.csv")
    assert shares["note"].str.contains("one").all() and shares["seed"].isna().all()
    summary = (report.directory / "summary.md").read_text()
    assert "not bolded: fewer than 3 values" in summary
    for name in ("summary.md", "families.md", "statistics.md", "improvement.csv", "variance.csv", "ranks.csv",
                 "index.html"):
        assert (report.directory / name).is_file(), name
    assert {f["kind"] for f in report.figures} >= {"every_run", "improvement"}


def test_two_datasets_rank_families_and_average_improvement(tmp_path):
    out = tmp_path / "results"
    _family_runs(out, values={"ae": [0.5, 0.6, 0.7], "vae": [0.3, 0.35, 0.4], "beta_vae": [0.1, 0.2, 0.15]},
                 dataset="dsprites")
    _family_runs(out, values={"ae": [0.4, 0.5, 0.45], "vae": [0.6, 0.65, 0.7], "beta_vae": [0.1, 0.2, 0.15]},
                 dataset="shapes3d")
    frame = load_runs(out)
    analysis = analyse(frame, frame)
    (group,) = analysis.ranks
    assert group.datasets == ["dsprites", "shapes3d"]
    ranks = group.results["mig.score"].average_ranks
    assert ranks.to_dict() == {"AE": 1.5, "VAE": 1.5, "β-VAE": 3.0}
    average = analysis.improvement[analysis.improvement["dataset"].str.startswith("all datasets")]
    ae_vae = average[(average["metric"] == "mig.score") & (average["a"] == "AE") & (average["b"] == "VAE")].iloc[0]
    assert ae_vae["p"] == pytest.approx((1.0 + 0.0) / 2)  # each dataset weighted equally
    report = make_report(out, pictures=False, progress=False)
    kinds = {f["kind"] for f in report.figures}
    assert {"critical_difference", "improvement_average"} <= kinds
    text = (report.directory / "statistics.md").read_text()
    assert "## Across datasets" in text and "Friedman" in text
    ranks_csv = pd.read_csv(report.directory / "ranks.csv")
    assert set(ranks_csv["family"].dropna()) == {"AE", "VAE", "β-VAE"}


def test_variance_shares_of_a_family_only_effect(tmp_path):
    out = tmp_path / "results"
    # Every run of a family scores the same: the family explains everything.
    _family_runs(out, values={"ae": [0.5, 0.5, 0.5], "vae": [0.2, 0.2, 0.2], "beta_vae": [0.9, 0.9, 0.9]})
    shares = variance(load_runs(out)).set_index("metric")
    assert shares.at["mig.score", "family"] == pytest.approx(1.0)
