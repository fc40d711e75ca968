"""Classification metrics as the paper reports them (REPRODUCTION.md §5).

Binary (heart sounds, positive = abnormal = 1): sensitivity, specificity, precision, F1
and MAcc = (Se + Sp) / 2 from the 2 x 2 confusion matrix. Multi-class (scenes):
one-vs-rest sensitivity, specificity and precision macro-averaged, MACC = (Se + Sp) / 2,
and both F1 definitions of A19 (F1 of the macro precision and sensitivity, and the mean
of the per-class F1). A ratio with a zero denominator is 0, as scikit-learn's
``zero_division=0``; otherwise the values equal scikit-learn's exactly (tested).

Also the aggregations from example to recording or clip: the authors' majority vote
(ties go to abnormal) and the mean of posteriors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["confusion_matrix", "binary_metrics", "multiclass_metrics", "per_class_metrics",
           "majority_vote", "mean_posterior"]


def _ratio(num, den):
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def confusion_matrix(y_true, y_pred, n_classes: int, weights=None) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted (scikit-learn's layout);
    ``weights`` counts each example that many times (bootstrap resamples)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    flat = np.bincount(y_true * n_classes + y_pred, weights=weights, minlength=n_classes ** 2)
    return flat.reshape(n_classes, n_classes)


def binary_metrics(y_true, y_pred, weights=None) -> dict[str, float]:
    """Metrics of binary predictions, positive class 1 (abnormal).

    Example:
        >>> m = binary_metrics([1, 1, 1, 0, 0], [1, 1, 0, 0, 1])
        >>> m["sensitivity"], m["specificity"], m["macc"], m["tp"], m["fp"]
        (0.6666666666666666, 0.5, 0.5833333333333333, 2.0, 1.0)
    """
    (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pred, 2, weights)
    se, sp, prec = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
    return {"accuracy": float(_ratio(tp + tn, tp + tn + fp + fn)), "sensitivity": float(se),
            "specificity": float(sp), "precision": float(prec),
            "f1": float(_ratio(2 * prec * se, prec + se)), "macc": float((se + sp) / 2),
            "tp": float(tp), "tn": float(tn), "fp": float(fp), "fn": float(fn)}


def _one_vs_rest(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class sensitivity, specificity and precision of a confusion matrix."""
    tp = np.diag(cm)
    fn, fp = cm.sum(1) - tp, cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    return _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)


def multiclass_metrics(y_true, y_pred, n_classes: int, weights=None) -> dict[str, float]:
    """Accuracy and macro one-vs-rest metrics of ``n_classes``-way predictions.

    ``f1`` is 2PR/(P+R) of the macro precision P and sensitivity R (Table III, five of
    seven rows); ``f1_mean`` is the mean of the per-class F1 (scikit-learn's
    ``f1_score(average="macro")``; the two 46-filter rows).

    Example:
        >>> m = multiclass_metrics([0, 1, 2, 2], [0, 2, 2, 2], 3)
        >>> round(m["accuracy"], 3), round(m["sensitivity"], 3), round(m["f1_mean"], 3)
        (0.75, 0.667, 0.6)
    """
    cm = confusion_matrix(y_true, y_pred, n_classes, weights)
    se, sp, prec = _one_vs_rest(cm)
    macro_se, macro_sp, macro_prec = se.mean(), sp.mean(), prec.mean()
    return {"accuracy": float(_ratio(np.trace(cm), cm.sum())), "sensitivity": float(macro_se),
            "specificity": float(macro_sp), "precision": float(macro_prec),
            "f1": float(_ratio(2 * macro_prec * macro_se, macro_prec + macro_se)),
            "f1_mean": float(_ratio(2 * prec * se, prec + se).mean()),
            "macc": float((macro_se + macro_sp) / 2)}


def per_class_metrics(y_true, y_pred, n_classes: int) -> pd.DataFrame:
    """One-vs-rest metrics of every class: ``support`` (true examples), ``sensitivity``,
    ``specificity``, ``precision`` and ``f1``, one row per class index.

    Example:
        >>> per_class_metrics([0, 1, 2, 2], [0, 2, 2, 2], 3)["sensitivity"].tolist()
        [1.0, 0.0, 1.0]
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    se, sp, prec = _one_vs_rest(cm)
    return pd.DataFrame({"support": cm.sum(1).astype(int), "sensitivity": se,
                         "specificity": sp, "precision": prec,
                         "f1": _ratio(2 * prec * se, prec + se)})


def majority_vote(groups, y_true, y_pred) -> pd.DataFrame:
    """Recording-level decisions from beat predictions (REPRODUCTION.md §1.6).

    A recording is normal only if more of its beats are predicted normal than abnormal:
    **ties go to abnormal**. Its true label is the majority of its beat labels (all equal
    for PhysioNet).

    Returns:
        One row per group (in order of first appearance): ``group``, ``n_beats``,
        ``n_abnormal`` (predicted), ``n_correct``, ``label``, ``prediction``.

    Example:
        >>> majority_vote(["a", "a", "b", "b", "b"], [1, 1, 0, 0, 0], [0, 1, 0, 1, 1])
          group  n_beats  n_abnormal  n_correct  label  prediction
        0     a        2           1          1      1           1
        1     b        3           2          1      0           1
    """
    frame = pd.DataFrame({"group": np.asarray(groups), "label": np.asarray(y_true, dtype=int),
                          "pred": np.asarray(y_pred, dtype=int)})
    frame["correct"] = (frame["label"] == frame["pred"]).astype(int)
    per = frame.groupby("group", sort=False).agg(
        n_beats=("pred", "size"), n_abnormal=("pred", "sum"), n_correct=("correct", "sum"),
        n_true_abnormal=("label", "sum")).reset_index()
    per["label"] = (per["n_true_abnormal"] * 2 >= per["n_beats"]).astype(int)
    per["prediction"] = (per["n_abnormal"] * 2 >= per["n_beats"]).astype(int)
    return per.drop(columns="n_true_abnormal")


def mean_posterior(groups, y_true, probabilities) -> pd.DataFrame:
    """Clip-level decisions: the mean of the clip's unit posteriors, then argmax.

    Returns:
        One row per group (first appearance order): ``group``, ``n_units``, ``label``
        (the units' majority label), ``prediction``, and ``p0 .. p{C-1}``.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    frame = pd.DataFrame(probabilities, columns=[f"p{i}" for i in range(probabilities.shape[1])])
    frame.insert(0, "group", np.asarray(groups))
    frame.insert(1, "label", np.asarray(y_true, dtype=int))
    grouped = frame.groupby("group", sort=False)
    per = grouped[[c for c in frame.columns if c.startswith("p")]].mean()
    per.insert(0, "n_units", grouped.size())
    per.insert(1, "label", grouped["label"].agg(lambda s: s.mode().iloc[0]))
    per.insert(2, "prediction", per.filter(regex=r"^p\d+$").to_numpy().argmax(1))
    return per.reset_index()
