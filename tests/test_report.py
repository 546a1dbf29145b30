"""The report: files, columns, summaries over seeds, best-in-bold with the right direction, sections."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest
import torch

from disent_bench.errors import UserError
from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid
from disent_bench.report import make_report, write_tables
from disent_bench.report.runs import load_runs, lower_is_better
from grid_helpers import tiny_grid

CLI = [sys.executable, "-c", "from disent_bench.cli import main; main()"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A finished tiny grid (3 settings x 2 seeds) and its report."""
    root = tmp_path_factory.mktemp("report")
    mp = pytest.MonkeyPatch()
    mp.setenv("DISENT_BENCH_DATA", str(root / "data"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine: more threads only contend
    try:
        path = tiny_grid(root, seeds=[0, 1], steps=8, train={"lr": 1e-3, "checkpoint_every": 8, "log_every": 4},
                         models=["ae", "vae", {"name": "beta_vae", "beta": [4]}],
                         metrics=["mig", "sap", "modularity", "reconstruction"],
                         eval={"representation": ["mean", "sampled"], "mig": {"num_train": 200}})
        runs = expand(load_grid(path))
        out = root / "results"
        outcomes = get_executor("local").run(runs, out, progress=False)
        assert all(o.status == "done" for o in outcomes), outcomes
        report = make_report(out, progress=False)
        yield out, report, runs
    finally:
        torch.set_num_threads(threads)
        mp.undo()


def test_report_files(results):
    out, report, _ = results
    directory = out / "report"
    for name in ("runs.csv", "summary.csv", "summary.md", "summary.tex", "families.csv", "families.md",
                 "families.tex", "index.html"):
        assert (directory / name).is_file(), name
    kinds = {f["kind"] for f in report.figures}
    # "udr": two seeds of each VAE setting with saved models, so the report scores them against each other.
    assert kinds == {"metrics_vs_strength", "tradeoff", "rank_correlation", "every_run", "improvement", "variance",
                     "udr"}
    for figure in report.figures:
        assert figure["png"].stat().st_size > 5000 and figure["pdf"].read_bytes().startswith(b"%PDF")
        assert "synthetic" in figure["png"].name
    # Pictures: one run per model setting, overview and traversals each.
    assert [p["label"] for p in report.pictures] == ["AE", "VAE", "β-VAE (β = 4)"]  # the tables' order
    for picture in report.pictures:
        for kind in ("overview", "traversals"):
            assert picture[kind]["png"].is_file() and picture[kind]["pdf"].is_file()
    assert not list(directory.rglob("*.tmp"))


def test_runs_csv_has_every_setting_and_metric(results):
    out, _, runs = results
    frame = pd.read_csv(out / "report" / "runs.csv")
    # 6 runs; the AE has no sampled representation (no variance), the VAEs have both.
    assert len(frame) == 2 + 4 * 2
    assert set(frame["representation"]) == {"mean", "sampled"}
    assert set(frame.loc[frame["model"] == "ae", "representation"]) == {"mean"}
    for column in ("run_id", "dataset", "source", "model", "beta", "latent_dim", "seed", "steps", "batch_size",
                   "lr", "preset", "dataset_checksum", "torch", "scikit_learn", "mig.score", "sap.score",
                   "modularity.score", "reconstruction.bce", "train_seconds"):
        assert column in frame.columns, column
    assert set(frame["run_id"]) == {run.id for run in runs}
    assert set(frame["source"]) == {"synthetic"}
    assert frame.loc[frame["model"] == "vae", "beta"].eq(1.0).all()  # a VAE is beta = 1
    assert frame.loc[frame["model"] == "ae", "beta"].isna().all()    # an AE has no beta
    record = json.loads((out / "runs" / runs[0].id / "metrics.json").read_text())
    row = frame[(frame["run_id"] == runs[0].id) & (frame["representation"] == "mean")].iloc[0]
    assert row["mig.score"] == pytest.approx(record["results"]["mean"]["mig.score"])


def test_summary_is_mean_std_n_over_seeds(results):
    out, _, _ = results
    runs = pd.read_csv(out / "report" / "runs.csv")
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert len(summary) == 5  # (AE, VAE, beta-VAE) x mean + (VAE, beta-VAE) x sampled
    assert (summary["n_seeds"] == 2).all()
    vae = runs[(runs["model"] == "vae") & (runs["representation"] == "mean")]["mig.score"]
    row = summary[(summary["model"] == "vae") & (summary["representation"] == "mean")].iloc[0]
    assert row["mig.score:mean"] == pytest.approx(vae.mean())
    assert row["mig.score:std"] == pytest.approx(vae.std())
    assert row["mig.score:n"] == 2


def _bold_cells(markdown_table_lines, column):
    header = [c.strip() for c in markdown_table_lines[0].strip("|").split("|")]
    index = next(i for i, h in enumerate(header) if h.startswith(column))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown_table_lines[2:]]
    return rows, index


def test_markdown_and_latex_tables(results):
    out, _, _ = results
    text = (out / "report" / "summary.md").read_text()
    assert "SYNTHETIC" in text and "scikit-learn" in text and "sha256" in text and "metric preset quick" in text
    sections = re.findall(r"^## (.*)$", text, flags=re.M)
    assert len(sections) == 2 and all("SYNTHETIC" in s for s in sections)  # mean and sampled apart
    block = text.split("## ")[1].splitlines()
    table = [line for line in block if line.startswith("|")]
    rows, mig = _bold_cells(table, "MIG")
    # Two seeds per setting: a mean without an interval, and nothing bold (the note says why).
    assert all(row[mig].endswith(" (n < 3)") and not row[mig].startswith("**") for row in rows)
    assert all(float(row[mig].split(" ")[0]) >= 0 for row in rows)
    assert "*not bolded: fewer than 3 values in AE, VAE, β-VAE (β = 4)*" in block
    tex = (out / "report" / "summary.tex").read_text()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "(n \\textless{} 3)", "$\\beta$-VAE", "SYNTHETIC",
                  "over 2 seeds", "Mann-Whitney"):
        assert token in tex, token
    assert tex.count("\\begin{tabular}") == 2


def test_index_html_links_resolve(results):
    out, _, _ = results
    directory = out / "report"

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links = []

        def handle_starttag(self, tag, attrs):
            self.links += [v for k, v in attrs if k in ("href", "src")]

    parser = Links()
    parser.feed((directory / "index.html").read_text())
    assert len(parser.links) > 10
    for link in parser.links:
        assert not link.startswith("/") and (directory / link).is_file(), link


def test_different_presets_are_kept_apart(results, tmp_path):
    out, _, runs = results
    copy = tmp_path / "results"
    shutil.copytree(out / "runs", copy / "runs")
    # The same run scored with the paper preset (edited copy): a separate section, not averaged in.
    source = copy / "runs" / runs[0].id
    target = copy / "runs" / (runs[0].id + "-paper")
    shutil.copytree(source, target)
    record = json.loads((target / "metrics.json").read_text())
    record["run_id"] = target.name
    record["config"]["eval"]["preset"] = "paper"
    (target / "metrics.json").write_text(json.dumps(record))
    frame = load_runs(copy)
    assert set(frame["preset"]) == {"quick", "paper"}
    files = write_tables(frame, tmp_path / "report")
    text = files["summary.md"].read_text()
    assert len(re.findall(r"^## .*paper metric preset", text, flags=re.M)) == 1
    assert len(re.findall(r"^## .*quick metric preset", text, flags=re.M)) == 2


def test_unfinished_runs_are_left_out_and_empty_dir_is_an_error(results, tmp_path):
    out, _, runs = results
    copy = tmp_path / "results"
    shutil.copytree(out / "runs", copy / "runs")
    (copy / "runs" / runs[0].id / "DONE").unlink()
    assert runs[0].id not in set(load_runs(copy)["run_id"])
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(UserError, match="no finished runs"):
        make_report(tmp_path / "empty")
    proc = subprocess.run([*CLI, "report", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_direction_of_metrics():
    assert lower_is_better("reconstruction.bce") and lower_is_better("reconstruction.mse_sampled")
    assert not lower_is_better("mig.score") and not lower_is_better("beta_vae.eval_accuracy")
