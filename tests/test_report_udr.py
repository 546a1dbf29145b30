"""UDR in the report: computed from the saved models per setting, cached, and used to choose without labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disent_bench._io import file_digest
from disent_bench.report import make_report
from disent_bench.report import udr as report_udr
from disent_bench.report.runs import load_runs
from disent_bench.report.tables import build_tables
from grid_helpers import run_locally, tiny_grid
from report_zoo import write_zoo


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of an AE, a VAE and a beta-VAE on tiny dSprites, trained for a few steps."""
    where = tmp_path_factory.mktemp("udr")
    # Long enough (and a large step) for latents to carry more than the 0.01 nats UDR filters by.
    grid = tiny_grid(where, seeds=(0, 1), steps=60, train={"lr": 5e-3},
                     models=("ae", "vae", {"name": "beta_vae", "beta": 4}))
    out = where / "results"
    run_locally(grid, out)
    return out


def test_udr_scores_every_vae_setting_and_caches_them(trained, monkeypatch):
    frame = load_runs(trained)
    scored = report_udr.add_udr(frame, trained, progress=False)
    assert {"udr.lasso", "udr.spearman"} <= set(scored.columns)
    vae_rows = scored[scored["model"] != "ae"]
    assert vae_rows["udr.lasso"].notna().all() and vae_rows["udr.spearman"].notna().all()
    assert ((vae_rows["udr.lasso"] >= 0) & (vae_rows["udr.lasso"] <= 1)).all()
    # An AE has no posterior variance, hence no KL to filter by: no UDR, as in the reference.
    assert scored.loc[scored["model"] == "ae", "udr.lasso"].isna().all()
    cache = sorted((trained / report_udr.CACHE_DIR).glob("*.json"))
    assert len(cache) == 2  # one per VAE setting; the AE's is not cached
    stored = json.loads(cache[0].read_text())
    assert stored["points"] == report_udr.UDR_POINTS and len(stored["runs"]) == 2
    # The second report reads the cache: no model is loaded again, and the numbers are the same.
    monkeypatch.setattr(report_udr, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    again = report_udr.add_udr(frame[frame["model"] != "ae"], trained, progress=False)
    pd.testing.assert_series_equal(again["udr.lasso"].reset_index(drop=True),
                                   vae_rows["udr.lasso"].reset_index(drop=True))


def test_a_changed_checkpoint_recomputes_its_setting(trained, tmp_path):
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(trained, copy)
    frame = load_runs(copy)
    before = report_udr.add_udr(frame, copy, progress=False)
    vae = frame.loc[frame["model"] == "vae", "run_id"].iloc[0]
    beta = frame.loc[frame["model"] == "beta_vae", "run_id"].iloc[0]
    # Another seed's model in place of this one: the setting's cache key changes, the other setting's does not.
    shutil.copy(copy / "runs" / beta / "checkpoint.pt", copy / "runs" / vae / "checkpoint.pt")
    before_files = {p.name: p.read_text() for p in (copy / report_udr.CACHE_DIR).glob("*.json")}
    report_udr.add_udr(frame, copy, progress=False)
    files = {p.name: p.read_text() for p in (copy / report_udr.CACHE_DIR).glob("*.json")}
    new = [json.loads(text) for name, text in files.items() if name not in before_files]
    assert len(files) == 3 and len(new) == 1  # the VAE setting was scored again, the beta-VAE's was read back
    assert new[0]["runs"] == sorted(frame.loc[frame["model"] == "vae", "run_id"].unique())
    assert new[0]["checkpoints_sha256"][0] == file_digest(copy / "runs" / beta / "checkpoint.pt")
    assert all(files[name] == text for name, text in before_files.items())


def test_runs_without_models_are_left_out_with_a_warning(tmp_path):
    write_zoo(tmp_path, seeds=(0, 1), values_per_family=2, representations=("mean",))
    frame = load_runs(tmp_path)
    with pytest.warns(UserWarning, match="without a saved model"):
        out = report_udr.add_udr(frame, tmp_path, progress=False)
    assert "udr.lasso" not in out.columns


def _zoo_with_udr(results_dir):
    """A synthetic zoo whose runs carry a made-up UDR that prefers each family's SECOND setting."""
    write_zoo(results_dir, seeds=(0, 1, 2), values_per_family=3, representations=("mean",))
    for path in sorted((results_dir / "runs").glob("*/metrics.json")):
        record = json.loads(path.read_text())
        params = record["config"]["model"]["params"]
        second = any(v in (2, 20, 10) for v in params.values())  # each sweep's second value
        record["results"]["mean"]["udr.lasso"] = 0.8 if second else 0.3 + 0.01 * record["config"]["seed"]
        path.write_text(json.dumps(record))


def test_select_by_udr_shows_the_chosen_setting_beside_the_ground_truth_choice(tmp_path):
    _zoo_with_udr(tmp_path)
    frame = load_runs(tmp_path)
    tables = build_tables(frame, "udr.lasso")
    families = tables.families.set_index("family")
    beta = families.loc["β-VAE"]
    assert beta["best_label"] == "β-VAE (β = 2)" and beta["selected_by"] == "udr.lasso"
    runs = frame[frame["family"] == "β-VAE"]
    means = runs.groupby("label")["dci.disentanglement"].mean()
    assert beta["selected:dci.disentanglement"] == pytest.approx(means["β-VAE (β = 2)"])
    assert beta["oracle:dci.disentanglement"] == pytest.approx(means.max())
    assert beta["oracle_label:dci.disentanglement"] == means.idxmax()
    # A metric that is better when lower is never a supervised column; UDR is not compared with itself.
    assert "oracle:reconstruction.bce" not in tables.families.columns
    assert "oracle:udr.lasso" not in tables.families.columns

    report = make_report(tmp_path, pictures=False, progress=False, select_by="udr.lasso", udr=False)
    text = report.files["families.md"].read_text()
    assert "Best setting by UDR (Lasso) (chosen without labels)" in text
    assert "### Chosen without labels" in text
    assert "which reads no ground truth" in text and "it is chosen with the ground-truth factors" not in text
    cell = f"{means['β-VAE (β = 2)']:.3f} / {means.max():.3f} ({means.idxmax()})"
    assert cell in text
    tex = report.files["families.tex"].read_text()
    assert "chosen without labels" in tex and r"$\beta$-VAE" in tex
    page = report.files["index.html"].read_text()
    assert "Chosen without labels" in page
    udr_figures = [f for f in report.figures if f["kind"] == "udr"]
    assert len(udr_figures) == 1 and udr_figures[0]["png"].stat().st_size > 0

    # Chosen with the ground truth (the default), nothing of this is shown.
    plain = make_report(tmp_path, tmp_path / "plain", pictures=False, progress=False, udr=False)
    plain_text = plain.files["families.md"].read_text()
    assert "Chosen without labels" not in plain_text and "it is chosen with the ground-truth factors" in plain_text


def test_rank_correlations_of_udr_with_the_supervised_metrics():
    from disent_bench.report.udr_plots import rank_correlations

    rng = np.random.default_rng(0)
    udr = rng.uniform(size=12)
    frame = pd.DataFrame({"udr.lasso": udr, "dci.disentanglement": 2 * udr + 1, "mig.score": -udr,
                          "reconstruction.bce": udr})
    table = rank_correlations(frame).set_index("metric")
    assert table.loc["dci.disentanglement", "rho"] == pytest.approx(1.0)
    assert table.loc["mig.score", "rho"] == pytest.approx(-1.0)
    assert "reconstruction.bce" not in table.index and (table["n"] == 12).all()
    assert rank_correlations(frame.head(3))["rho"].isna().all()  # too few runs for a correlation
