"""DCASE 2019 Task 5 coarse metrics against small cases worked out by hand (docs/PROTOCOL.md §4.3)."""
import numpy as np
import pytest

from sea_tf.classify import ust_metrics as um
from sea_tf.errors import ClassifyError


def test_one_class_by_hand():
    # thresholds (descending) 1.0, 0.9, 0.8, 0.4 (0.005 < 0.01 is skipped):
    #   1.0: TP0 FP0 -> (R 0, P 0); 0.9: TP1 FN1 -> (0.5, 1); 0.8: TP1 FP1 -> (0.5, 0.5);
    #   0.4: TP2 FP1 -> (1, 2/3). Area with (0,1) before and (1,0) after:
    #   0.5*(0+1)/2 + 0.5*(0.5+2/3)/2 = 0.25 + 7/24 = 13/24.
    curve = um.class_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.005]))
    np.testing.assert_array_equal(curve["threshold"], [1.0, 0.9, 0.8, 0.4])
    np.testing.assert_array_equal(curve["tp"], [0, 1, 1, 2])
    np.testing.assert_array_equal(curve["fp"], [0, 0, 1, 1])
    np.testing.assert_allclose(curve["precision"], [0, 1, 0.5, 2 / 3])
    np.testing.assert_allclose(curve["recall"], [0, 0.5, 0.5, 1])
    assert curve["auprc"] == pytest.approx(13 / 24, abs=1e-12)


def test_threshold_is_inclusive_and_includes_one():
    # A file predicted exactly at the threshold is positive (>=): at t = 0.8 the 0.8 file counts.
    tp, fp, fn = um.counts(np.array([1, 0]), np.array([0.8, 0.3]), np.array([0.8]))
    assert (tp[0], fp[0], fn[0]) == (1, 0, 0)
    np.testing.assert_array_equal(um.thresholds_of(np.array([0.2, 0.009, 0.2, 1.0])), [0.2, 1.0])


def test_micro_and_macro_by_hand():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[0.7, 0.2], [0.3, 0.6], [0.5, 0.005]])
    # Micro: union of thresholds 0.2, 0.3, 0.5, 0.6, 0.7, 1.0 with TP/FP/FN summed over classes:
    #   0.2: TP3 FP2 FN1; 0.3: TP3 FP1 FN1; 0.5: TP3 FP0 FN1; 0.6: TP2 FN2; 0.7: TP1 FN3; 1.0: FN4.
    micro = um.micro_curve(y, p)
    np.testing.assert_array_equal(micro["threshold"], [0.2, 0.3, 0.5, 0.6, 0.7, 1.0])
    np.testing.assert_array_equal(micro["tp"], [3, 3, 3, 2, 1, 0])
    np.testing.assert_array_equal(micro["fp"], [2, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(micro["fn"], [1, 1, 1, 2, 3, 4])
    # From the highest threshold down: (0,0) (.25,1) (.5,1) (.75,1) (.75,.75) (.75,.6), then (1,0):
    # .125 + .25 + .25 + .25*(.6+0)/2 = 0.7
    m = um.ust_metrics(y, p, ["a", "b"])
    assert m["micro_auprc"] == pytest.approx(0.7, abs=1e-12)
    # F1 at the smallest threshold >= 0.5 (0.5 itself): P 1, R 3/4 -> 2 / (1 + 4/3) = 6/7.
    assert m["micro_f1_threshold"] == 0.5
    assert m["micro_f1"] == pytest.approx(6 / 7, abs=1e-12)
    # Class a: (0,0) (.5,1) (1,1) (1,2/3) -> 0.25 + 0.5 = 0.75; class b: (0,0) (.5,1) (.5,.5) -> 0.25 + 0.125.
    assert m["class_auprc"] == pytest.approx({"a": 0.75, "b": 0.375}, abs=1e-12)
    assert m["macro_auprc"] == pytest.approx(0.5625, abs=1e-12)
    assert m["positives"] == {"a": 2, "b": 2} and m["n_files"] == 3


def test_tied_recall_keeps_the_challenge_order():
    # Recall 1/3 at thresholds 0.9 (P 1) and 0.5 (P 0.5). The challenge lists a class from the highest
    # threshold down: (0,0) -> (1/3,1), (1/3,.5) -> (1,0) = 1/6 + 1/6 = 1/3. The other order of the
    # tie would give 1/12 + 1/3 = 5/12, so this catches a sort that swaps tied points.
    curve = um.class_curve(np.array([1, 0, 1, 1]), np.array([0.9, 0.5, 0.005, 0.003]))
    assert curve["auprc"] == pytest.approx(1 / 3, abs=1e-12)


def test_micro_of_one_class_is_its_auprc():
    # Points (0,0) (1,1) (1,.5): 0.5 for both. The challenge code's recall sort of the micro points
    # from the lowest threshold up would put (1,.5) before (1,1) and give 0.25 on a stable sort.
    m = um.ust_metrics(np.array([[1], [0]]), np.array([[0.9], [0.2]]), ["dog"])
    assert m["micro_auprc"] == pytest.approx(0.5, abs=1e-12) == m["class_auprc"]["dog"]
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (40, 1)), rng.random((40, 1))
    m = um.ust_metrics(y, p, ["dog"])
    assert m["micro_auprc"] == pytest.approx(m["macro_auprc"], abs=1e-12)


def test_f1_is_zero_not_nan_without_true_positives():
    m = um.ust_metrics(np.array([[1], [0]]), np.array([[0.1], [0.9]]), ["dog"])
    assert m["micro_f1"] == 0.0 and m["micro_f1_threshold"] == 0.9


def test_no_prediction_above_the_floor():
    # Every value below 0.01: only threshold 1.0 -> (0, 0); the padded curve (0,1) (0,0) (1,0) has area 0.
    m = um.ust_metrics(np.array([[1], [0]]), np.array([[0.001], [0.002]]), ["dog"])
    assert m["micro_auprc"] == 0.0 and m["class_auprc"]["dog"] == 0.0 and m["micro_f1"] == 0.0


def test_bad_shapes_and_values():
    with pytest.raises(ClassifyError, match="shape"):
        um.ust_metrics(np.zeros((2, 2)), np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ClassifyError, match="no files"):
        um.ust_metrics(np.zeros((0, 1)), np.zeros((0, 1)), ["a"])
    with pytest.raises(ClassifyError, match="NaN"):
        um.ust_metrics(np.ones((1, 1)), np.full((1, 1), np.nan), ["a"])
