"""LaTeX text: escaping plain text for TeX.

The one place that knows which characters TeX treats specially. The families' LaTeX labels
(:mod:`disent_bench.report.families`) and the LaTeX tables (:mod:`disent_bench.report.render`) both
escape with it, so it sits below both.
"""

from __future__ import annotations

_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
