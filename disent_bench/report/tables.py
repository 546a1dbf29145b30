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

from disent_bench.report.families import describe, display_tex, model_params, varying_params
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
    """One row per finished run and representation under ``results_dir/runs``; empty frame if none.

    Rows are in the order of the tables: dataset, source, preset, representation, then the families in
    the reference order (see :mod:`disent_bench.report.families`) by the value of their parameter.
    """
    rows, run_params = [], []
    for directory in sorted(Path(results_dir).glob("runs/*")):
        if not directory.is_dir() or not is_done(directory):
            continue
        record = read_metrics(directory)
        if record is None:
            continue
        config = record.get("config", {})
        prov = record.get("provenance", {})
        hparams = record.get("model_hparams") or {}
        model_name = config.get("model", {}).get("name", hparams.get("name", "?"))
        # The model's own record of its parameters (defaults included), else what the grid asked for.
        params = model_params(hparams) if hparams else dict(config.get("model", {}).get("params", {}))
        beta = params.get("beta")
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
            "beta": float(beta) if isinstance(beta, (int, float)) else np.nan,
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
                # Any numeric score, known or not (a new metric shows in runs.csv and summary.csv);
                # never one that would overwrite a setting column.
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in base:
                    row[key] = float(value)
            rows.append(row)
            run_params.append((model_name, params))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["metric_settings"] = [_settings_id(v) for v in frame["eval_settings"]]
        by_model: dict[str, list[dict]] = {}
        for model_name, params in run_params:
            by_model.setdefault(model_name, []).append(params)
        varying = varying_params(by_model)
        settings = [describe(m, p, varying[m]) for m, p in run_params]
        frame["family"] = [s.family for s in settings]
        frame["sweep_param"] = [s.sweep_param for s in settings]
        frame["sweep_value"] = [s.sweep_value for s in settings]
        frame["variant"] = [s.variant for s in settings]
        frame["label"] = [s.label for s in settings]
        frame["label_tex"] = [s.label_tex for s in settings]
        frame["_order"] = [s.order for s in settings]
        frame = frame.sort_values(["dataset", "source", "preset", "representation", "_order", "family",
                                   "sweep_value", "label", "seed"], na_position="first", kind="stable")
        frame = frame.drop(columns="_order").reset_index(drop=True)
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
    """Training settings that vary in ``frame`` (the model's own parameters are in its label)."""
    return [c for c in SETTING_CANDIDATES if c in frame.columns and frame[c].astype(str).nunique() > 1]


def group_columns(frame: pd.DataFrame) -> list[str]:
    return (SECTION_COLUMNS + ["family", "model", "sweep_param", "sweep_value", "variant", "beta", "label",
                               "label_tex"]
            + setting_columns(frame))


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


#: The scores by which the family table picks each family's best setting, first present wins.
SELECT_BY = ("dci.disentanglement", "mig.score", "factor_vae.eval_accuracy", "beta_vae.eval_accuracy",
             "sap.score", "modularity.score")
FAMILY_STATS = ("median", "q25", "q75", "min", "max")


def selection_metric(frame: pd.DataFrame, select_by: str | None = None) -> str | None:
    """The metric that picks each family's best setting: ``select_by`` or the first of SELECT_BY present."""
    from disent_bench.errors import UserError

    if select_by is not None:
        if select_by not in frame.columns or frame[select_by].isna().all():
            known = ", ".join(c for c in headline_columns(frame) if not c.startswith("reconstruction."))
            raise UserError(f"cannot pick best settings by {select_by!r}: no run has that metric "
                            f"(headline metrics here: {known})")
        return select_by
    return next((c for c in SELECT_BY if c in frame.columns and frame[c].notna().any()), None)


def family_summary(frame: pd.DataFrame, select_by: str | None = None) -> pd.DataFrame:
    """Per section and family: median, quartiles, min and max of every metric over all its runs
    (every setting of its sweep, every seed), and its best setting by ``selection_metric``.

    The best setting is the one with the best mean over seeds (ties: the first in table order). It is
    chosen with the ground-truth factors, which an unsupervised user does not have (Locatello et al.
    2019), so it flatters a family: the median and spread are the fair comparison.
    Quartiles use linear interpolation between runs (numpy's default).
    """
    if frame.empty:
        return pd.DataFrame()
    chosen = selection_metric(frame, select_by)
    # A family run with a fixed parameter other than the reference's (a variant) is a sweep of its own.
    keys = SECTION_COLUMNS + ["family", "variant"] + setting_columns(frame)
    metrics = metric_columns(frame) + [c for c in ("train_seconds", "eval_seconds") if c in frame.columns]
    records = []
    for key, part in frame.groupby(keys, dropna=False, sort=False):
        record = dict(zip(keys, key))
        record.update(models=", ".join(dict.fromkeys(part["model"])), n_settings=part["label"].nunique(),
                      n_runs=len(part), n_seeds=part["seed"].nunique(), selected_by=chosen)
        best = {"best_label": None, "best_label_tex": None, "best:mean": np.nan, "best:std": np.nan, "best:n": 0}
        if chosen is not None and part[chosen].notna().any():
            per_setting = part.groupby("label", sort=False)[chosen].agg(["mean", "std", "count"]).dropna(
                subset=["mean"])
            label = (per_setting["mean"].idxmin() if lower_is_better(chosen) else per_setting["mean"].idxmax())
            best = {"best_label": label,
                    "best_label_tex": part.loc[part["label"] == label, "label_tex"].iloc[0],
                    "best:mean": per_setting.loc[label, "mean"], "best:std": per_setting.loc[label, "std"],
                    "best:n": int(per_setting.loc[label, "count"])}
        record.update(best)
        for c in metrics:
            values = part[c].dropna().to_numpy(dtype=float)
            stats = (np.median(values), *np.quantile(values, [0.25, 0.75]), values.min(), values.max()) \
                if len(values) else (np.nan,) * 5
            record.update({f"{c}:{name}": float(v) for name, v in zip(FAMILY_STATS, stats)})
            record[f"{c}:n"] = len(values)
        records.append(record)
    return pd.DataFrame(records)


def family_table(family_part: pd.DataFrame, headline: list[str], extra: list[str], *,
                 latex: bool = False) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, cells and bold flags of one section's family table (bold: the best median per column)."""
    chosen = family_part["selected_by"].iloc[0] if len(family_part) else None
    header = ["Family", "settings", "runs"] + [
        HEADLINE.get(c, c) + (" ↓" if lower_is_better(c) else " ↑") for c in headline]
    if chosen is not None:
        header.append(f"Best setting by {HEADLINE.get(chosen, chosen)} (chosen with the ground truth)")
    best = {c: _best(family_part[f"{c}:median"], c) for c in headline}
    rows, bold = [], []
    for _, row in family_part.iterrows():
        bits = [f"{c}={row[c]}" for c in extra]
        rest = (f" ({row['variant']})" if row["variant"] else "") + (f" [{', '.join(bits)}]" if bits else "")
        name = display_tex(row["family"]) + tex_escape(rest) if latex else row["family"] + rest
        cells = [name, str(int(row["n_settings"])), str(int(row["n_runs"]))]
        flags = [False] * 3
        for c in headline:
            digits = _digits(c)
            median = row[f"{c}:median"]
            cells.append("–" if math.isnan(median) else
                         f"{median:.{digits}f} [{row[f'{c}:q25']:.{digits}f}, {row[f'{c}:q75']:.{digits}f}]")
            flags.append(best[c] is not None and not math.isnan(median)
                         and round(median, digits) == round(best[c], digits))
        if chosen is not None:
            value = _cell(row["best:mean"], row["best:std"], _digits(chosen))
            if row["best_label"] is None or (isinstance(row["best_label"], float) and math.isnan(row["best_label"])):
                cells.append("–")
            elif latex:
                cells.append(row["best_label_tex"] + ": " + tex_escape(value).replace("±", "$\\pm$"))
            else:
                cells.append(f"{row['best_label']}: {value}")
            flags.append(False)
        rows.append(cells)
        bold.append(flags)
    return header, rows, bold


FAMILY_NOTE = ("Per family, every run of its sweep (all settings, all seeds): cells are the median "
               "[first quartile, third quartile] over those runs; the best median of each column is in bold. "
               "The last column is the family's setting with the best mean over seeds of the named metric: it "
               "is chosen with the ground-truth factors, which a user of an unsupervised method does not have "
               "(Locatello et al. 2019 find no reliable way to choose without them), so it flatters the family; "
               "the median and spread are the fair comparison.")


def families_markdown(frame: pd.DataFrame, families: pd.DataFrame, provenance_lines: list[str]) -> str:
    """families.md: the provenance header, then one family table per section."""
    return _markdown("# disent-bench families", provenance_lines, FAMILY_NOTE, frame, families, "families")


def families_latex(frame: pd.DataFrame, families: pd.DataFrame, provenance_lines: list[str]) -> str:
    """families.tex: one booktabs family table per section; needs \\usepackage{booktabs}."""
    out = ["% disent-bench families (requires \\usepackage{booktabs})"]
    out += [f"% {line}" for line in provenance_lines]
    for section, _, header, rows, bold in section_tables(frame, families, "families", latex=True):
        caption = (f"{tex_escape(section_title(section))}. Per family, median [first quartile, third quartile] "
                   "over all runs of its sweep (every setting and seed); best median per column in bold. "
                   "The best setting is chosen with the ground-truth factors, which an unsupervised user "
                   "does not have, so it flatters the family.")
        out += [""] + latex_table(caption, header, rows, bold, raw=(0, len(header) - 1))
    return "\n".join(out) + "\n"


def section_tables(frame: pd.DataFrame, table: pd.DataFrame, kind: str, *, latex: bool = False):
    """Per section: (section, its rows of ``table``, header, cells, bold flags), for ``kind`` "settings"
    (``table`` from summarise) or "families" (from family_summary)."""
    extra = setting_columns(frame)
    headline = headline_columns(frame)
    stat, make = ("mean", section_table) if kind == "settings" else ("median", family_table)
    for section, _ in sections(frame):
        part = _section_rows(table, section)
        cols = [c for c in headline if part[f"{c}:{stat}"].notna().any()]
        yield (section, part, *make(part, cols, extra, latex=latex))


def _markdown(title: str, provenance_lines: list[str], note: str, frame: pd.DataFrame, table: pd.DataFrame,
              kind: str) -> str:
    lines = [title, ""] + [f"- {line}" for line in provenance_lines] + ["", note]
    for section, _, header, rows, bold in section_tables(frame, table, kind):
        lines += ["", f"## {section_title(section)}", ""] + markdown_table(header, rows, bold)
    return "\n".join(lines) + "\n"


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
    label = row["label_tex"] if latex else row["label"]
    bits = [f"{c}={row[c]}" for c in extra]
    text = f" [{', '.join(bits)}]" if bits else ""
    return label + (tex_escape(text) if latex else text)


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


SETTINGS_NOTE = ("Cells are mean ± std over seeds (n = number of seeds); ↑ higher is better, ↓ lower is better; "
                 "the best value of each column is in **bold**.")


def to_markdown(frame: pd.DataFrame, summary: pd.DataFrame, provenance_lines: list[str]) -> str:
    """summary.md: a provenance header, then one table per section."""
    return _markdown("# disent-bench summary", provenance_lines, SETTINGS_NOTE, frame, summary, "settings")


def markdown_table(header: list[str], rows: list[list[str]], bold: list[list[bool]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for cells, flags in zip(rows, bold):
        lines.append("| " + " | ".join(f"**{c}**" if f else c for c, f in zip(cells, flags)) + " |")
    return lines


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
    for section, part, header, rows, bold in section_tables(frame, summary, "settings", latex=True):
        n_text = ", ".join(map(str, sorted({int(n) for n in part["n_seeds"]})))
        caption = (f"{tex_escape(section_title(section))}. Mean $\\pm$ std over {n_text} seeds; "
                   "best per column in bold ($\\uparrow$ higher is better, $\\downarrow$ lower is better).")
        out += [""] + latex_table(caption, header, rows, bold)
    return "\n".join(out) + "\n"


def latex_table(caption: str, header: list[str], rows: list[list[str]], bold: list[list[bool]], *,
                raw: tuple[int, ...] = (0,)) -> list[str]:
    """A booktabs table; the cells of columns ``raw`` are LaTeX already, the others are escaped."""
    out = ["\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{caption}}}",
           "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule"]
    tex_header = [tex_escape(h.replace(" ↑", "").replace(" ↓", "")) +
                  (" $\\downarrow$" if h.endswith("↓") else " $\\uparrow$" if h.endswith("↑") else "")
                  for h in header]
    out.append(" & ".join(tex_header) + " \\\\")
    out.append("\\midrule")
    for cells, flags in zip(rows, bold):
        tex_cells = []
        for i, (cell, flag) in enumerate(zip(cells, flags)):
            text = cell if i in raw else tex_escape(cell).replace("±", "$\\pm$").replace("–", "--")
            tex_cells.append(f"\\textbf{{{text}}}" if flag else text)
        out.append(" & ".join(tex_cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return out


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


def write_tables(frame: pd.DataFrame, out_dir: Path, *, select_by: str | None = None) -> dict[str, Path]:
    """Write runs.csv, summary.csv/.md/.tex and families.csv/.md/.tex atomically; return their paths."""
    from disent_bench._io import atomic_path, atomic_write_text

    summary = summarise(frame)
    families = family_summary(frame, select_by)  # a bad select_by stops here, before anything is written
    prov = provenance_lines(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("runs.csv", "summary.csv", "summary.md", "summary.tex",
                                               "families.csv", "families.md", "families.tex")}
    for name, table in (("runs.csv", frame), ("summary.csv", summary), ("families.csv", families)):
        with atomic_path(paths[name]) as tmp:
            table.to_csv(tmp, index=False)
    atomic_write_text(paths["summary.md"], to_markdown(frame, summary, prov))
    atomic_write_text(paths["summary.tex"], to_latex(frame, summary, prov))
    atomic_write_text(paths["families.md"], families_markdown(frame, families, prov))
    atomic_write_text(paths["families.tex"], families_latex(frame, families, prov))
    return paths
