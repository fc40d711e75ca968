"""Reporting: tables (CSV, Markdown, LaTeX) and figures of the paper's results."""
