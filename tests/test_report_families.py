"""The report across model families: labels, order, each family's own axis, the family table.

Runs on synthetic results directories (tests/report_zoo.py): no training, so every family of the
reference study can be in it whether or not its model class is importable here.
"""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from disent_bench.errors import UserError
from disent_bench.report import make_report
from disent_bench.report import plots as report_plots
from disent_bench.report.families import describe, log_axis, varying_params
from disent_bench.report.runs import load_runs
from disent_bench.report.tables import family_summary
from report_zoo import SWEEPS, write_run, write_zoo

FAMILY_ORDER = ["AE", "VAE", "β-VAE", "FactorVAE", "β-TCVAE", "DIP-VAE-I", "DIP-VAE-II", "AnnealedVAE"]
SWEPT = FAMILY_ORDER[2:]


@pytest.mark.parametrize("model, params, label, label_tex", [
    ("ae", {}, "AE", "AE"),
    ("vae", {}, "VAE", "VAE"),
    ("beta_vae", {"beta": 4.0}, "β-VAE (β = 4)", r"$\beta$-VAE ($\beta = 4$)"),
    ("beta_tc_vae", {"beta": 6.0}, "β-TCVAE (β = 6)", r"$\beta$-TCVAE ($\beta = 6$)"),
    ("factor_vae", {"gamma": 10.0}, "FactorVAE (γ = 10)", r"FactorVAE ($\gamma = 10$)"),
    ("dip_vae_i", {"lambda_od": 5.0, "lambda_d_factor": 10.0}, "DIP-VAE-I (λ_od = 5)",
     r"DIP-VAE-I ($\lambda_{od} = 5$)"),
    ("dip_vae_ii", {"lambda_od": 20.0, "lambda_d_factor": 1.0}, "DIP-VAE-II (λ_od = 20)",
     r"DIP-VAE-II ($\lambda_{od} = 20$)"),
    ("annealed_vae", {"c_max": 25.0, "gamma": 1000.0, "iteration_threshold": 100000},
     "AnnealedVAE (C_max = 25)", r"AnnealedVAE ($C_{max} = 25$)"),
    # A fixed parameter away from the reference value is named, so the two never share a row.
    ("dip_vae_i", {"lambda_od": 5.0, "lambda_d_factor": 5.0}, "DIP-VAE-I (λ_od = 5, lambda_d_factor = 5)",
     r"DIP-VAE-I ($\lambda_{od} = 5$, lambda\_d\_factor $= 5$)"),
    ("annealed_vae", {"c_max": 5.0, "gamma": 500.0, "iteration_threshold": 100000},
     "AnnealedVAE (C_max = 5, gamma = 500)", r"AnnealedVAE ($C_{max} = 5$, gamma $= 500$)"),
])
def test_setting_labels(model, params, label, label_tex):
    setting = describe(model, params)
    assert (setting.label, setting.label_tex) == (label, label_tex)


def test_user_model_label_names_what_varies():
    runs = [{"alpha": 1.0, "kind": "x"}, {"alpha": 2.0, "kind": "x"}]
    varying = varying_params({"pkg.mod:Mine": runs})["pkg.mod:Mine"]
    assert varying == {"alpha"}  # "kind" is the same in every run: it tells nothing apart
    setting = describe("pkg.mod:Mine", runs[1], varying)
    assert (setting.label, setting.sweep_param, setting.sweep_value) == ("pkg.mod:Mine (alpha = 2)", "alpha", 2.0)
    # Two parameters varying: no single axis, both in the label.
    two = describe("pkg.mod:Mine", {"alpha": 1.0, "b": 3}, {"alpha", "b"})
    assert two.sweep_param is None and two.label == "pkg.mod:Mine (alpha = 1, b = 3)"
    # An unknown extra parameter of a known family shows only where it varies.
    assert describe("factor_vae", {"gamma": 10.0, "extra": 1}).label == "FactorVAE (γ = 10)"
    assert describe("factor_vae", {"gamma": 10.0, "extra": 1}, {"extra"}).label == "FactorVAE (γ = 10, extra = 1)"
    assert varying_params({"m": [{"a": 10}, {"a": 10.0}]})["m"] == set()  # 10 and 10.0 are one value


def test_log_axis_where_the_sweep_spans_a_decade():
    for model, (_, values, _) in SWEEPS.items():
        assert log_axis(values), model  # every reference sweep spans a decade or more
    assert not log_axis([1, 2, 3]) and not log_axis([0, 10, 100]) and not log_axis([])


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A tiny synthetic zoo (every family, 2 values, 2 seeds, mean representation) and its report,
    figures captured."""
    out = tmp_path_factory.mktemp("zoo") / "results"
    write_zoo(out, values_per_family=2, representations=("mean",))
    drawn = []
    original = report_plots.save_figure

    def capture(fig, out_dir, stem):
        drawn.append((stem, {"titles": [ax.get_title() for ax in fig.axes],
                             "xlabels": [ax.get_xlabel() for ax in fig.axes],
                             "xscales": [ax.get_xscale() for ax in fig.axes],
                             "legend": [t.get_text() for legend in fig.legends for t in legend.get_texts()]}))
        return original(fig, out_dir, stem)

    mp = pytest.MonkeyPatch()
    mp.setattr(report_plots, "save_figure", capture)
    try:
        report = make_report(out, pictures=False, progress=False)
    finally:
        mp.undo()
    plt.close("all")
    return out, report, dict(drawn)


def _table_rows(text: str, section: str) -> list[list[str]]:
    block = text.split(f"## {section}")[1].split("\n## ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
            if line.startswith("|")][2:]


EXPECTED_MEAN_ROWS = ["AE", "VAE", "β-VAE (β = 1)", "β-VAE (β = 2)", "FactorVAE (γ = 10)", "FactorVAE (γ = 20)",
                      "β-TCVAE (β = 1)", "β-TCVAE (β = 2)", "DIP-VAE-I (λ_od = 1)", "DIP-VAE-I (λ_od = 2)",
                      "DIP-VAE-II (λ_od = 1)", "DIP-VAE-II (λ_od = 2)", "AnnealedVAE (C_max = 5)",
                      "AnnealedVAE (C_max = 10)"]


def test_every_family_in_every_table_in_the_reference_order(zoo):
    out, _, _ = zoo
    directory = out / "report"
    summary = (directory / "summary.md").read_text()
    families = (directory / "families.md").read_text()
    mean = "dsprites (SYNTHETIC data), quick metric preset, mean representation"
    assert [r[0] for r in _table_rows(summary, mean)] == EXPECTED_MEAN_ROWS
    assert [r[0] for r in _table_rows(families, mean)] == FAMILY_ORDER
    csv = pd.read_csv(directory / "families.csv")
    assert list(csv["family"]) == FAMILY_ORDER
    assert (csv.loc[csv["family"].isin(SWEPT), "n_runs"] == 4).all()  # 2 values x 2 seeds
    for name in ("summary.tex", "families.tex"):
        tex = (directory / name).read_text()
        for token in (r"$\beta$-TCVAE", "FactorVAE", r"DIP-VAE-II", "AnnealedVAE", r"$\lambda_{od}"):
            assert token in tex, (name, token)
        assert "β" not in tex and "γ" not in tex and "λ" not in tex  # LaTeX, not unicode
    page = (directory / "index.html").read_text()
    for label in EXPECTED_MEAN_ROWS + ["chosen with the ground truth"]:
        assert label in page, label
    assert page.count("<h3>Families</h3>") == 1


def test_every_family_in_every_figure(zoo):
    _, report, drawn = zoo
    assert {f["kind"] for f in report.figures} == {"metrics_vs_strength", "tradeoff", "rank_correlation", "every_run",
                                                   "improvement", "variance"}
    strength = [v for k, v in drawn.items() if k.endswith("metrics_vs_strength")]
    tradeoff = [v for k, v in drawn.items() if k.endswith("tradeoff")]
    assert len(strength) == 1 and len(tradeoff) == 1
    for figure in strength:
        # A column per swept family titled with its name, in the reference order, each on its own axis.
        titles = [t for t in figure["titles"] if t]
        assert titles == SWEPT
        xlabels = [x for x in figure["xlabels"] if x]
        for symbol in ("β (KL weight)", "γ (total-correlation", "β (total-correlation", "λ_od (off-diagonal",
                       "C_max (final KL"):
            assert any(x.startswith(symbol) for x in xlabels), symbol
        # AE and VAE sweep nothing: reference lines in every panel, named in the legend.
        assert {"AE: mean ± std over seeds", "VAE: mean ± std over seeds"} <= set(figure["legend"])
    assert [t for t in tradeoff[0]["legend"] if t in FAMILY_ORDER] == FAMILY_ORDER


def test_full_sweep_figures_use_log_axes(tmp_path):
    out = tmp_path / "results"
    write_zoo(out, seeds=(0,), representations=("mean",))
    frame = load_runs(out)
    fig_dir = tmp_path / "figures"
    fig_dir.mkdir()
    captured = {}

    def capture(fig, out_dir, stem):
        captured["scales"] = [ax.get_xscale() for ax in fig.axes if ax.get_title()]
        plt.close(fig)
        return {}

    mp = pytest.MonkeyPatch()
    mp.setattr(report_plots, "save_figure", capture)
    try:
        section = {"dataset": "dsprites", "source": "synthetic", "preset": "quick", "metric_settings": "preset",
                   "representation": "mean"}
        report_plots.metrics_vs_strength(frame, section, fig_dir)
    finally:
        mp.undo()
    assert captured["scales"] == ["log"] * 6


def _small_case(out, *, mig, dci):
    """beta_vae at beta 1, 4, 16 with two seeds each and the given scores (in that order)."""
    for i, (beta, seed) in enumerate((b, s) for b in (1, 4, 16) for s in (0, 1)):
        scores = {"mig.score": mig[i], "dci.disentanglement": dci[i], "reconstruction.bce": 50.0 + i}
        write_run(out, f"b{beta}-s{seed}", "beta_vae", {"beta": beta}, {"beta": float(beta)}, seed,
                  {"mean": scores})


def test_family_table_by_hand(tmp_path):
    out = tmp_path / "results"
    _small_case(out, mig=[0.1, 0.3, 0.5, 0.7, 0.2, 0.4], dci=[0.9, 0.9, 0.1, 0.2, 0.3, 0.3])
    frame = load_runs(out)
    row = family_summary(frame).iloc[0]
    # MIG over the six runs, sorted 0.1 0.2 0.3 0.4 0.5 0.7: median (0.3+0.4)/2; quartiles interpolate
    # linearly at positions 1.25 and 3.75 (of 0..5).
    assert row["mig.score:median"] == pytest.approx(0.35)
    assert row["mig.score:q25"] == pytest.approx(0.2 + 0.25 * 0.1)
    assert row["mig.score:q75"] == pytest.approx(0.4 + 0.75 * 0.1)
    assert (row["mig.score:min"], row["mig.score:max"]) == pytest.approx((0.1, 0.7))
    assert (row["n_settings"], row["n_runs"], row["n_seeds"]) == (3, 6, 2)
    # Best by DCI (the default headline): beta = 1, mean 0.9 over its two seeds.
    assert row["selected_by"] == "dci.disentanglement" and row["best_label"] == "β-VAE (β = 1)"
    assert row["best:mean"] == pytest.approx(0.9) and row["best:std"] == pytest.approx(0.0)
    # Chosen by MIG instead: beta = 4 (seeds 0.5 and 0.7).
    by_mig = family_summary(frame, "mig.score").iloc[0]
    assert by_mig["best_label"] == "β-VAE (β = 4)"
    assert by_mig["best:mean"] == pytest.approx(0.6) and by_mig["best:std"] == pytest.approx(math.sqrt(0.02))
    # Lower is better for reconstruction: the best setting by BCE has the lowest mean (beta = 1: 50, 51).
    assert family_summary(frame, "reconstruction.bce").iloc[0]["best_label"] == "β-VAE (β = 1)"
    report = make_report(out, pictures=False, progress=False, select_by="mig.score")
    text = (report.directory / "families.md").read_text()
    # One family: its median with the interval families.csv holds, bold (nothing to be worse than).
    low, high = row["mig.score:low"], row["mig.score:high"]
    assert low <= 0.35 <= high
    assert f"| β-VAE | 3 | 6 | **0.350 [{low:.3f}, {high:.3f}]** |" in text
    assert "Best setting by MIG (chosen with the ground truth)" in text
    assert "β-VAE (β = 4): 0.600 (n < 3)" in text  # two seeds: no interval


def test_bad_selection_metric_is_an_error_before_anything_is_written(tmp_path):
    out = tmp_path / "results"
    _small_case(out, mig=[0.1] * 6, dci=[0.2] * 6)
    with pytest.raises(UserError, match="'sap.score'.*headline metrics here: mig.score, dci.disentanglement"):
        make_report(out, pictures=False, progress=False, select_by="sap.score")
    assert not (out / "report").exists()


def test_unknown_metric_keys_are_kept_and_never_break_the_report(zoo):
    out, _, _ = zoo
    runs = pd.read_csv(out / "report" / "runs.csv")
    summary = pd.read_csv(out / "report" / "summary.csv")
    families = pd.read_csv(out / "report" / "families.csv")
    assert runs["unsupervised.gaussian_total_correlation"].notna().all()
    assert "unsupervised.mutual_info_score:mean" in summary.columns
    assert "unsupervised.gaussian_wasserstein_correlation:median" in families.columns
    # Headline tables show the headline metrics only.
    assert "unsupervised" not in (out / "report" / "summary.md").read_text().split("## ")[1]


def test_settings_of_one_value_that_differ_in_a_fixed_parameter_stay_apart(tmp_path):
    out = tmp_path / "results"
    for seed in (0, 1):
        for factor in (10.0, 5.0):
            write_run(out, f"dip-{factor:g}-s{seed}", "dip_vae_i", {"lambda_od": 5}, {"lambda_od": 5.0,
                      "lambda_d_factor": factor}, seed, {"mean": {"mig.score": 0.1 * factor + seed}})
    frame = load_runs(out)
    labels = list(dict.fromkeys(frame["label"]))
    assert labels == ["DIP-VAE-I (λ_od = 5)", "DIP-VAE-I (λ_od = 5, lambda_d_factor = 5)"]
    report = make_report(out, pictures=False, progress=False)
    rows = pd.read_csv(report.files["summary.csv"])
    assert list(rows["mig.score:mean"]) == pytest.approx([1.5, 1.0])  # never one mean over both
    fam = pd.read_csv(report.files["families.csv"])
    assert list(fam["variant"].fillna("")) == ["", "lambda_d_factor = 5"]
    assert re.search(r"^\| DIP-VAE-I \(lambda_d_factor = 5\) \| 1 \| 2 \|", report.files["families.md"].read_text(),
                     flags=re.M)


def test_cli_select_by(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "results"
    _small_case(out, mig=[0.1, 0.3, 0.5, 0.7, 0.2, 0.4], dci=[0.9, 0.9, 0.1, 0.2, 0.3, 0.3])
    cli = [sys.executable, "-c", "from disent_bench.cli import main; main()", "report", str(out), "--no-pictures",
           "--no-progress"]
    bad = subprocess.run([*cli, "--select-by", "sap.score"], capture_output=True, text=True)
    assert bad.returncode == 2 and "sap.score" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run([*cli, "--select-by", "mig.score"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "families.md" in good.stdout
    assert "β-VAE (β = 4): 0.600" in (out / "report" / "families.md").read_text()


def test_tradeoff_marker_grows_with_regularisation():
    frame = pd.DataFrame({
        "family": ["β-VAE"] * 3 + ["AnnealedVAE"] * 3 + ["AE"],
        "sweep_value": [1.0, 4.0, 16.0, 5.0, 25.0, 100.0, math.nan],
    })
    sizes = report_plots.strength_sizes(frame)
    small, middle, large = report_plots.SIZES
    assert list(sizes[:3]) == pytest.approx([small, middle, large])
    # A larger capacity is a weaker constraint: AnnealedVAE's largest C_max gets the smallest marker.
    assert list(sizes[3:6]) == pytest.approx([large, middle, small])
    assert sizes[6] == pytest.approx(middle)  # the AE sweeps nothing


def test_hparams_that_are_lists_or_dicts_never_break_the_report(tmp_path):
    out = tmp_path / "results"
    for seed in (0, 1):
        write_run(out, f"f-s{seed}", "factor_vae", {"gamma": 10}, {"gamma": 10.0, "discriminator_betas": [0.5, 0.9],
                  "discriminator": {"hidden": 1000, "layers": 6}}, seed,
                  {"mean": {"mig.score": 0.1 + seed, "reconstruction.bce": 40.0}})
    report = make_report(out, pictures=False, progress=False)
    summary = pd.read_csv(report.files["summary.csv"])
    assert list(summary["label"]) == ["FactorVAE (γ = 10)"] and list(summary["n_seeds"]) == [2]
    runs = pd.read_csv(report.files["runs.csv"])
    assert runs["param.discriminator_betas"].iloc[0] == "[0.5, 0.9]"
