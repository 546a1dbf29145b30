"""``disent-bench eval CHECKPOINT --dataset NAME``: score a trained model with the disentanglement metrics."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from disent_bench.errors import UserError


def _print_table(result: dict[str, float], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("seconds", justify="right")
    groups: dict[str, list[tuple[str, float]]] = {}
    hidden = 0
    for key, value in result.items():
        if "_factor_" in key:  # the downstream task's per-factor accuracies: ~100 rows; --json has them
            hidden += 1
            continue
        if "." in key:
            metric, name = key.split(".", 1)
            groups.setdefault(metric, []).append((name, value))
    for metric, items in groups.items():
        seconds = dict(items).get("seconds")
        scores = [(name, value) for name, value in items if name != "seconds"]
        for i, (name, value) in enumerate(scores):
            table.add_row(f"{metric}.{name}", _fmt(value),
                          f"{seconds:.1f}" if i == 0 and seconds is not None else "")
    encoding = result.get("encoding_seconds")
    table.add_row("images_encoded", f"{int(result['images_encoded']):,}",
                  f"{encoding:.1f}" if encoding is not None else "", end_section=True)
    table.add_row("total", "", f"{result['seconds']:.1f}")
    if hidden:
        table.caption = f"{hidden} per-factor accuracies not shown: --json prints every score"
    Console().print(table)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value)}"
    return f"{value:.4f}"


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        checkpoint: Annotated[Path, typer.Argument(help="A training checkpoint (checkpoint.pt) or its run directory.")],
        dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name, e.g. dsprites.")],
        source: Annotated[str, typer.Option(help="Dataset source: auto, official or synthetic.")] = "auto",
        metrics: Annotated[Optional[str], typer.Option(
            help="Comma-separated metrics (default: all of) beta_vae,factor_vae,mig,dci,sap,modularity,reconstruction,"
                 "unsupervised,downstream,irs,mig_sup,jemmig,dcimig,infomec.")] = None,
        preset: Annotated[str, typer.Option(help="Sample sizes: paper (reference protocol) or quick.")] = "paper",
        seed: Annotated[int, typer.Option(help="Evaluation seed: every sample and estimator derives from it.")] = 0,
        representation: Annotated[str, typer.Option(help="mean (headline) or sampled (mean + std * noise).")] = "mean",
        device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
        threads: Annotated[Optional[int], typer.Option(
            min=1, help="CPU threads of the evaluation: torch's (encoding), the BLAS pools' and DCI's boosting "
                        "(default: torch's and BLAS's own settings, and the cores this process may use for "
                        "DCI).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    ) -> None:
        """Score a trained model on a dataset with the reference-protocol metrics."""
        from disent_bench import metrics as metric_lib
        from disent_bench.data import get_dataset
        from disent_bench.devices import resolve_device
        from disent_bench.train import load_model

        # Check every argument before the slow parts (loading data, encoding).
        names = metric_lib.parse_metrics(metrics) if metrics else list(metric_lib.DEFAULT_METRICS)
        if preset not in metric_lib.PRESETS:
            raise UserError(f"unknown --preset {preset!r}; valid presets: {', '.join(metric_lib.PRESETS)}")
        if representation not in metric_lib.REPRESENTATIONS:
            raise UserError(f"unknown --representation {representation!r}; valid: "
                            f"{', '.join(metric_lib.REPRESENTATIONS)}")
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
        if not checkpoint.exists():
            raise UserError(f"checkpoint {checkpoint} not found")
        torch_device = resolve_device(device)
        model = load_model(checkpoint, device=torch_device)
        data = get_dataset(dataset, source=source, progress=not as_json)
        from disent_bench.runner.resources import cpu_threads

        with cpu_threads(threads) if threads is not None else contextlib.nullcontext():
            result = metric_lib.evaluate(data, model, metrics=names, preset=preset, seed=seed,
                                         representation=representation, device=torch_device,
                                         progress=not as_json, threads=threads)
        if as_json:
            typer.echo(json.dumps({"checkpoint": str(checkpoint), "dataset": data.name, "source": data.source,
                                   "preset": preset, "seed": seed, "representation": representation,
                                   "versions": metric_lib.versions(),
                                   # NaN (an undefined score) and inf (unsupervised TC of a singular
                                   # covariance) are not JSON: write null.
                                   "scores": {k: (v if math.isfinite(v) else None) for k, v in result.items()}}))
        else:
            _print_table(result, f"{checkpoint} on {data.name} ({data.source}), preset {preset}, "
                                 f"seed {seed}, {representation} code")
