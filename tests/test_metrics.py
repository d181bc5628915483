"""Metrics agree with scikit-learn; every figure is written as a PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as sk

from dlcli import metrics
from dlcli.errors import DlcliError
from dlcli.report import plots

SEEDS = [0, 1, 2, 3, 4]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def binary_data(seed: int, size: int = 500, decimals: int | None = None):
    """Labels and scores that separate the classes partly; rounding makes ties."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size)
    scores = 1 / (1 + np.exp(-(labels + rng.normal(0, 1, size))))
    if decimals is not None:
        scores = np.round(scores, decimals)
    return labels, scores


def multiclass_data(seed: int, num_classes: int = 4, size: int = 400):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size)
    logits = rng.normal(0, 1, (size, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    logits = np.round(logits, 1)  # ties in every class's scores
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("seed", SEEDS)
def test_roc_curve_and_auc_match_sklearn(seed, decimals):
    labels, scores = binary_data(seed, decimals=decimals)
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    expected_fpr, expected_tpr, expected_thresholds = sk.roc_curve(
        labels, scores, drop_intermediate=False
    )
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    np.testing.assert_array_equal(thresholds[1:], expected_thresholds[1:])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    expected_auc = sk.roc_auc_score(labels, scores)
    assert metrics.roc_auc(labels, scores) == pytest.approx(expected_auc, abs=1e-12)


def test_auc_counts_ties_as_half():
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]])
def test_auc_of_one_class_is_a_clear_error(labels):
    with pytest.raises(DlcliError, match="both classes"):
        metrics.roc_auc(labels, np.linspace(0, 1, len(labels)))


def test_nan_scores_are_a_clear_error():
    with pytest.raises(DlcliError, match="NaN"):
        metrics.roc_auc([0, 1], [0.2, np.nan])


def reference_rejection(labels, scores, efficiency):
    """1/FPR interpolated on sklearn's full ROC curve, first point with TPR >= e."""
    fpr, tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    first = np.flatnonzero(tpr >= efficiency)[0]
    slope = (fpr[first] - fpr[first - 1]) / (tpr[first] - tpr[first - 1])
    false_positive_rate = fpr[first - 1] + (efficiency - tpr[first - 1]) * slope
    return 1 / false_positive_rate


@pytest.mark.parametrize("decimals", [None, 2])
@pytest.mark.parametrize("seed", SEEDS)
def test_background_rejection_matches_interpolated_roc(seed, decimals):
    labels, scores = binary_data(seed, decimals=decimals)
    rejections = metrics.background_rejection(labels, scores, efficiencies=(0.3, 0.5, 0.7, 0.9))
    assert list(rejections) == ["0.3", "0.5", "0.7", "0.9"]
    for key, rejection in rejections.items():
        assert rejection == pytest.approx(reference_rejection(labels, scores, float(key)))
    # Demanding more signal can only let more background through.
    assert list(rejections.values()) == sorted(rejections.values(), reverse=True)


def test_background_rejection_is_infinite_when_no_background_passes():
    rejections = metrics.background_rejection([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert rejections == {"0.5": float("inf"), "0.7": float("inf"), "0.9": float("inf")}


def test_background_rejection_exact_and_interpolated_points():
    # ROC points (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1).
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    rejections = metrics.background_rejection(labels, scores, (0.5, 0.75))
    assert rejections == {"0.5": float("inf"), "0.75": 2.0}


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_and_per_class_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, predicted = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    predicted[predicted == 3] = 4  # class 3 never predicted: zero division
    confusion = metrics.confusion_matrix(labels, predicted, 5)
    expected = sk.confusion_matrix(labels, predicted, labels=range(5))
    np.testing.assert_array_equal(confusion, expected)
    scores = metrics.precision_recall_f1(confusion)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predicted, labels=range(5), zero_division=0
    )
    np.testing.assert_allclose(scores["precision"], precision)
    np.testing.assert_allclose(scores["recall"], recall)
    np.testing.assert_allclose(scores["f1"], f1)
    np.testing.assert_array_equal(scores["support"], support)
    assert scores["precision"][3] == 0.0


def test_out_of_range_label_is_a_clear_error():
    with pytest.raises(DlcliError, match=r"0\.\.1 for 2 classes, found \[3\]"):
        metrics.confusion_matrix([0, 3], [0, 1], 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_classification_report_matches_sklearn(seed):
    labels, scores = binary_data(seed, decimals=2)
    report = metrics.classification_report(labels, scores, ["background", "signal"])
    predicted = (scores > 0.5).astype(int)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert report["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()
    assert report["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    signal = report["per_class"]["signal"]
    assert signal["precision"] == pytest.approx(sk.precision_score(labels, predicted))
    assert report["per_class"]["signal"]["support"] == int(labels.sum())
    assert report["auc"] == pytest.approx(sk.roc_auc_score(labels, scores))
    assert set(report["background_rejection"]) == {"0.5", "0.7", "0.9"}
    json.dumps(report)


def test_binary_report_accepts_an_n_by_1_output():
    labels, scores = binary_data(0)
    flat = metrics.classification_report(labels, scores, ["b", "s"])
    assert metrics.classification_report(labels, scores[:, None], ["b", "s"]) == flat


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_classification_report_matches_sklearn(seed):
    labels, probabilities = multiclass_data(seed)
    names = ["a", "b", "c", "d"]
    report = metrics.classification_report(labels, probabilities, names)
    predicted = probabilities.argmax(axis=1)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert report["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()
    assert report["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    recall = sk.recall_score(labels, predicted, average=None)
    assert [report["per_class"][name]["recall"] for name in names] == pytest.approx(recall)
    expected_auc = sk.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert report["auc"] == pytest.approx(expected_auc, abs=1e-12)
    assert "background_rejection" not in report
    json.dumps(report)


def test_multiclass_report_omits_auc_when_a_class_is_absent():
    labels, probabilities = multiclass_data(0)
    present = labels != 2
    names = ["a", "b", "c", "d"]
    report = metrics.classification_report(labels[present], probabilities[present], names)
    assert "auc" not in report
    assert report["per_class"]["c"]["support"] == 0
    json.dumps(report)


def test_wrong_number_of_class_names_is_a_clear_error():
    labels, probabilities = multiclass_data(0)
    with pytest.raises(DlcliError, match="one name per class"):
        metrics.classification_report(labels, probabilities, ["a", "b"])


@pytest.mark.parametrize("outputs", [None, 1, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_regression_report_matches_sklearn(seed, outputs):
    rng = np.random.default_rng(seed)
    shape = (200,) if outputs is None else (200, outputs)
    targets = rng.normal(0, 2, shape)
    predictions = targets + rng.normal(0, 1, shape)
    report = metrics.regression_report(targets, predictions)
    assert report["mse"] == pytest.approx(sk.mean_squared_error(targets, predictions))
    assert report["mae"] == pytest.approx(sk.mean_absolute_error(targets, predictions))
    assert report["r2"] == pytest.approx(sk.r2_score(targets, predictions))
    assert all(type(value) is float for value in report.values())


def test_regression_r2_of_a_constant_target_follows_sklearn():
    targets = np.c_[np.ones(10), np.arange(10.0)]
    for predictions in (targets, targets + 0.5):
        report = metrics.regression_report(targets, predictions)
        assert report["r2"] == pytest.approx(sk.r2_score(targets, predictions))


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, "temporary file left behind"


def test_plot_history_writes_a_png(tmp_path):
    history = [
        {"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "accuracy": 1 - 0.5 / e,
         "val_accuracy": np.float32(1 - 0.6 / e), "auc": 0.5 + 0.04 * e}
        for e in range(1, 11)
    ]
    path = plots.plot_history(history, tmp_path / "plots" / "history.png", best_epoch=7)
    assert path == tmp_path / "plots" / "history.png"
    assert_png(path)
    assert plots.metric_families(history) == ["loss", "accuracy", "auc"]


def test_plot_roc_writes_a_png(tmp_path):
    labels, scores = binary_data(0)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    auc = metrics.roc_auc(labels, scores)
    assert_png(plots.plot_roc(fpr, tpr, auc, tmp_path / "roc.png", title="val ROC"))


def test_plot_confusion_writes_a_png(tmp_path):
    labels, probabilities = multiclass_data(0)
    confusion = metrics.confusion_matrix(labels, probabilities.argmax(axis=1), 4)
    assert_png(plots.plot_confusion(confusion, ["a", "b", "c", "d"], tmp_path / "confusion.png"))


def test_plot_score_histograms_writes_a_png(tmp_path):
    labels, scores = binary_data(0)
    assert_png(plots.plot_score_histograms(labels, scores, tmp_path / "scores.png"))
