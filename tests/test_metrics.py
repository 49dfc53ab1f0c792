import numpy as np
import pytest

from swagbench.bench.answer.metrics import calibration, detection_scores, sample_checkpoints


def test_calibration_hand_computed():
    probs = np.array([[0.95, 0.05], [0.62, 0.38], [0.29, 0.71], [0.17, 0.83]])
    labels = np.array([0, 1, 1, 1])
    m = calibration(probs, labels)
    # Confidences 0.95, 0.62, 0.71, 0.83 fall in four different bins; correct = 1, 0, 1, 1.
    assert m["ece"] == pytest.approx((0.05 + 0.62 + 0.29 + 0.17) / 4)
    assert m["mce"] == pytest.approx(0.62)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.95, 0.38, 0.71, 0.83])))
    assert m["brier"] == pytest.approx((0.005 + 0.7688 + 0.1682 + 0.0578) / 4)
    assert m["accuracy"] == pytest.approx(0.75)


def test_ece_weights_bins_by_size():
    # Three examples share the 0.8 bin (2 correct), one sits alone at 0.3 (wrong class wins).
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 0])
    m = calibration(probs, labels)
    assert m["ece"] == pytest.approx(3 / 4 * abs(2 / 3 - 0.8) + 1 / 4 * abs(0 - 0.7))
    assert m["mce"] == pytest.approx(0.7)


def test_perfect_predictions():
    probs = np.eye(3)[[0, 1, 2, 1]]
    m = calibration(probs, np.array([0, 1, 2, 1]))
    assert m["ece"] == 0 and m["brier"] == 0 and m["accuracy"] == 1 and m["nll"] == pytest.approx(0, abs=1e-9)


def test_calibration_shape_check():
    with pytest.raises(ValueError, match="probs must be"):
        calibration(np.ones((3, 2)) / 2, np.array([0, 1]))


def test_detection_scores():
    found = np.array([1, 1, 0, 0, 1], bool)
    truth = np.array([1, 0, 1, 0, 1], bool)
    s = detection_scores(found, truth)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["n_found"] == 3 and s["n_true"] == 3
    assert detection_scores(np.zeros(3, bool), np.zeros(3, bool))["f1"] == 1.0


@pytest.mark.parametrize("s, points", [(1, [1]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])])
def test_sample_checkpoints(s, points):
    assert sample_checkpoints(s) == points
