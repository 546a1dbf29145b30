"""The report of a results directory: tables (CSV, Markdown, LaTeX), seaborn plots, model pictures, HTML.

``make_report(results_dir)`` reads every finished run under ``results_dir/runs`` and writes everything
to ``results_dir/report/``. Runs of different datasets, data sources or metric presets are kept in
separate sections; synthetic data is labelled as such in every table and figure. Model families (AE,
VAE and the six of Locatello et al. 2019, then any user model) are named and ordered by
:mod:`disent_bench.report.families`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from disent_bench.errors import UserError

__all__ = ["make_report", "Report"]


@dataclass
class Report:
    directory: Path
    files: dict[str, Path]
    figures: list[dict] = field(default_factory=list)
    pictures: list[dict] = field(default_factory=list)
    num_runs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # tables, figures, pictures


def make_report(results_dir: str | Path, out_dir: str | Path | None = None, *, pictures: bool = True,
                progress: bool = True, select_by: str | None = None) -> Report:
    """Write the report of ``results_dir`` (default output: ``results_dir/report``).

    ``select_by`` is the metric by which the family table picks each family's best setting (default:
    the first of :data:`~disent_bench.report.tables.SELECT_BY` that the runs have).
    """
    from disent_bench.report.html import write_index
    from disent_bench.report.plots import make_plots
    from disent_bench.report.tables import family_summary, load_runs, provenance_lines, summarise, write_tables

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
    t0 = time.perf_counter()
    files = write_tables(frame, report_dir, select_by=select_by)
    timing["tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures = make_plots(frame, report_dir / "figures")
    timing["figures"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    picture_list = make_pictures_safe(frame, results_dir, report_dir / "pictures", progress) if pictures else []
    timing["pictures"] = time.perf_counter() - t0
    _remove_stale(report_dir / "figures", [p for f in figures for p in (f["png"], f["pdf"])])
    if pictures:  # --no-pictures keeps the pictures an earlier report drew
        _remove_stale(report_dir / "pictures", [p for e in picture_list for k in ("overview", "traversals")
                                                for p in e[k].values()])
    files["index.html"] = write_index(report_dir, frame, summarise(frame), family_summary(frame, select_by),
                                      provenance_lines(frame), figures, picture_list, dict(files))
    return Report(report_dir, files, figures, picture_list, frame["run_id"].nunique(), timing)


def _remove_stale(directory: Path, keep: list[Path]) -> None:
    """Delete figures an earlier report left that this one did not draw (e.g. after renaming a section)."""
    keep_names = {Path(p).name for p in keep}
    for path in directory.glob("*"):
        if path.suffix in (".png", ".pdf") and path.name not in keep_names:
            path.unlink()


def make_pictures_safe(frame, results_dir: Path, out_dir: Path, progress: bool) -> list[dict]:
    """The model pictures, or none (with a warning) when the data or a checkpoint is not at hand,
    e.g. results copied from a cluster to a laptop without the official files."""
    import warnings

    from disent_bench.report.pictures import make_pictures

    try:
        return make_pictures(frame, results_dir, out_dir, progress=progress)
    except UserError as exc:
        warnings.warn(f"pictures skipped: {exc}", stacklevel=2)
        return []
