"""Write a results table as CSV, Markdown and LaTeX, atomically.

A table has two forms: the tidy data (one row per run and metric, every number, for
analysis: ``.csv``) and a display form (strings, one row per line a reader sees:
``.md`` and ``.tex``), with a title and notes (what produced the numbers, what the
comparison means).

Example:
    >>> import pandas as pd
    >>> display = pd.DataFrame({"Model": ["A"], "MAcc": ["80.00 ± 1.00"]})
    >>> print(to_markdown(display, "Results", ["one seed"]))
    **Results**
    <BLANKLINE>
    | Model | MAcc |
    |---|---|
    | A | 80.00 ± 1.00 |
    <BLANKLINE>
    - one seed
    <BLANKLINE>
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from spectnet.atomic import atomic_write_text

__all__ = ["to_markdown", "to_latex", "write_table"]

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_markdown(display: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured Markdown table with a bold title and bullet notes."""
    header = "| " + " | ".join(map(str, display.columns)) + " |"
    rule = "|" + "---|" * len(display.columns)
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
            for row in display.itertuples(index=False)]
    parts = [f"**{title}**", "", header, rule, *body, ""]
    parts += [f"- {note}" for note in notes]
    return "\n".join(parts) + ("\n" if notes else "")


def to_latex(display: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A ``table`` environment with booktabs rules; title as caption, notes below."""
    columns = "l" * len(display.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(title)}}}",
             rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
             " & ".join(_latex_escape(c) for c in display.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(v) for v in row) + r" \\"
              for row in display.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip\footnotesize", *(_latex_escape(n) + r"\\" for n in notes)]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def write_table(tidy: pd.DataFrame, display: pd.DataFrame, prefix: str | Path, title: str,
                notes: Sequence[str] = ()) -> list[Path]:
    """Write ``prefix.csv`` (the tidy data), ``prefix.md`` and ``prefix.tex`` (the display
    form), each atomically. Returns the paths."""
    prefix = Path(prefix)
    paths = [prefix.with_suffix(s) for s in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], tidy.to_csv(index=False))
    atomic_write_text(paths[1], to_markdown(display, title, notes))
    atomic_write_text(paths[2], to_latex(display, title, notes))
    return paths
