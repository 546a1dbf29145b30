"""``disent-bench run --grid FILE``: train and score every run of a grid (resumable, lockable, parallel)."""

from __future__ import annotations

import fnmatch
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from disent_bench.errors import UserError


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def select_runs(runs: list, only: Optional[list[str]]) -> list:
    """Runs whose id matches any of the fnmatch patterns (all runs without patterns)."""
    if not only:
        return runs
    chosen = [run for run in runs if any(fnmatch.fnmatchcase(run.id, pattern) for pattern in only)]
    if not chosen:
        sample = ", ".join(run.id for run in runs[:3])
        raise UserError(f"--only {' '.join(only)!r} matches none of the grid's {len(runs)} run ids "
                        f"(e.g. {sample}); patterns use fnmatch, e.g. --only '*beta_vae*'")
    return chosen


def _print_plan(rows: list[dict], out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {out_dir}", show_lines=False)
    table.add_column("run id", no_wrap=True, overflow="fold")
    table.add_column("data")
    table.add_column("steps", justify="right")
    table.add_column("status")
    table.add_column("estimate", justify="right")
    total = 0.0
    unknown_eval = False
    counts: dict[str, int] = {}
    for row in rows:
        run = row["run"]
        status = row["status"]
        counts[status] = counts.get(status, 0) + 1
        label = f"{status}(step {row['step']})" if status in ("partial", "running", "failed") and row["step"] else status
        seconds = row["train_seconds"] + (row["eval_seconds"] or 0.0)
        if status not in ("done",) and row["eval_seconds"] is None:
            unknown_eval = True
        total += seconds
        table.add_row(run.id, run.dataset["source"], str(run.train["steps"]), label,
                      "-" if status == "done" else _fmt_seconds(seconds))
    console = Console(width=max(Console().width, 120))  # run ids stay on one line in logs
    console.print(table)
    speeds = {f"{row['run'].model['name']}": f"{row['images_per_second']:.0f} img/s ({row['speed_source']})"
              for row in rows if row["images_per_second"]}
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    console.print(f"{len(rows)} runs: {summary}")
    if speeds:
        console.print("training speed: " + "; ".join(f"{k} {v}" for k, v in speeds.items()))
    note = " + evaluation (no finished run to time it from yet)" if unknown_eval else ""
    console.print(f"estimated time left at 1 job: {_fmt_seconds(total)}{note}")


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        grid: Annotated[Path, typer.Option("--grid", "-g", help="The grid file (TOML), e.g. benchmarks.toml.")],
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Results directory [default: results/<benchmark name>].")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="List the runs with their status and a time estimate; run nothing.")] = False,
        only: Annotated[Optional[list[str]], typer.Option(
            "--only", help="Only runs whose id matches this fnmatch pattern (repeatable).")] = None,
        executor: Annotated[str, typer.Option(
            "--executor", help="Where runs execute: local, ray or slurm (see README: Running on a cluster).")] = "local",
        jobs: Annotated[Optional[int], typer.Option(
            "--jobs", "-j", min=1, help="local: runs at once, as processes [default: as many as the cores hold "
                                        "at the grid's cpus_per_run threads each; 1 on a GPU].")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress.")] = True,
        address: Annotated[Optional[str], typer.Option(
            "--address", help="ray: the cluster to join (HOST:PORT, ray://HOST:PORT or auto) "
                              "(default: RAY_ADDRESS, else a Ray instance on this machine).",
            rich_help_panel="Cluster executors")] = None,
        partition: Annotated[Optional[str], typer.Option(
            "--partition", help="slurm: partition (default: the grid's slurm.partition).",
            rich_help_panel="Cluster executors")] = None,
        time_min: Annotated[Optional[int], typer.Option(
            "--time-min", min=1, help="slurm: time limit per run in minutes (default: the grid's slurm.time_min).",
            rich_help_panel="Cluster executors")] = None,
        gpus_per_node: Annotated[Optional[int], typer.Option(
            "--gpus-per-node", min=0, help="slurm: GPUs per run (default: the grid's slurm.gpus_per_node).",
            rich_help_panel="Cluster executors")] = None,
        array_parallelism: Annotated[Optional[int], typer.Option(
            "--array-parallelism", min=1, help="slurm: runs at once (default: the grid's slurm.array_parallelism).",
            rich_help_panel="Cluster executors")] = None,
        wait: Annotated[bool, typer.Option(
            "--wait/--no-wait", help="slurm: wait for the jobs, or submit and return.",
            rich_help_panel="Cluster executors")] = True,
    ) -> None:
        """Train and score every run of a grid; finished runs are skipped, unfinished ones resume."""
        from disent_bench.executors import get_executor
        from disent_bench.grid import expand, load_grid
        from disent_bench.runner import check_data, plan, time_breakdown

        spec = load_grid(grid)
        runs = select_runs(expand(spec), only)
        out_dir = out if out is not None else spec.default_out
        if dry_run:
            _print_plan(plan(runs, out_dir), out_dir)
            return
        options = {"ray": {"address": address},
                   "slurm": {"slurm": spec.slurm, "partition": partition, "time_min": time_min,
                             "gpus_per_node": gpus_per_node, "array_parallelism": array_parallelism,
                             "wait": wait}}.get(executor, {})
        runner = get_executor(executor, **options)
        check_data(runs)
        started = time.perf_counter()
        outcomes = runner.run(runs, out_dir, jobs=jobs, progress=progress)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        failed = [o for o in outcomes if o.status == "failed"]
        claimed = [o for o in outcomes if o.status == "claimed"]
        typer.echo(f"{len(outcomes)} runs in {out_dir}: " +
                   ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), err=True)
        typer.echo(time_breakdown(outcomes, time.perf_counter() - started), err=True)
        for outcome in failed:
            typer.echo(f"  failed: {outcome.run_id}: {outcome.error} "
                       f"(details: {out_dir / 'runs' / outcome.run_id / 'error.json'})", err=True)
        for outcome in claimed:
            typer.echo(f"  still held by another process: {outcome.run_id}", err=True)
        if failed or claimed:
            sys.exit(1)
