"""Results tables beside the paper's numbers, written as CSV, Markdown and LaTeX.

A table has two forms:

- **tidy** (``.csv``, for analysis): one row per run and metric with ``run``, ``model``
  (the row's label), ``metric`` (the column's label), ``mean``, ``sd`` and ``n`` over the
  run's evaluations (seeds, folds), ``ci_low``, ``ci_high`` and ``ci_level`` (a bootstrap
  interval where there is one), ``paper`` (the paper's value) and ``difference`` (ours
  minus the paper's), plus whatever else a task records per run (scale, data set,
  training time): :func:`tidy_rows`;
- **display** (``.md``, ``.tex``, for reading): per run the lines a reader compares, one
  column per metric: ours (mean ± sd), the interval, the paper's value and the
  difference: :func:`display_table`.

Both carry a title and notes (what produced the numbers, what the comparison means) in
the Markdown and LaTeX files. :func:`write_table` writes the three files atomically.

Example:
    >>> tidy = pd.DataFrame(tidy_rows("static-4", "Static-4", {"MAcc": [80.0, 82.0]},
    ...                               paper={"MAcc": 80.3}))
    >>> print(to_markdown(display_table(tidy), "Results", ["two seeds"]))
    **Results**
    <BLANKLINE>
    | Model |  | MAcc |
    |---|---|---|
    | Static-4 | ours | 81.00 ± 1.41 |
    |  | paper | 80.30 |
    |  | Δ | +0.70 |
    <BLANKLINE>
    - two seeds
    <BLANKLINE>
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from spectnet.atomic import atomic_write_text
from spectnet.evaluation.statistics import mean_sd

__all__ = ["tidy_rows", "display_table", "to_markdown", "to_latex", "write_table"]

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
                  "—": "---", "–": "--", "−": "--"}


def tidy_rows(run: str, model: str, values: Mapping[str, Sequence[float]], *,
              intervals: Mapping[str, tuple[float, float]] | None = None,
              ci_level: float | None = None, paper: Mapping[str, float] | None = None,
              **extra: Any) -> list[dict]:
    """The tidy rows of one run, one per metric.

    Args:
        run: the run's name (``static-46``).
        model: its label in the display (``Static SpectNet-46``).
        values: per metric (its column label), our values, one per evaluation (seed,
            fold); empty for a run that was not run.
        intervals: per metric, the interval of the mean (e.g. a bootstrap).
        ci_level: the intervals' coverage.
        paper: per metric, the paper's value (missing: the paper has none).
        extra: further columns, the same on every row of the run.
    """
    rows = []
    for metric, vals in values.items():
        mean, sd = mean_sd(vals) if len(vals) else (math.nan, math.nan)
        low, high = (intervals or {}).get(metric, (math.nan, math.nan))
        theirs = (paper or {}).get(metric, math.nan)
        rows.append({"run": run, "model": model, "metric": metric, "mean": mean, "sd": sd,
                     "n": len(vals), "ci_low": low, "ci_high": high,
                     "ci_level": ci_level if intervals else math.nan,
                     "paper": theirs, "difference": mean - theirs, **extra})
    return rows


def _number(value: float, decimals: int, sign: bool = False) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def display_table(tidy: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """The reading form of a tidy table: per run (in order of appearance) the lines
    ``ours`` (mean ± sd; ``not run`` without evaluations), the interval (when there is
    one), ``paper`` and ``Δ`` (when the paper has a value); one column per metric."""
    metrics = list(dict.fromkeys(tidy["metric"]))
    lines = []
    for _, rows in tidy.groupby("run", sort=False):
        rows = rows.set_index("metric")

        def cells(text):
            return {m: text(rows.loc[m]) if m in rows.index else "—" for m in metrics}

        if (rows["n"] == 0).all():
            block = [("ours", cells(lambda r: "not run"))]
        else:
            block = [("ours", cells(lambda r: _number(r["mean"], decimals) + (
                "" if pd.isna(r["sd"]) else f" ± {r['sd']:.{decimals}f}")))]
        if rows["ci_low"].notna().any():
            block.append((f"{rows['ci_level'].dropna().iloc[0]:.0%} CI", cells(
                lambda r: "—" if pd.isna(r["ci_low"]) else
                f"[{r['ci_low']:.{decimals - 1}f}, {r['ci_high']:.{decimals - 1}f}]")))
        if rows["paper"].notna().any():
            block.append(("paper", cells(lambda r: _number(r["paper"], decimals))))
            if rows["difference"].notna().any():
                block.append(("Δ", cells(lambda r: _number(r["difference"], decimals, True))))
        lines += [{"Model": rows["model"].iloc[0] if i == 0 else "", "": kind, **line}
                  for i, (kind, line) in enumerate(block)]
    return pd.DataFrame(lines, columns=["Model", "", *metrics])


def _latex_escape(text: Any) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_markdown(display: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured Markdown table with a bold title and the notes as a list."""
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = [f"**{title}**", "", "| " + " | ".join(map(cell, display.columns)) + " |",
             "|" + "---|" * len(display.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |"
              for row in display.itertuples(index=False)]
    lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def to_latex(display: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A ``table`` environment (booktabs rules), the title as its caption, the notes
    below the tabular; ``±``, ``Δ`` and LaTeX's special characters escaped."""
    columns = "l" * min(2, len(display.columns)) + "r" * max(0, len(display.columns) - 2)
    lines = [r"\begin{table}[tbp]", r"\centering", rf"\caption{{{_latex_escape(title)}}}",
             rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
             " & ".join(map(_latex_escape, display.columns)) + r" \\", r"\midrule"]
    for i, row in enumerate(display.itertuples(index=False)):
        if i and str(row[0]):  # a new run
            lines.append(r"\addlinespace")
        lines.append(" & ".join(map(_latex_escape, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize",
                  *(_latex_escape(note) + r"\par" for note in notes), r"\end{minipage}"]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def write_table(tidy: pd.DataFrame, display: pd.DataFrame, prefix: str | Path, title: str,
                notes: Sequence[str] = ()) -> list[Path]:
    """Write ``prefix.csv`` (tidy), ``prefix.md`` and ``prefix.tex`` (display, title and
    notes), each atomically. Returns the three paths."""
    prefix = Path(prefix)
    paths = [prefix.parent / f"{prefix.name}{suffix}" for suffix in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], tidy.to_csv(index=False))
    atomic_write_text(paths[1], to_markdown(display, title, notes))
    atomic_write_text(paths[2], to_latex(display, title, notes))
    return paths
