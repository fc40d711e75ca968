"""Reporting: the paper's tables (CSV, Markdown, LaTeX) with our numbers beside theirs."""
