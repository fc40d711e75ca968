"""The generic results-table writer: tidy rows, the display form, CSV / Markdown / LaTeX."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from spectnet.reporting.tables import display_table, tidy_rows, to_latex, to_markdown, write_table


@pytest.fixture
def tidy() -> pd.DataFrame:
    rows = tidy_rows("static-46", "Static SpectNet-46", {"Acc": [70.0, 74.0, 78.0], "F1": [60.0, 62.0, 64.0]},
                     intervals={"Acc": (68.25, 79.5), "F1": (58.0, 66.0)}, ci_level=0.95,
                     paper={"Acc": 74.44}, dataset="esc10")
    rows += tidy_rows("learnable-46", "Learnable SpectNet-46", {"Acc": [80.0], "F1": [70.0]},
                      paper={"Acc": 76.55, "F1": 76.07})
    rows += tidy_rows("static-149", "Static SpectNet-149", {"Acc": [], "F1": []},
                      paper={"Acc": 74.81, "F1": 74.58})
    return pd.DataFrame(rows)


def test_tidy_rows_hold_mean_sd_interval_paper_and_difference(tidy):
    acc = tidy[(tidy["run"] == "static-46") & (tidy["metric"] == "Acc")].iloc[0]
    assert (acc["mean"], acc["sd"], acc["n"]) == (74.0, 4.0, 3)
    assert (acc["ci_low"], acc["ci_high"], acc["ci_level"]) == (68.25, 79.5, 0.95)
    assert acc["paper"] == 74.44 and acc["difference"] == pytest.approx(-0.44)
    assert acc["dataset"] == "esc10"
    f1 = tidy[(tidy["run"] == "static-46") & (tidy["metric"] == "F1")].iloc[0]
    assert math.isnan(f1["paper"]) and math.isnan(f1["difference"])
    one = tidy[(tidy["run"] == "learnable-46") & (tidy["metric"] == "Acc")].iloc[0]
    assert one["n"] == 1 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
    missing = tidy[tidy["run"] == "static-149"]
    assert (missing["n"] == 0).all() and missing["mean"].isna().all()


def test_display_lines_per_run(tidy):
    display = display_table(tidy)
    assert list(display.columns) == ["Model", "", "Acc", "F1"]
    assert display.values.tolist() == [
        ["Static SpectNet-46", "ours", "74.00 ± 4.00", "62.00 ± 2.00"],
        ["", "95% CI", "[68.2, 79.5]", "[58.0, 66.0]"],
        ["", "paper", "74.44", "—"],
        ["", "Δ", "-0.44", "—"],
        ["Learnable SpectNet-46", "ours", "80.00", "70.00"],
        ["", "paper", "76.55", "76.07"],
        ["", "Δ", "+3.45", "-6.07"],
        ["Static SpectNet-149", "ours", "not run", "not run"],
        ["", "paper", "74.81", "74.58"],
    ]


def test_markdown_and_latex(tidy):
    display = display_table(tidy)
    md = to_markdown(display, "Table III: scenes", ["ESC-10, 100 % of folds_1"])
    lines = md.splitlines()
    assert lines[0] == "**Table III: scenes**"
    assert lines[2] == "| Model |  | Acc | F1 |" and lines[3] == "|---|---|---|---|"
    assert "| Static SpectNet-46 | ours | 74.00 ± 4.00 | 62.00 ± 2.00 |" in lines
    assert lines[-1] == "- ESC-10, 100 % of folds_1"
    tex = to_latex(display, "Table III: scenes", ["ESC-10, 100 % of folds_1"])
    assert tex.startswith("\\begin{table}[tbp]") and tex.rstrip().endswith("\\end{table}")
    assert "\\caption{Table III: scenes}" in tex and "\\begin{tabular}{llrr}" in tex
    assert "Static SpectNet-46 & ours & 74.00 $\\pm$ 4.00 & 62.00 $\\pm$ 2.00 \\\\" in tex
    assert " & $\\Delta$ & +3.45 & -6.07 \\\\" in tex and " & 95\\% CI & " in tex
    assert "ESC-10, 100 \\% of folds\\_1\\par" in tex
    assert tex.count("\\addlinespace") == 2  # between the three runs
    assert not set("±Δ—") & set(tex)  # plain LaTeX, no Unicode needed
    assert " & paper & 74.44 & --- \\\\" in tex
    assert not re.search(r"(?<!\\)[_%]", tex)  # special characters escaped


def test_write_table_writes_three_files_atomically(tidy, tmp_path):
    prefix = tmp_path / "tables" / "table3"
    prefix.parent.mkdir()
    (tmp_path / "tables" / "table3.md").write_text("stale")
    paths = write_table(tidy, display_table(tidy), prefix, "Title", ["a note"])
    assert [p.name for p in paths] == ["table3.csv", "table3.md", "table3.tex"]
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["table3.csv", "table3.md",
                                                               "table3.tex"]
    back = pd.read_csv(paths[0])
    pd.testing.assert_frame_equal(back, tidy, check_dtype=False)
    assert paths[1].read_text() == to_markdown(display_table(tidy), "Title", ["a note"])
