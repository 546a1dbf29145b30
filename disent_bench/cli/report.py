"""``disent-bench report [RESULTS_DIR] [--grid FILE]``: tables, plots and pictures of finished runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from disent_bench.errors import UserError

DEFAULT_GRID = Path("benchmarks.toml")


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        results_dir: Annotated[Optional[Path], typer.Argument(
            help="Results directory holding runs/ [default: the grid's, results/<benchmark name>].")] = None,
        grid: Annotated[Optional[Path], typer.Option(
            "--grid", "-g", help="Take the results directory from this grid [default: benchmarks.toml].")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report directory [default: RESULTS_DIR/report].")] = None,
        pictures: Annotated[bool, typer.Option(
            "--pictures/--no-pictures", help="Draw reconstructions, samples and traversals (loads the data).")] = True,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress.")] = True,
        select_by: Annotated[Optional[str], typer.Option(
            "--select-by", help="Metric that picks each family's best setting in families.* "
                                "[default: dci.disentanglement, else the first headline score present]; "
                                "udr.lasso or udr.spearman chooses without labels.")] = None,
        udr: Annotated[bool, typer.Option(
            "--udr/--no-udr", help="Score every setting's seeds against each other by UDR (loads the data and "
                                   "the models once per setting; cached in RESULTS_DIR/udr).")] = True,
    ) -> None:
        """Write runs.csv, summary.csv/.md/.tex, families.csv/.md/.tex, plots (PNG+PDF), model pictures and
        index.html."""
        # Here, not at the top (see disent_bench.cli): import disent_bench.report takes 4.3-5.0 s (torch,
        # pandas, matplotlib, seaborn; disent_bench.grid alone loads torch), disent_bench.cli 0.12-0.17 s
        # (-X importtime, 2-core machine under load), and every other command would pay it at start-up.
        from disent_bench.grid import load_grid
        from disent_bench.report import make_report

        if results_dir is not None and grid is not None:
            raise UserError("give either RESULTS_DIR or --grid, not both")
        if results_dir is None:
            grid_path = grid if grid is not None else DEFAULT_GRID
            if grid is None and not grid_path.is_file():
                raise UserError(f"no RESULTS_DIR given and no {DEFAULT_GRID} here; pass a results directory "
                                "or --grid FILE")
            results_dir = load_grid(grid_path).default_out
        result = make_report(results_dir, out, pictures=pictures, progress=progress, select_by=select_by, udr=udr)
        typer.echo(f"report of {result.num_runs} runs: {result.files['index.html']}")
        typer.echo("time: " + " · ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()), err=True)
        for name, path in result.files.items():
            typer.echo(f"  {path}")
