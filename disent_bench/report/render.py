"""The tables as files: the built frames as CSV, every section table as Markdown and as LaTeX.

Rendering only. Everything here formats a :class:`~disent_bench.report.tables.Tables` built by
:func:`~disent_bench.report.tables.build_tables` and decides no number and no emphasis: :func:`cells`
turns one :class:`~disent_bench.report.tables.SectionTable` into a header, cell texts (mean ± std for a
setting, median [q25, q75] for a family, at :func:`~disent_bench.report.tables.digits` decimals) and
bold flags, which are its ``best`` mask; :func:`markdown_table` and :func:`latex_table` lay those out,
as :mod:`disent_bench.report.html` does for the page. :func:`write_files` writes ``runs.csv``,
``summary.csv/.md/.tex`` and ``families.csv/.md/.tex``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from disent_bench._io import atomic_path, atomic_write_text
from disent_bench.report.families import display_tex
from disent_bench.report.runs import HEADLINE, lower_is_better, section_title
from disent_bench.report.tables import UNSUPERVISED_SELECTORS, SectionTable, Tables, digits
from disent_bench.report.tex import tex_escape

INTERVALS = ("95% bootstrap confidence interval in brackets (bootstrap-t of the mean, 10,000 resamples; "
             "percentile interval of the median, 2,000 resamples; seeds fixed by the cell, so the same results "
             "give the same report); \"n < 3\": too few runs for an interval, none is printed")
BOLD_RULE = ("bold: not significantly worse than the column's best row (one-sided exact Mann-Whitney U test "
             "of \"worse than the best\", p < 0.05 excludes; each row against the best, uncorrected)")
SETTINGS_NOTE = (f"Cells are the mean over seeds (n = number of seeds) with its {INTERVALS}; "
                 f"↑ higher is better, ↓ lower is better; {BOLD_RULE}. std and quartiles are in summary.csv.")
FAMILY_NOTE = (f"Per family, every run of its sweep (all settings, all seeds): cells are the median over those runs "
               f"with its {INTERVALS}; {BOLD_RULE}, comparing all runs of each family. Quartiles are in "
               "families.csv. The last column is the family's setting with the best mean over seeds of the named "
               "metric: it is chosen with the ground-truth factors, which a user of an unsupervised method does not "
               "have (Locatello et al. 2019 find no reliable way to choose without them), so it flatters the family; "
               "the median and its interval are the fair comparison.")
#: FAMILY_NOTE's last sentences where the best setting was chosen without labels (--select-by udr.lasso).
FAMILY_NOTE_UNSUPERVISED = FAMILY_NOTE[:FAMILY_NOTE.index("The last column")] + (
    "The last column is the family's setting with the best mean over seeds of the named score, which reads no "
    "ground truth (UDR: each setting's seeds scored against each other; Duan et al. 2020): a choice an "
    "unsupervised user can make. The table under it sets the supervised metrics of that setting beside the "
    "best setting by each metric.")


def family_note(table: SectionTable) -> str:
    """The note over a family table: what its last column's choice of setting means."""
    chosen = table.rows["selected_by"].iloc[0] if len(table.rows) else None
    return FAMILY_NOTE_UNSUPERVISED if chosen in UNSUPERVISED_SELECTORS else FAMILY_NOTE

Cells = tuple[list[str], list[list[str]], list[list[bool]]]


def cells(table: SectionTable, *, latex: bool = False) -> Cells:
    """Header, cell texts and bold flags of one section table (``latex``: labels in LaTeX, the other
    cells still plain text for :func:`latex_table` to escape)."""
    return (_settings_cells if table.kind == "settings" else _family_cells)(table, latex=latex)


def _metric_header(column: str) -> str:
    return HEADLINE.get(column, column) + (" ↓" if lower_is_better(column) else " ↑")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(centre: float, low: float, high: float, places: int) -> str:
    """``0.412 [0.371, 0.455]``: a centre and its interval; ``0.412 (n < 3)`` where there is none."""
    if _missing(centre):
        return "–"
    if _missing(low) or _missing(high):
        return f"{centre:.{places}f} (n < 3)"
    return f"{centre:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def _setting_label(row: pd.Series, extra: list[str], *, latex: bool = False) -> str:
    label = row["label_tex"] if latex else row["label"]
    bits = [f"{c}={row[c]}" for c in extra]
    text = f" [{', '.join(bits)}]" if bits else ""
    return label + (tex_escape(text) if latex else text)


def _settings_cells(table: SectionTable, *, latex: bool = False) -> Cells:
    """A setting per row: its label, its number of seeds, then mean ± std of each metric."""
    header = ["Model", "n"] + [_metric_header(c) for c in table.metrics]
    rows, bold = [], []
    for index, row in table.rows.iterrows():
        texts = [_setting_label(row, table.extra, latex=latex), str(int(row["n_seeds"]))]
        flags = [False, False]
        for c in table.metrics:
            texts.append(_cell(row[f"{c}:mean"], row.get(f"{c}:low"), row.get(f"{c}:high"), digits(c)))
            flags.append(bool(table.best.at[index, c]))
        rows.append(texts)
        bold.append(flags)
    return header, rows, bold


def _family_cells(table: SectionTable, *, latex: bool = False) -> Cells:
    """A family per row: its name, settings and runs, median [q25, q75] of each metric, then its best
    setting by the summary's ``selected_by`` metric."""
    part = table.rows
    chosen = part["selected_by"].iloc[0] if len(part) else None
    header = ["Family", "settings", "runs"] + [_metric_header(c) for c in table.metrics]
    if chosen is not None:
        how = "without labels" if chosen in UNSUPERVISED_SELECTORS else "with the ground truth"
        header.append(f"Best setting by {HEADLINE.get(chosen, chosen)} (chosen {how})")
    rows, bold = [], []
    for index, row in part.iterrows():
        bits = [f"{c}={row[c]}" for c in table.extra]
        rest = (f" ({row['variant']})" if row["variant"] else "") + (f" [{', '.join(bits)}]" if bits else "")
        name = display_tex(row["family"]) + tex_escape(rest) if latex else row["family"] + rest
        texts = [name, str(int(row["n_settings"])), str(int(row["n_runs"]))]
        flags = [False] * 3
        for c in table.metrics:
            texts.append(_cell(row[f"{c}:median"], row.get(f"{c}:low"), row.get(f"{c}:high"), digits(c)))
            flags.append(bool(table.best.at[index, c]))
        if chosen is not None:
            value = _cell(row["best:mean"], row.get("best:low"), row.get("best:high"), digits(chosen))
            if row["best_label"] is None or (isinstance(row["best_label"], float) and math.isnan(row["best_label"])):
                texts.append("–")
            elif latex:
                texts.append(row["best_label_tex"] + ": " + tex_escape(value).replace("±", "$\\pm$"))
            else:
                texts.append(f"{row['best_label']}: {value}")
            flags.append(False)
        rows.append(texts)
        bold.append(flags)
    return header, rows, bold


SELECTION_NOTE = ("Model selection without labels: each family's setting chosen by {selector} (the seeds of a "
                  "setting scored against each other, no ground truth; Duan et al. 2020), and per supervised metric "
                  "the chosen setting's mean over seeds / the mean of the setting that metric itself would choose "
                  "(with the ground truth, named in parentheses): how much an unsupervised user loses by choosing "
                  "with {selector}.")


def selection_cells(table: SectionTable, *, latex: bool = False) -> Cells | None:
    """For a family table whose best setting was chosen without labels (UDR): per family, the chosen setting
    and, per supervised metric, its mean beside the best setting's by that metric; None otherwise."""
    part = table.rows
    chosen = part["selected_by"].iloc[0] if len(part) else None
    if chosen not in UNSUPERVISED_SELECTORS:
        return None
    metrics = [c for c in table.metrics if f"oracle:{c}" in part.columns]
    header = ["Family", f"Setting chosen by {HEADLINE.get(chosen, chosen)}"] + [
        f"{_metric_header(c)}: chosen / best by it" for c in metrics]
    rows, bold = [], []
    for _, row in part.iterrows():
        name = display_tex(row["family"]) if latex else row["family"]
        if row["variant"]:
            name += tex_escape(f" ({row['variant']})") if latex else f" ({row['variant']})"
        label = row["best_label_tex" if latex else "best_label"]
        texts = [name, ("--" if latex else "–") if _missing(label) else label]
        for c in metrics:
            selected, oracle, oracle_label = row.get(f"selected:{c}"), row.get(f"oracle:{c}"), \
                row.get(f"oracle_label:{c}")
            if _missing(oracle):
                texts.append("–")
                continue
            places = digits(c)
            first = ("--" if latex else "–") if _missing(selected) else f"{selected:.{places}f}"
            if latex:
                oracle_label = row.get(f"oracle_label_tex:{c}")
            texts.append(f"{first} / {oracle:.{places}f} ({oracle_label})")
        rows.append(texts)
        bold.append([False] * len(texts))
    return header, rows, bold


def markdown_table(header: list[str], rows: list[list[str]], bold: list[list[bool]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for texts, flags in zip(rows, bold):
        lines.append("| " + " | ".join(f"**{c}**" if f else c for c, f in zip(texts, flags)) + " |")
    return lines


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
    for texts, flags in zip(rows, bold):
        tex_cells = []
        for i, (cell, flag) in enumerate(zip(texts, flags)):
            text = cell if i in raw else tex_escape(cell).replace("±", "$\\pm$").replace("–", "--")
            tex_cells.append(f"\\textbf{{{text}}}" if flag else text)
        out.append(" & ".join(tex_cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return out


def _markdown(title: str, provenance: list[str], note: str, tables: list[SectionTable]) -> str:
    lines = [title, ""] + [f"- {line}" for line in provenance] + ["", note]
    for table in tables:
        lines += ["", f"## {section_title(table.section)}", ""] + markdown_table(*cells(table))
        if table.notes:
            lines += [""] + [f"*{note}*" for note in table.notes]
        selection = selection_cells(table) if table.kind == "families" else None
        if selection is not None:
            selector = HEADLINE.get(table.rows["selected_by"].iloc[0], table.rows["selected_by"].iloc[0])
            lines += ["", "### Chosen without labels", "", SELECTION_NOTE.format(selector=selector), ""]
            lines += markdown_table(*selection)
    return "\n".join(lines) + "\n"


def summary_markdown(tables: Tables) -> str:
    """summary.md: a provenance header, then one table per section."""
    return _markdown("# disent-bench summary", tables.provenance, SETTINGS_NOTE, tables.settings)


def families_markdown(tables: Tables) -> str:
    """families.md: the provenance header, then one family table per section."""
    note = family_note(tables.by_family[0]) if tables.by_family else FAMILY_NOTE
    return _markdown("# disent-bench families", tables.provenance, note, tables.by_family)


def summary_latex(tables: Tables) -> str:
    """summary.tex: booktabs tables (one per section), provenance as a comment header; needs \\usepackage{booktabs}."""
    out = ["% disent-bench summary (requires \\usepackage{booktabs})"]
    out += [f"% {line}" for line in tables.provenance]
    for table in tables.settings:
        n_text = ", ".join(map(str, sorted({int(n) for n in table.rows["n_seeds"]})))
        caption = (f"{tex_escape(section_title(table.section))}. Mean over {n_text} seeds [95\\% bootstrap-t "
                   "confidence interval, 10,000 resamples; n $<$ 3: none]; bold: not significantly worse than the "
                   "column's best (one-sided exact Mann-Whitney U test, $p < 0.05$ excludes); $\\uparrow$ higher "
                   "is better, $\\downarrow$ lower is better." + _tex_notes(table))
        out += [""] + latex_table(caption, *cells(table, latex=True))
    return "\n".join(out) + "\n"


def _tex_notes(table: SectionTable) -> str:
    """The table's notes for a caption, without the row names (their LaTeX is in the table itself)."""
    out = []
    for note in table.notes:
        if note.startswith("not bolded"):
            out.append(" No bold in a column where a row has fewer than 3 runs (summary.md names them).")
        elif "cannot go below" in note:
            out.append(" With these numbers of runs the test cannot reach $p < 0.05$, so every row is bold.")
        else:
            out.append(" " + tex_escape(note))
    return "".join(dict.fromkeys(out))


def families_latex(tables: Tables) -> str:
    """families.tex: one booktabs family table per section; needs \\usepackage{booktabs}."""
    out = ["% disent-bench families (requires \\usepackage{booktabs})"]
    out += [f"% {line}" for line in tables.provenance]
    for table in tables.by_family:
        header, rows, bold = cells(table, latex=True)
        caption = (f"{tex_escape(section_title(table.section))}. Per family, median over all runs of its sweep "
                   "(every setting and seed) [95\\% percentile bootstrap interval, 2,000 resamples]; bold: not "
                   "significantly worse than the column's best (one-sided exact Mann-Whitney U test, $p < 0.05$ "
                   "excludes). The best setting is chosen with the ground-truth factors, which an unsupervised "
                   "user does not have, so it flatters the family." + _tex_notes(table))
        if table.rows["selected_by"].iloc[0] in UNSUPERVISED_SELECTORS:
            caption = caption.replace("The best setting is chosen with the ground-truth factors, which an "
                                      "unsupervised user does not have, so it flatters the family.",
                                      "The last column's setting is chosen without labels.")
        out += [""] + latex_table(caption, header, rows, bold, raw=(0, len(header) - 1))
        selection = selection_cells(table, latex=True)
        if selection is not None:
            selector = HEADLINE.get(table.rows["selected_by"].iloc[0], table.rows["selected_by"].iloc[0])
            out += [""] + latex_table(tex_escape(section_title(table.section) + ". "
                                                 + SELECTION_NOTE.format(selector=selector)), *selection,
                                      raw=tuple(range(len(selection[0]))))
    return "\n".join(out) + "\n"


def write_files(tables: Tables, out_dir: Path) -> dict[str, Path]:
    """Write runs.csv, summary.csv/.md/.tex and families.csv/.md/.tex atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("runs.csv", "summary.csv", "summary.md", "summary.tex",
                                               "families.csv", "families.md", "families.tex")}
    for name, frame in (("runs.csv", tables.runs), ("summary.csv", tables.summary),
                        ("families.csv", tables.families)):
        with atomic_path(paths[name]) as tmp:
            frame.to_csv(tmp, index=False)
    atomic_write_text(paths["summary.md"], summary_markdown(tables))
    atomic_write_text(paths["summary.tex"], summary_latex(tables))
    atomic_write_text(paths["families.md"], families_markdown(tables))
    atomic_write_text(paths["families.tex"], families_latex(tables))
    return paths
