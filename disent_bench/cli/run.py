"""``disent-bench run --grid FILE``: train and score every run of a grid (resumable, lockable, parallel)."""

from __future__ import annotations

import fnmatch
import re
import sys
import time
from collections.abc import Iterable, Iterator
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
    return runs if not only else list(iter_selected(runs, only))


def iter_selected(runs: Iterable, only: Optional[list[str]]) -> Iterator:
    """:func:`select_runs` one run at a time (for a grid too large to hold); UserError when none matches."""
    if not only:
        yield from runs
        return
    matchers = [re.compile(fnmatch.translate(pattern)).match for pattern in only]  # fnmatchcase, compiled once
    sample: list[str] = []
    total = matched = 0
    for run in runs:
        total += 1
        if len(sample) < 3:
            sample.append(run.id)
        if any(match(run.id) for match in matchers):
            matched += 1
            yield run
    if not matched:
        raise UserError(f"--only {' '.join(only)!r} matches none of the grid's {total} run ids "
                        f"(e.g. {', '.join(sample)}); patterns use fnmatch, e.g. --only '*beta_vae*'")


def _print_plan(rows: list[dict], out_dir: Path) -> None:
    """The ``--list`` table: one line per run, then the summary."""
    from rich.console import Console
    from rich.table import Table

    from disent_bench.runner.planning import PlanSummary

    table = Table(title=f"runs in {out_dir}", show_lines=False)
    table.add_column("run id", no_wrap=True, overflow="fold")
    table.add_column("data")
    table.add_column("steps", justify="right")
    table.add_column("status")
    table.add_column("estimate", justify="right")
    summary = PlanSummary()
    for row in rows:
        run = row["run"]
        status = row["status"]
        summary.add(row)
        label = f"{status}(step {row['step']})" if status in ("partial", "running", "failed") and row["step"] else status
        seconds = row["train_seconds"] + (row["eval_seconds"] or 0.0)
        table.add_row(run.id, run.dataset["source"], str(run.train["steps"]), label,
                      "-" if status == "done" else _fmt_seconds(seconds))
    console = Console(width=max(Console().width, 120))  # run ids stay on one line in logs
    console.print(table)
    _print_totals(console, summary)


def _print_summary(summary, out_dir: Path) -> None:
    """The dry run without ``--list``: counts by status, model and dataset (lines bounded by the grid's models
    and datasets, not its runs), the speeds and the estimate."""
    from rich.console import Console
    from rich.table import Table

    from disent_bench.runner.planning import STATUS_ORDER

    console = Console(width=max(Console().width, 120))
    statuses = [s for s in STATUS_ORDER if s in summary.by_status] + sorted(
        s for s in summary.by_status if s not in STATUS_ORDER)
    for title, counts, seconds in (("model", summary.by_model, summary.seconds_by_model),
                                   ("dataset", summary.by_dataset, summary.seconds_by_dataset)):
        table = Table(title=f"runs in {out_dir} by {title}", show_lines=False)
        table.add_column(title)
        table.add_column("runs", justify="right")
        for status in statuses:
            table.add_column(status, justify="right")
        table.add_column("estimate", justify="right")
        for name, by_status in counts.items():
            table.add_row(name, f"{sum(by_status.values()):,}", *(f"{by_status.get(s, 0):,}" for s in statuses),
                          _fmt_seconds(seconds[name]))
        console.print(table)
    _print_totals(console, summary)
    console.print("one line per run: add --list")


def _print_totals(console, summary) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
    console.print(f"{summary.runs} runs: {counts}")
    if summary.speeds:
        console.print("training speed: " + "; ".join(f"{model} {ips:.0f} img/s ({source})"
                                                     for model, (ips, source) in summary.speeds.items()))
    note = " + evaluation (no finished run to time it from yet)" if summary.unknown_eval else ""
    console.print(f"estimated time left at 1 job: {_fmt_seconds(summary.seconds)}{note}")


def _check_writable(out_dir: Path) -> None:
    """:class:`UserError` (exit 2, nothing ran) when the results directory cannot be created or written."""
    import tempfile

    from disent_bench.errors import storage_error

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-probe.", suffix=".tmp"):
            pass
    except OSError as exc:
        problem = storage_error(exc, exc.filename or out_dir)
        raise UserError(f"results directory {out_dir} is not writable"
                        f"{': ' + str(problem).split(': ', 1)[1] if problem else f' ({exc.strerror})'}; "
                        "choose another with --out") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        grid: Annotated[Path, typer.Option("--grid", "-g", help="The grid file (TOML), e.g. benchmarks.toml.")],
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Results directory [default: results/<benchmark name>].")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Count the runs by status, model and dataset; estimate the time; run nothing.")] = False,
        list_runs: Annotated[bool, typer.Option(
            "--list", help="With --dry-run (implies it): one line per run, its status and estimate.")] = False,
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
        from disent_bench.grid import expand, iter_runs, load_grid
        from disent_bench.runner import check_data, plan, time_breakdown
        from disent_bench.runner.planning import summarize

        spec = load_grid(grid)
        out_dir = out if out is not None else spec.default_out
        if list_runs:
            _print_plan(plan(select_runs(expand(spec), only), out_dir), out_dir)
            return
        if dry_run:  # the runs one at a time: a grid of millions is counted in bounded memory
            _print_summary(summarize(iter_selected(iter_runs(spec), only), out_dir), out_dir)
            return
        runs = select_runs(expand(spec), only)
        options = {"ray": {"address": address},
                   "slurm": {"slurm": spec.slurm, "partition": partition, "time_min": time_min,
                             "gpus_per_node": gpus_per_node, "array_parallelism": array_parallelism,
                             "wait": wait}}.get(executor, {})
        runner = get_executor(executor, **options)
        check_data(runs)
        _check_writable(out_dir)  # before anything runs: a read-only or forbidden place is exit code 2
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
