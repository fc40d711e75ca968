"""Evaluation: metrics as the paper reports them, bootstrap intervals, McNemar, aggregation."""
