"""``index.html``: one self-contained page with every table and figure of a report (relative links).

A renderer like :mod:`disent_bench.report.render`, whose :func:`~disent_bench.report.render.cells` it
lays out as HTML: it formats the :class:`~disent_bench.report.tables.Tables` it is given (bold where a
table's ``best`` mask says) and places the figures and pictures beside them; it computes nothing.
"""

from __future__ import annotations

import html
from pathlib import Path

from disent_bench._io import atomic_write_text
from disent_bench.report.analysis import Analysis
from disent_bench.report.render import SELECTION_NOTE, SETTINGS_NOTE, cells, family_note, selection_cells
from disent_bench.report.render_analysis import METHODS, noise_lines, rank_lines, variance_lines
from disent_bench.report.runs import HEADLINE, section_rows, section_title
from disent_bench.report.tables import Tables

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; }
td.best { font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.synthetic { background: #fff3cd; padding: 0.1em 0.4em; border-radius: 3px; }
ul.prov { font-size: 0.85em; color: #444; }
figure { margin: 1em 0 2em; } figcaption { font-size: 0.85em; color: #555; }
"""


def _rel(path: Path, base: Path) -> str:
    return html.escape(Path(path).resolve().relative_to(base.resolve()).as_posix())


def _table(header: list[str], rows: list[list[str]], bold: list[list[bool]]) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for texts, flags in zip(rows, bold):
        out.append("<tr>" + "".join(f"<td class=\"best\">{html.escape(c)}</td>" if f else f"<td>{html.escape(c)}</td>"
                                    for c, f in zip(texts, flags)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _markdown_table(lines: list[str]) -> str:
    """A Markdown table (as :mod:`~disent_bench.report.render_analysis` writes it) as HTML; other lines as
    paragraphs."""
    out, rows = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
            continue
        if rows:
            out.append(_table(rows[0], rows[2:], [[False] * len(r) for r in rows[2:]]))
            rows = []
        if line.strip():
            out.append(f"<p>{html.escape(line.strip('*- '))}</p>")
    return "\n".join(out)


def _figure(entry: dict, base: Path, caption: str) -> str:
    return (f"<figure><a href=\"{_rel(entry['pdf'], base)}\"><img src=\"{_rel(entry['png'], base)}\" "
            f"alt=\"{html.escape(caption)}\"></a><figcaption>{html.escape(caption)} "
            f"(<a href=\"{_rel(entry['pdf'], base)}\">PDF</a>)</figcaption></figure>")


def write_index(report_dir: Path, tables: Tables, figures: list[dict], pictures: list[dict],
                files: dict[str, Path], analysis: Analysis | None = None) -> Path:
    """Write ``report_dir/index.html`` atomically and return its path."""
    captions = {"metrics_vs_strength": "Each headline metric against each family's own regularisation parameter "
                                       "(seeds as points, mean as a line; AE and VAE, which sweep nothing, as "
                                       "lines with a ± std band in every panel).",
                "tradeoff": "Reconstruction error against each disentanglement score, one point per run, "
                            "coloured by family; larger markers for stronger regularisation within a family.",
                "rank_correlation": "Spearman rank correlation between metrics over runs.",
                "every_run": "Every run, per family (settings side by side, light to dark), over a box (and a "
                             "violin from 4 runs) of the family's runs.",
                "improvement": "Probability of improvement P(A > B) between families, over every run of each "
                               "sweep, with its 95% bootstrap interval (0.5: no difference).",
                "variance": "How much the model matters: shares of each metric's variation explained by the "
                            "family, by the hyper-parameter within it, and by the seed.",
                "improvement_average": "Probability of improvement averaged over datasets (each weighted equally).",
                "critical_difference": "Average ranks over datasets (1 = best); families joined by a thick line "
                                       "are not significantly different (Nemenyi critical difference).",
                "udr": "UDR (no labels; each setting's seeds scored against each other) against the supervised "
                       "metrics: Spearman rank correlation over runs, and every run against the selection metric."}
    parts = ["<!doctype html><html><head><meta charset=\"utf-8\"><title>disent-bench report</title>",
             f"<style>{_STYLE}</style></head><body>", "<h1>disent-bench report</h1>",
             "<ul class=\"prov\">" + "".join(f"<li>{html.escape(line)}</li>" for line in tables.provenance)
             + "</ul>",
             "<p>Files: " + ", ".join(f"<a href=\"{_rel(p, report_dir)}\">{html.escape(name)}</a>"
                                      for name, p in files.items()) + "</p>",
             "<p>Per section: first the families (the median over every run of a family's sweep), then every "
             "setting (the mean over seeds, n = seeds), each with its 95% confidence interval; ↑ higher is "
             "better, ↓ lower is better; bold: not significantly worse than the column's best. Then what "
             "the statistics say: probability of improvement, how much the model matters, every run.</p>"]
    for settings, by_family in zip(tables.settings, tables.by_family):
        section = settings.section
        title = html.escape(section_title(section))
        if section["source"] == "synthetic":
            title = title.replace("SYNTHETIC data", "<span class=\"synthetic\">SYNTHETIC data</span>")
        parts.append(f"<h2>{title}</h2>")
        parts += ["<h3>Families</h3>", f"<p>{html.escape(family_note(by_family))}</p>", _table(*cells(by_family))]
        parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in by_family.notes]
        selection = selection_cells(by_family)
        if selection is not None:
            selector = HEADLINE.get(by_family.rows["selected_by"].iloc[0], by_family.rows["selected_by"].iloc[0])
            parts += ["<h4>Chosen without labels</h4>",
                      f"<p>{html.escape(SELECTION_NOTE.format(selector=selector))}</p>", _table(*selection)]
        parts += ["<h3>Settings</h3>", f"<p>{html.escape(SETTINGS_NOTE)}</p>", _table(*cells(settings))]
        parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in settings.notes]
        if analysis is not None and not analysis.variance.empty:
            shares = section_rows(analysis.variance, section)
            if not shares.empty:
                parts += ["<h3>How much the model matters</h3>", _markdown_table(variance_lines(shares))]
        for entry in figures:
            if entry.get("section") == section:
                parts.append(_figure(entry, report_dir, captions.get(entry["kind"], entry["kind"])))
    if analysis is not None:
        parts += ["<h2>Across datasets</h2>"]
        for group in analysis.ranks:
            name = ", ".join(f"{k} {v}" for k, v in group.group.items())
            parts += [f"<h3>{html.escape(name)}</h3>", _markdown_table(rank_lines(group))]
            for entry in figures:
                if entry.get("group") == group.group:
                    parts.append(_figure(entry, report_dir, captions.get(entry["kind"], entry["kind"])))
        parts += ["<h2>Evaluation noise apart from training noise</h2>", _markdown_table(noise_lines(analysis))]
        parts += ["<h2>Methods</h2>", f"<p>{html.escape(METHODS.replace('**', ''))}</p>"]
    if pictures:
        parts.append("<h2>What the models learned</h2>")
        parts.append("<p>Per model setting, one run (its lowest seed): reconstructions, an interpolation, "
                     "samples from the prior, and latent traversals sorted by KL and labelled with the "
                     "factor each dimension captures best.</p>")
        for entry in pictures:
            tag = "SYNTHETIC" if entry["source"] == "synthetic" else entry["source"]
            parts.append(f"<h3>{html.escape(entry['label'])} on {html.escape(entry['dataset'])} ({tag} data)</h3>")
            parts.append(f"<p>run <code>{html.escape(entry['run_id'])}</code></p>")
            parts.append(_figure(entry["overview"], report_dir, "Reconstructions, interpolation, prior samples."))
            parts.append(_figure(entry["traversals"], report_dir, "Latent traversals."))
    parts.append("</body></html>")
    path = report_dir / "index.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
