"""Results as tables: every finished run (pandas), summaries over seeds, Markdown and LaTeX.

``runs.csv`` has one row per run and representation with every setting and every metric;
``summary.csv`` has mean, std and n over seeds per dataset x source x preset x model setting x
representation; ``summary.md`` / ``summary.tex`` show the headline metrics as mean +- std with the best
value per column in bold (lower is better for reconstruction errors).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from disent_bench.runner import is_done, read_metrics

#: Columns that identify a group of runs differing only by seed (plus varying settings, see setting_columns).
# Runs are only summarised together when all of these agree; "metric_settings" is a short id of the
# grid's per-metric overrides of the preset (sample sizes), listed in the provenance header.
SECTION_COLUMNS = ["dataset", "source", "preset", "metric_settings", "representation"]
SETTING_CANDIDATES = ["latent_dim", "steps", "batch_size", "lr"]

#: The one score per metric shown in summary.md/.tex and in plots, in display order, with its label.
HEADLINE = {
    "beta_vae.eval_accuracy": "BetaVAE",
    "factor_vae.eval_accuracy": "FactorVAE",
    "mig.score": "MIG",
    "dci.disentanglement": "DCI disent.",
    "sap.score": "SAP",
    "modularity.score": "Modularity",
    "reconstruction.bce": "Recon. BCE",
}
#: Disentanglement scores (not reconstruction) among the headline metrics.
NOT_SCORES = ("reconstruction.", "images_encoded", "seconds")


def lower_is_better(column: str) -> bool:
    """Reconstruction errors and timings are better when lower; every score is better when higher."""
    return column.startswith("reconstruction.") or column.endswith("seconds")


def is_metric_column(column: str) -> bool:
    return "." in column and not column.startswith(("param.", "train.")) or column in ("images_encoded",)


def _flatten_params(params: dict[str, Any]) -> dict[str, Any]:
    return {f"param.{k}": v for k, v in sorted(params.items()) if k != "beta"}


def load_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per finished run and representation under ``results_dir/runs``; empty frame if none."""
    rows = []
    for directory in sorted(Path(results_dir).glob("runs/*")):
        if not directory.is_dir() or not is_done(directory):
            continue
        record = read_metrics(directory)
        if record is None:
            continue
        config = record.get("config", {})
        prov = record.get("provenance", {})
        hparams = record.get("model_hparams", {})
        model_name = config.get("model", {}).get("name", hparams.get("name", "?"))
        params = config.get("model", {}).get("params", {})
        beta = hparams.get("beta", params.get("beta"))
        if beta is None and model_name == "vae":
            beta = 1.0  # a VAE is a beta-VAE with beta = 1
        dataset = prov.get("dataset", {})
        train = record.get("train", {})
        base = {
            "run_id": record.get("run_id", directory.name),
            "benchmark": config.get("benchmark"),
            "dataset": dataset.get("name", config.get("dataset", {}).get("name")),
            "source": dataset.get("source", config.get("dataset", {}).get("source")),
            "source_requested": config.get("dataset", {}).get("source"),
            "dataset_checksum": dataset.get("checksum"),
            "model": model_name,
            "beta": float(beta) if beta is not None else np.nan,
            "latent_dim": config.get("model", {}).get("latent_dim", hparams.get("latent_dim")),
            **_flatten_params(params),
            "seed": config.get("seed"),
            "steps": config.get("train", {}).get("steps"),
            "batch_size": config.get("train", {}).get("batch_size"),
            "lr": config.get("train", {}).get("lr"),
            "preset": config.get("eval", {}).get("preset", prov.get("eval_preset")),
            "eval_settings": json.dumps(config.get("eval", {}).get("settings", {}), sort_keys=True),
            "device": prov.get("device"),
            "train_seconds": train.get("seconds_total"),
            "disent_bench": prov.get("disent_bench"),
            "python": prov.get("python"),
            "torch": prov.get("torch"),
            "numpy": prov.get("numpy"),
            "scikit_learn": prov.get("scikit_learn"),
            "date": prov.get("date"),
        }
        for representation, scores in record.get("results", {}).items():
            row = dict(base, representation=representation,
                       eval_seconds=record.get("eval", {}).get("seconds", {}).get(representation))
            for key, value in scores.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[key] = float(value)
            rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["metric_settings"] = [_settings_id(v) for v in frame["eval_settings"]]
        frame["label"] = [model_label(m, b) for m, b in zip(frame["model"], frame["beta"])]
        # Rows read AE, VAE, then beta-VAE by beta, then other models: the order a reader expects.
        frame["_order"] = frame["model"].map({"ae": 0, "vae": 1, "beta_vae": 2}).fillna(3)
        frame = frame.sort_values(["dataset", "source", "preset", "representation", "_order", "model", "beta",
                                   "seed"], na_position="first", kind="stable").drop(columns="_order")
        frame = frame.reset_index(drop=True)
        frame = _drop_repeats(frame)
    return frame


def _drop_repeats(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the latest of runs that repeat the same setting and seed (e.g. left by an older grid
    version under another id), so that no seed is counted twice in a mean."""
    import warnings

    key = [c for c in group_columns(frame) + ["seed", "eval_settings"] if c in frame.columns]
    latest = frame.sort_values("date", kind="stable").duplicated(subset=key, keep="last")
    repeated = latest.reindex(frame.index)
    if repeated.any():
        dropped = sorted(set(frame.loc[repeated, "run_id"]))
        warnings.warn(f"{len(dropped)} finished run(s) repeat the setting and seed of a newer run and are left "
                      f"out of the report: {', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}",
                      stacklevel=3)
    return frame[~repeated].reset_index(drop=True)


def _settings_id(settings_json: str) -> str:
    """``"preset"`` without overrides, else a short stable id of the overrides."""
    import hashlib

    if json.loads(settings_json) == {}:
        return "preset"
    return "custom-" + hashlib.sha256(settings_json.encode()).hexdigest()[:6]


def model_label(model: str, beta: float | None, *, latex: bool = False) -> str:
    """``AE``, ``VAE``, ``beta-VAE (beta=4)`` (or LaTeX), else the model's own name."""
    if model == "ae":
        return "AE"
    if model == "vae":
        return "VAE"
    if model == "beta_vae":
        b = f"{beta:g}" if beta is not None and not (isinstance(beta, float) and math.isnan(beta)) else "?"
        return f"$\\beta$-VAE ($\\beta={b}$)" if latex else f"β-VAE (β={b})"
    return model


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Every metric column of a runs frame ("<metric>.<name>" plus images_encoded)."""
    return [c for c in frame.columns if ("." in c and not c.startswith("param.")) or c == "images_encoded"]


def headline_columns(frame: pd.DataFrame) -> list[str]:
    """The headline metric of each metric present in ``frame`` (in HEADLINE order)."""
    present = [c for c in HEADLINE if c in frame.columns and frame[c].notna().any()]
    if not present:  # unknown metric names: fall back to every non-timing metric
        present = [c for c in metric_columns(frame) if not c.endswith("seconds") and c != "images_encoded"]
    return present


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that tell settings apart besides model and beta: those that vary in ``frame``."""
    candidates = SETTING_CANDIDATES + sorted(c for c in frame.columns if c.startswith("param."))
    return [c for c in candidates if c in frame.columns and frame[c].astype(str).nunique() > 1]


def group_columns(frame: pd.DataFrame) -> list[str]:
    return SECTION_COLUMNS + ["model", "beta", "label"] + setting_columns(frame)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds for every metric, per dataset x source x preset x representation x setting."""
    if frame.empty:
        return pd.DataFrame()
    keys = group_columns(frame)
    metrics = metric_columns(frame) + [c for c in ("train_seconds", "eval_seconds") if c in frame.columns]
    grouped = frame.groupby(keys, dropna=False, sort=False)
    parts = []
    for stat in ("mean", "std", "count"):
        part = getattr(grouped[metrics], stat)()
        part.columns = [f"{c}:{'n' if stat == 'count' else stat}" for c in part.columns]
        parts.append(part)
    summary = pd.concat(parts, axis=1)
    ordered = []
    for c in metrics:
        ordered += [f"{c}:mean", f"{c}:std", f"{c}:n"]
    summary = summary[ordered].reset_index()
    summary.insert(len(keys), "n_seeds", grouped.size().values)
    return summary


def sections(frame: pd.DataFrame) -> Iterable[tuple[dict[str, Any], pd.DataFrame]]:
    """(section keys, rows) per dataset x source x preset x representation: results kept apart."""
    if frame.empty:
        return
    for key, part in frame.groupby(SECTION_COLUMNS, sort=False, dropna=False):
        yield dict(zip(SECTION_COLUMNS, key)), part


def section_title(section: dict[str, Any]) -> str:
    source = section["source"]
    tag = "SYNTHETIC data" if source == "synthetic" else f"{source} data"
    settings = "" if section.get("metric_settings", "preset") == "preset" else f" ({section['metric_settings']})"
    return (f"{section['dataset']} ({tag}), {section['preset']} metric preset{settings}, "
            f"{section['representation']} representation")


def _setting_label(row: pd.Series, extra: list[str], *, latex: bool = False) -> str:
    label = model_label(row["model"], row["beta"], latex=latex)
    bits = [f"{c.removeprefix('param.')}={row[c]}" for c in extra]
    return label + (f" [{', '.join(bits)}]" if bits else "")


def _best(values: pd.Series, column: str) -> float | None:
    finite = values.dropna()
    if finite.empty:
        return None
    return finite.min() if lower_is_better(column) else finite.max()


def _cell(mean: float, std: float, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _digits(column: str) -> int:
    return 1 if column.startswith("reconstruction.") else 3


def section_table(summary_part: pd.DataFrame, headline: list[str], extra: list[str], *,
                  latex: bool = False) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, cells and bold flags of one section's summary table."""
    header = ["Model", "n"] + [HEADLINE.get(c, c) + (" ↓" if lower_is_better(c) else " ↑") for c in headline]
    rows, bold = [], []
    best = {c: _best(summary_part[f"{c}:mean"], c) for c in headline}
    for _, row in summary_part.iterrows():
        cells = [_setting_label(row, extra, latex=latex), str(int(row["n_seeds"]))]
        flags = [False, False]
        for c in headline:
            mean, std = row[f"{c}:mean"], row[f"{c}:std"]
            cells.append(_cell(mean, std, _digits(c)))
            flags.append(best[c] is not None and not math.isnan(mean)
                         and round(mean, _digits(c)) == round(best[c], _digits(c)))
        rows.append(cells)
        bold.append(flags)
    return header, rows, bold


def to_markdown(frame: pd.DataFrame, summary: pd.DataFrame, provenance_lines: list[str]) -> str:
    """summary.md: a provenance header, then one table per section."""
    lines = ["# disent-bench summary", ""]
    lines += [f"- {line}" for line in provenance_lines]
    lines.append("")
    lines.append("Cells are mean ± std over seeds (n = number of seeds); ↑ higher is better, ↓ lower is better; "
                 "the best value of each column is in **bold**.")
    extra = setting_columns(frame)
    headline = headline_columns(frame)
    for section, _ in sections(frame):
        part = _section_rows(summary, section)
        cols = [c for c in headline if part[f"{c}:mean"].notna().any()]
        header, rows, bold = section_table(part, cols, extra)
        lines += ["", f"## {section_title(section)}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        for cells, flags in zip(rows, bold):
            lines.append("| " + " | ".join(f"**{c}**" if f else c for c, f in zip(cells, flags)) + " |")
    return "\n".join(lines) + "\n"


def _section_rows(summary: pd.DataFrame, section: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(summary), dtype=bool)
    for key, value in section.items():
        mask &= (summary[key] == value).to_numpy() | (summary[key].isna() & pd.isna(value)).to_numpy()
    return summary[mask]


_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, summary: pd.DataFrame, provenance_lines: list[str]) -> str:
    """summary.tex: booktabs tables (one per section), provenance as a comment header; needs \\usepackage{booktabs}."""
    out = ["% disent-bench summary (requires \\usepackage{booktabs})"]
    out += [f"% {line}" for line in provenance_lines]
    extra = setting_columns(frame)
    headline = headline_columns(frame)
    for section, _ in sections(frame):
        part = _section_rows(summary, section)
        cols = [c for c in headline if part[f"{c}:mean"].notna().any()]
        header, rows, bold = section_table(part, cols, extra, latex=True)
        n_values = sorted({int(n) for n in part["n_seeds"]})
        n_text = ", ".join(map(str, n_values))
        out += ["", "\\begin{table}[t]", "\\centering", "\\small",
                f"\\caption{{{tex_escape(section_title(section))}. Mean $\\pm$ std over {n_text} seeds; "
                "best per column in bold ($\\uparrow$ higher is better, $\\downarrow$ lower is better).}",
                "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule"]
        tex_header = [tex_escape(h.replace(" ↑", "").replace(" ↓", "")) +
                      (" $\\downarrow$" if h.endswith("↓") else " $\\uparrow$" if h.endswith("↑") else "")
                      for h in header]
        out.append(" & ".join(tex_header) + " \\\\")
        out.append("\\midrule")
        for cells, flags in zip(rows, bold):
            tex_cells = []
            for i, (cell, flag) in enumerate(zip(cells, flags)):
                text = cell if i == 0 else tex_escape(cell).replace("±", "$\\pm$").replace("–", "--")
                tex_cells.append(f"\\textbf{{{text}}}" if flag else text)
            out.append(" & ".join(tex_cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def provenance_lines(frame: pd.DataFrame) -> list[str]:
    """What a reader needs to trust the tables: versions, data sources and checksums, metric settings, date."""
    import datetime as dt

    from disent_bench.metrics import PRESETS

    lines = [f"report date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; "
             f"{frame['run_id'].nunique()} runs, "
             f"trained {frame['date'].min()} .. {frame['date'].max()}"]
    versions = []
    for column in ("disent_bench", "python", "torch", "numpy", "scikit_learn"):
        values = sorted({str(v) for v in frame[column].dropna()})
        versions.append(f"{column.replace('_', '-')} {'/'.join(values) or '?'}")
    lines.append("versions: " + ", ".join(versions))
    lines.append("devices: " + ", ".join(sorted({str(v) for v in frame["device"].dropna()})))
    for (name, source), part in frame.groupby(["dataset", "source"], sort=False):
        checksums = sorted({str(v)[:16] for v in part["dataset_checksum"].dropna()})
        tag = "SYNTHETIC rendering (not the official data)" if source == "synthetic" else f"{source} file"
        lines.append(f"dataset {name}: {tag}, sha256 {', '.join(checksums) or '?'}…")
    for (preset, settings, settings_id), part in frame.groupby(["preset", "eval_settings", "metric_settings"],
                                                               sort=False):
        merged = {m: dict(v) for m, v in PRESETS.get(preset, {}).items()}
        for metric, overrides in json.loads(settings).items():
            merged.setdefault(metric, {}).update(overrides)
        present = {c.split(".")[0] for c in metric_columns(part)}
        text = "; ".join(f"{m} " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in s.items())
                         for m, s in merged.items() if m in present)
        overridden = f" ({settings_id}: the preset with the grid's overrides)" if json.loads(settings) else ""
        lines.append(f"metric preset {preset}{overridden}: {text}")
    steps = sorted({int(s) for s in frame["steps"].dropna()})
    lines.append(f"training steps: {', '.join(map(str, steps))}; seeds per setting as n in each table")
    return lines


def write_tables(frame: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write runs.csv, summary.csv, summary.md and summary.tex atomically; return their paths."""
    from disent_bench._io import atomic_path, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(frame)
    prov = provenance_lines(frame)
    paths = {"runs.csv": out_dir / "runs.csv", "summary.csv": out_dir / "summary.csv",
             "summary.md": out_dir / "summary.md", "summary.tex": out_dir / "summary.tex"}
    with atomic_path(paths["runs.csv"]) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(paths["summary.csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    atomic_write_text(paths["summary.md"], to_markdown(frame, summary, prov))
    atomic_write_text(paths["summary.tex"], to_latex(frame, summary, prov))
    return paths
