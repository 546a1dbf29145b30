"""``disent-bench data ...``: list, fetch, generate, verify, show and compare the ground-truth datasets."""

from __future__ import annotations

import functools
import importlib
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from disent_bench import reference_compare
from disent_bench._io import atomic_path, check_output_path
from disent_bench.errors import UserError

data_app = typer.Typer(help="Datasets: list, download, render synthetic copies, picture and compare them.",
                       no_args_is_help=True)

DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Data home (overrides the global --data-dir / DISENT_BENCH_DATA).")]


def _user_errors(command):
    """Show a UserError as one ``error: ...`` line with exit code 2 (also under typer's test runner)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            # Local: disent_bench.cli imports this module before it defines fail (a cycle at import time).
            from disent_bench.cli import fail

            raise fail(str(exc)) from None
    return wrapper


def _use_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["DISENT_BENCH_DATA"] = str(data_dir)


def _check_png_output(out: Path) -> None:
    try:
        check_output_path(out, ".png")
    except UserError as exc:
        raise UserError(f"--out: {exc}") from None


@data_app.command("list")
@_user_errors
def list_datasets(data_dir: DataDirOption = None) -> None:
    """Show every dataset: factors, image count, nuisance, official files and synthetic cache (reads no images)."""
    # Local, as every disent_bench.data import in this module: rich.console and rich.table take ~0.06 s to
    # import and disent_bench.data ~3 s (it loads torch), against ~0.3 s for the whole CLI (-X importtime,
    # 2-core machine); every command would pay them at start-up.
    from rich.console import Console
    from rich.table import Table

    from disent_bench.data import available, data_home, dataset_status

    _use_data_dir(data_dir)
    table = Table(title=f"datasets in {data_home()}")
    table.add_column("name", no_wrap=True)
    for column in ("factors (sizes)", "images", "per observation", "official file(s)", "synthetic"):
        table.add_column(column)
    for name in available():
        status = dataset_status(name)
        files = status["official_files"]
        if not files:
            official = "-- (none: rendering only)"
        else:
            verified = sum(f["verified"] for f in files.values())
            present = sum(f["present"] for f in files.values())
            count = f" ({present}/{len(files)} files)" if len(files) > 1 else ""
            official = ("present, verified" if verified == len(files) else
                        "present, not yet verified" if present == len(files) else
                        "missing" if present == 0 else "incomplete") + count
        if not status["has_synthetic"]:
            synthetic = "none: `data fetch` it"
        elif status["synthetic_present"] is None:
            synthetic = "from synthetic dsprites"
        else:
            synthetic = "present" if status["synthetic_present"] else "missing"
        factors = ", ".join(f"{factor} {size}" for factor, size in status["factors"].items())
        table.add_row(name, factors, f"{status['num_images']:,}", status["nuisance"] or "-", official, synthetic)
    Console().print(table)


@data_app.command("fetch")
@_user_errors
def fetch_dataset(name: Annotated[str, typer.Argument(help="Dataset name (see `data list`), or `scream` for the painting alone.")],
                  data_dir: DataDirOption = None) -> None:
    """Download the official file(s) (resumable), verify them (checksum, else format), put them into the data home."""
    from disent_bench.data import get_file, get_spec
    from disent_bench.data.fetch import fetch

    _use_data_dir(data_dir)
    if get_file(name) is None:
        get_spec(name)  # an unknown name lists the datasets
    path = fetch(name)
    if path.is_dir():
        files = ", ".join(f.filename for f in get_spec(name).files)
        typer.echo(f"{name}: official files verified in {path}: {files}")
    else:
        typer.echo(f"{name}: official file verified at {path}")


@data_app.command("generate")
@_user_errors
def generate_dataset(name: Annotated[str, typer.Argument(help="Dataset name (see `data list`).")],
                     force: Annotated[bool, typer.Option("--force", help="Render again even if cached.")] = False,
                     data_dir: DataDirOption = None) -> None:
    """Render the synthetic version of a dataset into the data home's cache."""
    from disent_bench.data import dataset_status, generate_synthetic, get_spec

    _use_data_dir(data_dir)
    get_spec(name)  # unknown names fail before anything is written
    cached = dataset_status(name)["synthetic_present"]
    start = time.perf_counter()
    path = generate_synthetic(name, force=force)
    seconds = time.perf_counter() - start
    if cached and not force:
        typer.echo(f"{name}: synthetic cache already at {path} (use --force to render again)")
    else:
        typer.echo(f"{name}: rendered {dataset_status(name)['num_images']:,} images in {seconds:.1f} s -> {path}")


@data_app.command("verify")
@_user_errors
def verify_datasets(name: Annotated[Optional[str], typer.Argument(
                        help="Dataset name (see `data list`); every file in the data home when left out.")] = None,
                    data_dir: DataDirOption = None) -> None:
    """Hash every official file, synthetic cache and converted store against its recorded checksum.

    One line per file: OK, CORRUPT (expected vs actual) or missing. Exit code 1 when any file is corrupt.
    """
    from disent_bench.data import data_home, get_spec
    from disent_bench.data.integrity import verify_data

    _use_data_dir(data_dir)
    if name is not None:
        get_spec(name)  # an unknown name lists the datasets
    start = time.perf_counter()
    verdicts = verify_data(name)
    seconds = time.perf_counter() - start
    if not verdicts:
        typer.echo(f"nothing to verify in {data_home()}: no dataset fetched or rendered there")
        return
    for verdict in verdicts:
        typer.echo(f"{verdict.status:<10} {verdict.dataset} {verdict.kind}: {verdict.path}"
                   + (f": {verdict.detail}" if verdict.detail else ""))
    counts = {status: sum(v.status == status for v in verdicts) for status in ("OK", "CORRUPT", "missing", "unrecorded")}
    typer.echo(", ".join(f"{count} {status}" for status, count in counts.items() if count) + f" ({seconds:.1f} s)")
    if counts["CORRUPT"]:
        raise typer.Exit(1)


@data_app.command("show")
@_user_errors
def show_dataset(name: Annotated[str, typer.Argument(help="Dataset name (see `data list`).")],
                 out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
                 source: Annotated[str, typer.Option(help="auto, official or synthetic.")] = "auto",
                 seed: Annotated[int, typer.Option(help="Seed for the random base image.")] = 0,
                 correlations: Annotated[Optional[list[str]], typer.Option(
                     "--correlations", help="A correlated pair as training would draw it, FACTOR,FACTOR,SIGMA[,anti] "
                                            "(repeatable, as a grid's [[datasets]] correlations): also write "
                                            "OUT-correlations.png, the joint histogram of each pair in training "
                                            "draws.")] = None,
                 data_dir: DataDirOption = None) -> None:
    """Picture each factor: one row per factor, traversing all its values from a random base image."""
    from disent_bench.data import correlation, get_dataset, get_spec

    _use_data_dir(data_dir)
    spec = get_spec(name)
    _check_png_output(out)
    parsed = ()
    if correlations:  # checked before any data is loaded
        parsed = correlation.parse_correlations([_correlation_entry(text) for text in correlations],
                                                list(spec.factor_names), list(spec.factor_sizes))
    dataset = get_dataset(name, source=source)
    _write_traversal_png(dataset, out, seed)
    typer.echo(f"{name} ({dataset.source}): factor traversals written to {out}")
    if parsed:
        joint = out.with_name(out.stem + "-correlations.png")
        _write_correlation_png(dataset, parsed, joint, seed)
        typer.echo(f"{name}: joint histograms of {CORRELATION_DRAWS:,} training draws "
                   f"({correlation.describe(parsed)}) written to {joint}")


CORRELATION_DRAWS = 100_000


def _correlation_entry(text: str) -> dict:
    """``"posX,posY,0.2[,anti]"`` as a grid's correlations entry (UserError naming the text otherwise)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "anti"):
        raise UserError(f"--correlations {text!r}: write FACTOR,FACTOR,SIGMA or FACTOR,FACTOR,SIGMA,anti "
                        "(e.g. posX,posY,0.2)")
    try:
        sigma = float(parts[2])
    except ValueError:
        raise UserError(f"--correlations {text!r}: sigma must be a number, got {parts[2]!r}") from None
    return {"factors": parts[:2], "sigma": sigma, "anti": len(parts) == 4}


def _write_correlation_png(dataset, parsed, out: Path, seed: int) -> None:
    """Per correlated pair, the joint histogram of its two factors' classes in training draws (as the trainer
    draws them: grid points with the correlated weights), beside the independent grid's uniform draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from disent_bench._io import atomic_path
    from disent_bench.data import correlation

    weights = correlation.grid_weights(dataset.factor_sizes, parsed)
    rng = np.random.default_rng(seed)
    draws = dataset.factors_of(rng.choice(len(weights), size=CORRELATION_DRAWS, p=weights))
    fig, axes = plt.subplots(1, len(parsed), figsize=(4.6 * len(parsed), 4.2), squeeze=False)
    for axis, pair in zip(axes[0], parsed):
        a, b = pair.indices
        counts = np.zeros((dataset.factor_sizes[a], dataset.factor_sizes[b]))
        np.add.at(counts, (draws[:, a], draws[:, b]), 1)
        image = axis.imshow(counts.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        axis.set_xlabel(f"{pair.factors[0]} (class)")
        axis.set_ylabel(f"{pair.factors[1]} (class)")
        axis.set_title(f"{pair.factors[0]}~{'-' if pair.anti else ''}{pair.factors[1]}, σ = {pair.sigma:g}", fontsize=10)
        fig.colorbar(image, ax=axis, label="training draws")
    fig.suptitle(f"{dataset.name} ({dataset.source}): {CORRELATION_DRAWS:,} training draws, "
                 f"{correlation.describe(parsed)}\n(the independent grid, from which evaluation always draws, "
                 "would fill every cell equally)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _shape_names(dataset) -> tuple[str, ...] | None:
    """Names of shape classes by official value: dSprites counts shapes from 1, 3D Shapes from 0."""
    names = getattr(dataset, "shape_names", None)  # set by loaders that check the labels
    if names is None:
        module = "dsprites" if "dsprites" in dataset.name else dataset.name.removesuffix("_tiny")
        try:
            names = importlib.import_module(f"disent_bench.data.{module}").SHAPE_NAMES
        except (ImportError, AttributeError):
            return None
    return tuple(names)


def _value_label(dataset, factor: int, value_class: int) -> str:
    """A short label for one value of a factor: shape names, degrees for radians, else the value."""
    values = dataset.factor_values
    if values is None or len(values[factor]) != dataset.factor_sizes[factor]:
        return str(value_class)
    value = float(values[factor][value_class])
    factor_name = dataset.factor_names[factor]
    named = getattr(dataset, "value_names", {}).get(factor_name)  # categorical factors (MPI3D, SmallNORB)
    if named is not None and len(named) == dataset.factor_sizes[factor]:
        return named[value_class]
    if factor_name == "shape":
        names = _shape_names(dataset)
        first = 1 if "dsprites" in dataset.name else 0
        if names is not None and 0 <= int(round(value)) - first < len(names):
            return names[int(round(value)) - first]
    if factor_name == "orientation" and "dsprites" in dataset.name:
        return f"{np.degrees(value):.0f}\u00b0"  # radians in the file
    return f"{value:.2f}".rstrip("0").rstrip(".")


MAX_SHOWN = 40  # a traversal shows at most this many values (Cars3D has 183 objects): evenly spaced


def _shown_classes(size: int) -> np.ndarray:
    if size <= MAX_SHOWN:
        return np.arange(size)
    return np.unique(np.linspace(0, size - 1, MAX_SHOWN).round().astype(np.int64))


def _write_traversal_png(dataset, out: Path, seed: int) -> None:
    # Local: matplotlib.pyplot takes ~1.2 s to import (-X importtime, after disent_bench.data, 2-core machine),
    # which only `data show` needs.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    base = dataset.sample_factors(1, rng)[0]
    height, width, channels = dataset.image_shape
    nuisance = getattr(dataset, "has_nuisance", False)
    # With per-observation nuisance, a traversal keeps one draw of it (one observation key) so only the
    # factor changes, and a last row shows fresh draws of the base factors.
    draws = 12
    gap = 2
    longest = max(*(len(_shown_classes(n)) for n in dataset.factor_sizes), draws if nuisance else 0)
    strip_width = longest * (width + gap)
    # Size the figure so each strip fills its row: images ~0.9 in tall, labels left and below.
    image_in, label_in, left_in, title_in = 0.9, 0.45, 1.2, 0.6
    strip_in = image_in * strip_width / height
    fig_w = left_in + strip_in + 0.1
    num_rows = dataset.num_factors + (1 if nuisance else 0)
    fig_h = num_rows * (image_in + label_in) + title_in
    fig, axes = plt.subplots(num_rows, 1, squeeze=False, figsize=(fig_w, fig_h))
    fig.subplots_adjust(left=left_in / fig_w, right=(left_in + strip_in) / fig_w, top=1 - title_in / fig_h,
                        bottom=label_in / fig_h, hspace=label_in / image_in)
    for factor, axis in enumerate(axes[:, 0]):
        if factor < dataset.num_factors:
            classes = _shown_classes(dataset.factor_sizes[factor])
            size = len(classes)
            rows = np.repeat(base[None], size, axis=0)
            rows[:, factor] = classes
            keys = np.tile(np.array([[seed, 0]], dtype=np.uint64), (size, 1)) if nuisance else None
            images = dataset.images(dataset.index_of(rows), keys=keys)
            label = dataset.factor_names[factor] + ("" if size == dataset.factor_sizes[factor] else
                                                    f"\n({size} of {dataset.factor_sizes[factor]})")
            ticks = [_value_label(dataset, factor, c) for c in classes]
        else:
            size = draws
            keys = np.stack([np.full(size, seed, np.uint64), np.arange(size, dtype=np.uint64)], 1)
            images = dataset.images(dataset.index_of(np.repeat(base[None], size, axis=0)), keys=keys)
            label = "nuisance\n(fresh draws)"
            ticks = [f"draw {k}" for k in range(size)]
        strip = np.full((height, strip_width, 3), 255, dtype=np.uint8)
        for column, image in enumerate(images):
            x = column * (width + gap)
            strip[:, x:x + width] = image if channels == 3 else image[..., :1]
        axis.imshow(strip, interpolation="nearest")
        axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
        axis.set_xticks([c * (width + gap) + width / 2 for c in range(size)])
        axis.set_xticklabels(ticks, fontsize=6, rotation=90 if size > 12 else 0)
        axis.tick_params(length=0)
        for spine in axis.spines.values():
            spine.set_visible(False)
        axis.set_xlim(-gap, strip_width)
    base_text = ", ".join(f"{n}={c}" for n, c in zip(dataset.factor_names, base))
    fig.suptitle(f"{dataset.name} ({dataset.source}): each row varies one factor from the base image\n"
                 f"({base_text}; seed {seed})", fontsize=9, x=0.01, ha="left")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


@data_app.command("compare")
@_user_errors
def compare_dataset(name: Annotated[str, typer.Argument(help="dsprites or shapes3d.")],
                    reference: Annotated[Path, typer.Option("--reference", help="Official frames (gif).")],
                    out: Annotated[Optional[Path], typer.Option("--out", help="PNG of real vs synthetic.")] = None) -> None:
    """Match each real reference frame with its closest synthetic image and report how close they are."""
    from disent_bench.data import get_spec

    get_spec(name)
    module = _comparison_module(name)
    if not reference.is_file():
        raise UserError(f"--reference {reference} not found")
    if out is not None:
        _check_png_output(out)
    result = module.compare_reference(reference, out)
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if out is not None:
        typer.echo(f"picture: {out}")


def _comparison_module(name: str):
    comparable = reference_compare.DATASETS
    if name not in comparable:
        raise UserError(f"no reference comparison for {name!r}; it exists for: {', '.join(comparable)}")
    # Imported by name when a comparison runs: it imports disent_bench.data (~3 s, see list_datasets).
    module = importlib.import_module(f"{reference_compare.__name__}.{name}")
    if not hasattr(module, "compare_reference"):
        raise UserError(f"{module.__name__} has no compare_reference()")
    return module


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
