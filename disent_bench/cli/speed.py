"""``disent-bench speed``: training and encoding images/s here, and the loop's efficiency vs a bare loop.

``disent-bench speed --eval``: the time of each metric in a whole evaluation (paper preset by default).
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("speed")
    def speed(
        device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 64,
        steps: Annotated[int, typer.Option(help="Optimiser steps per timed repeat.")] = 20,
        repeats: Annotated[int, typer.Option(help="Interleaved repeats; medians are reported.")] = 3,
        model: Annotated[str, typer.Option(help="Model to time (a registered name).")] = "beta_vae",
        channels: Annotated[int, typer.Option(help="Image channels: 1 (dSprites-like) or 3 (RGB).")] = 1,
        warmup_steps: Annotated[int, typer.Option("--warmup-steps", help="Untimed steps of each loop first.")] = 3,
        encode_batch_size: Annotated[int, typer.Option("--encode-batch-size",
                                                       help="Batch size of the encoding measurement.")] = 256,
        channels_last: Annotated[Optional[bool], typer.Option(
            "--channels-last/--no-channels-last",
            help="Memory layout of the model (default: channels-last on CPU only).")] = None,
        threads: Annotated[Optional[int], typer.Option(
            help="CPU threads for torch (default: torch's choice, one per core).")] = None,
        pack: Annotated[Optional[int], typer.Option(
            "--pack", min=1, help="Instead: images/s of N runs trained packed against one run alone.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
        eval_: Annotated[bool, typer.Option(
            "--eval", help="Time a whole evaluation of the reference encoder instead: seconds per metric, "
                           "encoding vs bare forward images/s.")] = False,
        preset: Annotated[str, typer.Option(help="With --eval: the metric preset.")] = "paper",
        metrics: Annotated[Optional[str], typer.Option(
            help="With --eval: comma-separated metrics (default: all).")] = None,
        dataset: Annotated[str, typer.Option(help="With --eval: the dataset.")] = "dsprites",
        source: Annotated[str, typer.Option(help="With --eval: auto, official or synthetic.")] = "synthetic",
        dci_baseline: Annotated[bool, typer.Option(
            "--dci-baseline", help="With --eval: also time DCI's classifiers with scikit-learn's estimator "
                                   "on the same codes (slow: minutes at the paper preset).")] = False,
    ) -> None:
        """Measure training images/s of the real loop and of a bare loop (their ratio), and encoding images/s."""
        if eval_:
            _print_eval(device, threads, preset, metrics, dataset, source, dci_baseline, as_json)
            return
        from disent_bench.speed import measure_pack_speed, measure_speed

        if pack is not None:
            result = measure_pack_speed(device, pack, batch_size, steps, repeats=repeats, model=model,
                                        channels=channels, warmup_steps=warmup_steps, threads=threads)
            if as_json:
                typer.echo(json.dumps(result))
                return
            _print_table(f"disent-bench speed --pack {pack}: {result['model']}, batch {result['batch_size']}, "
                         f"{result['device']} ({result['device_name']}, {result['threads']} threads)",
                         ("measure", "images/s"),
                         [("one run alone (train())", f"{result['alone_images_per_s']:,.0f}"),
                          (f"{pack} runs packed, in total", f"{result['pack_images_per_s']:,.0f}"),
                          (f"{pack} runs packed, per run", f"{result['per_run_images_per_s']:,.0f}"),
                          ("packed total / alone", f"{result['speedup']:.2f}x")])
            typer.echo(f"medians of {result['repeats']} interleaved repeats of {result['steps']} steps; "
                       f"torch {result['torch_version']}")
            return

        result = measure_speed(device, batch_size, steps, repeats=repeats, model=model, channels=channels,
                               channels_last=channels_last, warmup_steps=warmup_steps,
                               encode_batch_size=encode_batch_size, threads=threads)
        if as_json:
            typer.echo(json.dumps(result))
            return
        _print_table(f"disent-bench speed: {result['model']}, batch {result['batch_size']}, "
                     f"{result['device']} ({result['device_name']}, {result['threads']} threads)",
                     ("measure", "images/s"),
                     [("training loop (train())", f"{result['train_images_per_s']:,.0f}"),
                      ("bare loop (one pre-made batch)", f"{result['bare_images_per_s']:,.0f}"),
                      ("ratio loop / bare (wall time)", f"{result['ratio']:.1%}"),
                      ("ratio loop / bare (CPU time)", f"{result['ratio_cpu_time']:.1%}"),
                      ("set-up of one train() call (CPU ms)", f"{result['setup_cpu_seconds'] * 1000:,.0f}"),
                      ("ratio loop / bare, set-up excluded (CPU time)", f"{result['ratio_cpu_time_steps']:.1%}"),
                      (f"encoding (batch {result['encode_batch_size']}, mean code)",
                       f"{result['encode_images_per_s']:,.0f}")])
        typer.echo(f"medians of {result['repeats']} interleaved repeats of {result['steps']} steps; "
                   f"channels_last={result['channels_last']}; torch {result['torch_version']}")


def _print_eval(device: str, threads: int | None, preset: str, metrics: str | None, dataset: str, source: str,
                dci_baseline: bool, as_json: bool) -> None:
    from disent_bench.speed_eval import measure_eval

    result = measure_eval(device, preset=preset, metrics=metrics, dataset=dataset, source=source, threads=threads,
                          dci_baseline=dci_baseline, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(result))
        return
    total = result["seconds"]
    rows = [(f"encoding ({result['images_encoded']:,} distinct images)", f"{result['encoding_seconds']:.1f}",
             f"{result['encoding_seconds'] / total:.0%}")]
    rows += [(name, f"{seconds:.1f}", f"{seconds / total:.0%}") for name, seconds in result["metric_seconds"].items()]
    rows.append(("whole evaluation", f"{total:.1f}", "100%"))
    _print_table(f"disent-bench speed --eval: {result['preset']} preset, {result['dataset']}, "
                 f"{result['device']} ({result['device_name']}, {result['threads']} threads)",
                 ("part", "seconds", "share"), rows)
    typer.echo(f"encoding {result['encode_images_per_s']:,.0f} images/s (gathering included) vs bare forward "
               f"{result['bare_encode_images_per_s']:,.0f} images/s (batch {result['batch_size']}, inference "
               f"mode): {result['encode_ratio']:.0%}; torch {result['torch_version']}")
    baseline = result.get("dci_baseline")
    if baseline:
        typer.echo(f"DCI classifiers on {baseline['num_train']:,} + {baseline['num_test']:,} codes, factor sizes "
                   f"{baseline['factor_sizes']}: exact re-implementation {baseline['exact_seconds']:.1f} s, "
                   f"scikit-learn {baseline['sklearn_seconds']:.1f} s ({baseline['speedup']:.1f}x); largest "
                   f"importance difference {baseline['max_importance_difference']:.1e}, accuracy differences "
                   f"{baseline['accuracy_differences']}")


def _print_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table: the first column left-aligned, the numbers right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
