"""The report of a results directory: tables (CSV, Markdown, LaTeX), seaborn plots, model pictures, HTML.

``make_report(results_dir)`` reads every finished run under ``results_dir/runs`` and writes everything
to ``results_dir/report/``. Runs of different datasets, data sources or metric presets are kept in
separate sections; synthetic data is labelled as such in every table and figure. Model families (AE,
VAE and the six of Locatello et al. 2019, then any user model) are named and ordered by
:mod:`disent_bench.report.families`.

This module owns the order of the work; each step is a module of its own:

1. read: :mod:`~disent_bench.report.runs` loads the runs frame (one row per run and representation);
2. build: :mod:`~disent_bench.report.tables` summarises it into :class:`~disent_bench.report.tables.Tables`
   (frames of mean, std, n / median, quartiles, and per section the cells that are best);
3. render: :mod:`~disent_bench.report.render` writes them as CSV, Markdown and LaTeX,
   :mod:`~disent_bench.report.html` as the page; :mod:`~disent_bench.report.plots` and
   :mod:`~disent_bench.report.pictures` draw the figures from the runs frame.

Between 2 and 3 is where a statistics layer (intervals, significance-based bolding) goes: see
:mod:`disent_bench.report.tables`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from disent_bench.errors import UserError
from disent_bench.report.analysis import analyse
from disent_bench.report.html import write_index
from disent_bench.report.pictures import make_pictures
from disent_bench.report.plots import make_plots
from disent_bench.report.render import write_files
from disent_bench.report.render_analysis import write_analysis
from disent_bench.report.stat_plots import make_analysis_figures
from disent_bench.report.runs import family_names, load_runs, section_title
from disent_bench.report.tables import build_tables
from disent_bench.report.udr import add_udr_safe
from disent_bench.report.udr_plots import udr_agreement

__all__ = ["make_report", "write_tables", "Report"]


@dataclass
class Report:
    directory: Path
    files: dict[str, Path]
    figures: list[dict] = field(default_factory=list)
    pictures: list[dict] = field(default_factory=list)
    num_runs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # tables, figures, pictures


def make_report(results_dir: str | Path, out_dir: str | Path | None = None, *, pictures: bool = True,
                progress: bool = True, select_by: str | None = None, udr: bool = True) -> Report:
    """Write the report of ``results_dir`` (default output: ``results_dir/report``).

    ``udr``: score the runs of every setting with two or more seeds against each other by UDR
    (:mod:`disent_bench.report.udr`; loads the data and the saved models, cached in ``results_dir/udr``).

    ``select_by`` is the metric by which the family table picks each family's best setting (default:
    the first of :data:`~disent_bench.report.tables.SELECT_BY` that the runs have).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"results directory {results_dir} not found; run `disent-bench run --grid FILE` first "
                        "or pass the directory that holds runs/")
    frame = load_runs(results_dir)
    if frame.empty:
        raise UserError(f"no finished runs under {results_dir / 'runs'} (a finished run has DONE and a valid "
                        "metrics.json); run `disent-bench run --grid FILE` first")
    report_dir = Path(out_dir) if out_dir is not None else results_dir / "report"
    timing: dict[str, float] = {}
    if udr:
        t0 = time.perf_counter()
        frame = add_udr_safe(frame, results_dir, progress=progress)
        timing["udr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = build_tables(frame, select_by)  # a bad select_by stops here, before anything is written
    files = write_files(tables, report_dir)
    timing["tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis = analyse(tables.per_run, frame)
    files.update(write_analysis(analysis, tables.provenance, [t.section for t in tables.settings],
                                {section_title(t.section): list(dict.fromkeys(family_names(t.rows)))
                                 for t in tables.by_family}, report_dir))
    timing["statistics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures = make_plots(tables.per_run, report_dir / "figures")
    figures += make_analysis_figures(analysis, tables.per_run, report_dir / "figures")
    figures += udr_agreement(tables.per_run, report_dir / "figures")
    timing["figures"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    picture_list = make_pictures_safe(tables.per_run, results_dir, report_dir / "pictures", progress) if pictures else []
    timing["pictures"] = time.perf_counter() - t0
    _remove_stale(report_dir / "figures", [p for f in figures for p in (f["png"], f["pdf"])])
    if pictures:  # --no-pictures keeps the pictures an earlier report drew
        _remove_stale(report_dir / "pictures", [p for e in picture_list for k in ("overview", "traversals")
                                                for p in e[k].values()])
    files["index.html"] = write_index(report_dir, tables, figures, picture_list, dict(files), analysis)
    return Report(report_dir, files, figures, picture_list, frame["run_id"].nunique(), timing)


def write_tables(frame: pd.DataFrame, out_dir: Path, *, select_by: str | None = None) -> dict[str, Path]:
    """The tables alone, without figures, pictures or page: build them from a runs frame and write
    runs.csv, summary.csv/.md/.tex and families.csv/.md/.tex atomically; return their paths."""
    return write_files(build_tables(frame, select_by), out_dir)


def _remove_stale(directory: Path, keep: list[Path]) -> None:
    """Delete figures an earlier report left that this one did not draw (e.g. after renaming a section)."""
    keep_names = {Path(p).name for p in keep}
    for path in directory.glob("*"):
        if path.suffix in (".png", ".pdf") and path.name not in keep_names:
            path.unlink()


def make_pictures_safe(frame, results_dir: Path, out_dir: Path, progress: bool) -> list[dict]:
    """The model pictures, or none (with a warning) when the data or a checkpoint is not at hand,
    e.g. results copied from a cluster to a laptop without the official files."""
    try:
        return make_pictures(frame, results_dir, out_dir, progress=progress)
    except UserError as exc:
        warnings.warn(f"pictures skipped: {exc}", stacklevel=2)
        return []
