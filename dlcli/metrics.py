"""Evaluation metrics in plain numpy: ROC/AUC, background rejection,
confusion matrix, per-class scores and regression errors.

Every function works on host arrays after a split has been predicted, so
none of it needs to be traced by JAX. The reports return plain Python
numbers and lists so that they go straight into ``summary.json`` and
``--json`` output. Results agree with scikit-learn (tested), which is only
a test dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlcli.errors import DlcliError

# Keras' binary_accuracy predicts class 1 for P(1) > 0.5; users compare with it.
BINARY_THRESHOLD = 0.5


def _binary_labels(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """Checked (N,) bool labels and (N,) float scores for a binary metric."""
    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y_true.shape != scores.shape:
        raise ValueError(f"{y_true.size} labels but {scores.size} scores")
    if not np.isin(y_true, (0, 1)).all():
        found = np.unique(y_true)[:10].tolist()
        raise DlcliError(f"Binary metrics need labels 0 and 1, found {found}.")
    if not np.isfinite(scores).all():
        raise DlcliError(
            "The model's scores contain NaN or infinity, so ROC/AUC is undefined; "
            "the training probably diverged (try a smaller learning rate)."
        )
    return y_true == 1, scores


def _require_both_classes(positive: np.ndarray) -> None:
    if positive.all() or not positive.any():
        only = 1 if positive.any() else 0
        raise DlcliError(
            f"ROC/AUC needs events of both classes, but all {positive.size} labels "
            f"are {only}. Evaluate on a split that contains signal and background."
        )


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a binary classifier, every distinct threshold kept.

    Args:
      y_true: (N,) labels in {0, 1}; 1 is the positive (signal) class.
      scores: (N,) scores, higher meaning more likely positive.

    Returns:
      ``(fpr, tpr, thresholds)``, each of length (distinct scores + 1). The
      curve starts at (0, 0) with threshold ``inf`` and ends at (1, 1);
      tied scores form one point, as in scikit-learn.

    Raises:
      DlcliError: when only one class is present.
    """
    positive, scores = _binary_labels(y_true, scores)
    _require_both_classes(positive)
    # Any sort will do: tied scores end up adjacent and collapse into one point
    # below, so their order among themselves never shows. (A stable sort cost
    # 5x more on 200k scores, every epoch's validation AUC.)
    # Intermediates are dropped as soon as they are used: on millions of scores (a streamed validation
    # split) each is tens of MB, and this runs three times at the end of a run.
    order = np.argsort(-scores)
    sorted_scores, sorted_positive = scores[order], positive[order]
    del order
    # Last index of each run of equal scores: one ROC point per threshold.
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    true_positives = np.cumsum(sorted_positive)[last_of_tie]
    del sorted_positive
    false_positives = last_of_tie + 1 - true_positives
    tpr = np.r_[0.0, true_positives / true_positives[-1]]
    del true_positives
    fpr = np.r_[0.0, false_positives / false_positives[-1]]
    del false_positives
    thresholds = np.r_[np.inf, sorted_scores[last_of_tie]]
    return fpr, tpr, thresholds


def _trapezoid_area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve; ties count one half, as in scikit-learn.

    Raises:
      DlcliError: when only one class is present.
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    return _trapezoid_area(fpr, tpr)


def _fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, efficiency: float) -> float:
    """FPR where the ROC curve first reaches TPR = efficiency (linear in between)."""
    first = int(np.argmax(tpr >= efficiency))  # tpr ends at 1, so it exists
    if first == 0 or tpr[first] == efficiency:
        return float(fpr[first])
    fraction = (efficiency - tpr[first - 1]) / (tpr[first] - tpr[first - 1])
    return float(fpr[first - 1] + fraction * (fpr[first] - fpr[first - 1]))


def background_rejection(
    y_true, scores, efficiencies: Sequence[float] = (0.5, 0.7, 0.9)
) -> dict[str, float]:
    """Background rejection 1/FPR at fixed signal efficiencies (TPR).

    The physicists' reading of a ROC curve: keeping a fraction ``e`` of the
    signal, how many background events are thrown away per one kept.

    Args:
      y_true: (N,) labels, 1 = signal, 0 = background.
      scores: (N,) classifier scores.
      efficiencies: signal efficiencies in (0, 1].

    Returns:
      ``{"0.5": rejection, ...}``; ``inf`` where no background survives.
    """
    for efficiency in efficiencies:
        if not 0.0 < efficiency <= 1.0:
            raise DlcliError(f"A signal efficiency must lie in (0, 1], got {efficiency}.")
    fpr, tpr, _ = roc_curve(y_true, scores)
    rejections = {}
    for efficiency in efficiencies:
        false_positive_rate = _fpr_at_tpr(fpr, tpr, efficiency)
        rejection = 1.0 / false_positive_rate if false_positive_rate > 0 else float("inf")
        rejections[f"{efficiency:g}"] = rejection
    return rejections


def _class_labels(labels, num_classes: int, what: str) -> np.ndarray:
    """(N,) int labels, checked to lie in [0, num_classes)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels != np.round(labels)).any():
        raise DlcliError(f"{what} must be whole class numbers, found {labels[:5].tolist()}.")
    labels = labels.astype(np.int64)
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if outside.size:
        raise DlcliError(
            f"{what} must lie in 0..{num_classes - 1} for {num_classes} classes, "
            f"found {np.unique(outside)[:10].tolist()}."
        )
    return labels


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) int matrix of counts: rows are true classes, columns predicted."""
    y_true = _class_labels(y_true, num_classes, "True labels")
    y_pred = _class_labels(y_pred, num_classes, "Predicted labels")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} true labels but {y_pred.size} predictions")
    counts = np.bincount(num_classes * y_true + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0 (sklearn zero_division=0)."""
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def precision_recall_f1(confusion) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    Returns:
      ``{"precision", "recall", "f1", "support"}``, each a (K,) array; a
      score whose denominator is 0 is 0.0.
    """
    confusion = np.asarray(confusion)
    true_positives = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    false_positives = predicted - true_positives
    false_negatives = support - true_positives
    return {
        "precision": _safe_divide(true_positives, predicted),
        "recall": _safe_divide(true_positives, support),
        # The count form equals 2PR/(P+R) and matches sklearn bit for bit.
        "f1": _safe_divide(
            2 * true_positives, 2 * true_positives + false_positives + false_negatives
        ),
        "support": support.astype(np.int64),
    }


def _split_probabilities(probabilities) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, K) class probabilities and, for a binary model, the (N,) P(class 1)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1:] == (1,):
        positive = probabilities.reshape(-1)
        return np.stack([1.0 - positive, positive], axis=1), positive
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be (N,) or (N, K), got shape {probabilities.shape}")
    return probabilities, None


def predicted_classes(probabilities) -> np.ndarray:
    """(N,) class indices: P(class 1) > 0.5 for a binary model (the rule Keras uses), else the argmax."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 1 or probabilities.shape[1:] == (1,):
        return (probabilities.reshape(-1) > BINARY_THRESHOLD).astype(np.int64)
    return np.argmax(probabilities, axis=1)


def _one_vs_rest_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Unweighted mean over classes of each class's AUC against the rest."""
    num_classes = probabilities.shape[1]
    return float(np.mean([roc_auc(labels == k, probabilities[:, k]) for k in range(num_classes)]))


UNBOUNDED_REJECTION = ("null: no background example passes the cut at this signal efficiency, so the rejection "
                       "1/FPR is unbounded; more background examples are needed to measure it")


def rejection_report(rejections: dict[str, float]) -> dict[str, Any]:
    """Background rejections as strict JSON: ``null`` where unbounded, with the reason beside them."""
    report: dict[str, Any] = {"background_rejection": {
        efficiency: value if np.isfinite(value) else None for efficiency, value in rejections.items()}}
    if None in report["background_rejection"].values():
        report["background_rejection_null"] = UNBOUNDED_REJECTION
    return report


def classification_report(y_true, probabilities, class_names: Sequence[str]) -> dict:
    """Everything `dlcli evaluate` shows for a classifier, JSON-ready.

    Args:
      y_true: (N,) integer class labels.
      probabilities: (N,) P(class 1) for a binary model, or (N, K).
      class_names: K names, in class order.

    Returns:
      ``accuracy``, ``confusion_matrix``, ``per_class``, ``macro_f1``, and
      ``auc`` (binary, or macro one-vs-rest when every class is present);
      a binary model also gets ``background_rejection``.
    """
    probabilities, positive_scores = _split_probabilities(probabilities)
    num_classes = probabilities.shape[1]
    if len(class_names) != num_classes:
        raise DlcliError(
            f"{len(class_names)} class names {list(class_names)} for a model with "
            f"{num_classes} outputs; give one name per class."
        )
    labels = _class_labels(y_true, num_classes, "True labels")
    if positive_scores is not None:
        predicted = (positive_scores > BINARY_THRESHOLD).astype(np.int64)
    else:
        predicted = np.argmax(probabilities, axis=1)
    confusion = confusion_matrix(labels, predicted, num_classes)
    scores = precision_recall_f1(confusion)
    report = {
        "accuracy": float(np.trace(confusion) / max(labels.size, 1)),
        "confusion_matrix": confusion.tolist(),
        "per_class": {
            str(name): {
                "precision": float(scores["precision"][k]),
                "recall": float(scores["recall"][k]),
                "f1": float(scores["f1"][k]),
                "support": int(scores["support"][k]),
            }
            for k, name in enumerate(class_names)
        },
        "macro_f1": float(np.mean(scores["f1"])),
    }
    # AUC is undefined unless every class has events; omit it rather than fail.
    if (scores["support"] > 0).all():
        if positive_scores is not None:
            report["auc"] = roc_auc(labels, positive_scores)
            report.update(rejection_report(background_rejection(labels, positive_scores)))
        else:
            report["auc"] = _one_vs_rest_auc(labels, probabilities)
    return report


def regression_report(y_true, y_pred) -> dict[str, float]:
    """Mean squared error, mean absolute error and R², averaged over outputs.

    Args:
      y_true: (N,) or (N, D) targets.
      y_pred: predictions of the same size.

    Returns:
      ``{"mse", "mae", "r2"}``. A constant target gets R² = 1 when predicted
      exactly and 0 otherwise, as in scikit-learn.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.size != y_pred.size:
        raise ValueError(f"{y_true.size} targets but {y_pred.size} predictions")
    y_true = y_true.reshape(y_true.shape[0], -1)  # (N, D)
    y_pred = y_pred.reshape(y_true.shape)
    errors = y_pred - y_true
    residual = np.sum(errors**2, axis=0)  # (D,)
    total = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)  # (D,)
    constant_r2 = np.where(residual == 0, 1.0, 0.0)
    r2 = np.where(total != 0, 1.0 - _safe_divide(residual, total), constant_r2)
    return {
        "mse": float(np.mean(errors**2)),
        "mae": float(np.mean(np.abs(errors))),
        "r2": float(np.mean(r2)),
    }
