"""DCASE 2019 Task 5 coarse metrics against small cases worked out by hand (docs/PROTOCOL.md §4.3)."""
import numpy as np
import pytest

import ust_evaluator_support
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
    # .125 + .25 + .25 + .25*(.6+0)/2 = 0.7 (the threshold-order area).
    m = um.ust_metrics(y, p, ["a", "b"])
    assert m["micro_auprc_threshold_order"] == pytest.approx(0.7, abs=1e-12)
    # The evaluator sorts the points listed from 0.2 up by recall: three tie at R 0.75 (P .6, .75, 1).
    # (0,1) (0,0) (.25,1) (.5,1) = .375; then (.5,1) -> the first tied point (P_f), the tie (dx 0),
    # the last tied point (P_l) -> (1,0): .375 + .25 (1 + P_f) / 2 + .25 P_l / 2; the threshold order
    # (P_f = 1, P_l = .6) gives 0.7, numpy's unstable sort may give another pair.
    tied = [i for i in np.argsort(micro["recall"]) if micro["recall"][i] == 0.75]
    first, last = micro["precision"][tied[0]], micro["precision"][tied[-1]]
    assert m["micro_auprc"] == pytest.approx(0.375 + 0.125 * (1 + first) + 0.125 * last, abs=1e-12)
    # F1 at the smallest threshold >= 0.5 (0.5 itself): P 1, R 3/4 -> 2 / (1 + 4/3) = 6/7.
    assert m["micro_f1_threshold"] == 0.5
    assert m["micro_f1"] == pytest.approx(6 / 7, abs=1e-12)
    # Class a: (0,0) (.5,1) (1,1) (1,2/3) -> 0.25 + 0.5 = 0.75; class b: (0,0) (.5,1) (.5,.5) -> 0.25 + 0.125.
    assert m["class_auprc"] == pytest.approx({"a": 0.75, "b": 0.375}, abs=1e-12)
    assert m["macro_auprc"] == pytest.approx(0.5625, abs=1e-12)
    assert m["positives"] == {"a": 2, "b": 2} and m["n_files"] == 3


def _first_of_tie(recall, i, j):
    """Whether numpy's default argsort of ``recall`` (the evaluator's call) puts point ``i`` before ``j``."""
    order = list(np.argsort(np.asarray(recall, dtype=np.float64)))
    return order.index(i) < order.index(j)


def test_tied_class_recall_follows_the_evaluators_sort():
    # Class points from the highest threshold down: 1.0 (R 0, P 0), 0.9 (1/3, 1), 0.5 (1/3, 0.5).
    # With 0.9's point first: (0,0) -> (1/3,1), (1/3,.5) -> (1,0) = 1/6 + 1/6 = 1/3 (the threshold order);
    # with 0.5's first: (0,0) -> (1/3,.5) = 1/12, (1/3,1) -> (1,0) = 1/3: 5/12. The evaluator sorts the
    # recalls with numpy's default (unstable) argsort, so its number is whichever that sort gives.
    curve = um.class_curve(np.array([1, 0, 1, 1]), np.array([0.9, 0.5, 0.005, 0.003]))
    np.testing.assert_allclose(curve["recall"], [0, 1 / 3, 1 / 3])
    expected = 1 / 3 if _first_of_tie(curve["recall"], 1, 2) else 5 / 12
    assert curve["auprc"] == pytest.approx(expected, abs=1e-12)
    assert curve["auprc_threshold_order"] == pytest.approx(1 / 3, abs=1e-12)


def test_micro_curve_is_sorted_from_the_lowest_threshold_up_as_the_evaluator_lists_it():
    # One class, files (1, 0.9) and (0, 0.2). Micro points from the lowest threshold up: 0.2 (R 1, P 0.5),
    # 0.9 (1, 1), 1.0 (0, 0). Sorted by recall, the tie at R 1 decides the area:
    #   0.2's point first: (0,1) (0,0) (1,.5) (1,1) (1,0) -> 0.25;  0.9's first: (0,0) -> (1,1) -> 0.5.
    # In threshold order (from 1.0 down) the curve is (0,0) (1,1) (1,.5): 0.5, which the old code reported.
    y, p = np.array([[1], [0]]), np.array([[0.9], [0.2]])
    micro = um.micro_curve(y, p)
    np.testing.assert_array_equal(micro["threshold"], [0.2, 0.9, 1.0])
    np.testing.assert_allclose(micro["recall"], [1, 1, 0])
    np.testing.assert_allclose(micro["precision"], [0.5, 1, 0])
    expected = 0.25 if _first_of_tie(micro["recall"], 0, 1) else 0.5
    m = um.ust_metrics(y, p, ["dog"])
    assert m["micro_auprc"] == pytest.approx(expected, abs=1e-12)
    assert m["micro_auprc_threshold_order"] == pytest.approx(0.5, abs=1e-12)
    # the class curve lists the same points from the highest threshold down: (0,0) (1,1) (1,.5)
    assert m["class_auprc"]["dog"] == pytest.approx(0.5 if _first_of_tie([0, 1, 1], 1, 2) else 0.25, abs=1e-12)
    assert m["macro_auprc_threshold_order"] == pytest.approx(0.5, abs=1e-12)


def test_micro_of_one_class_in_threshold_order_is_its_auprc():
    # Every step past a negative file repeats a recall, so even one class's micro and class areas
    # may differ by the evaluator's sort (its micro list runs the other way); in threshold order they agree.
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (40, 1)), rng.random((40, 1))
    m = um.ust_metrics(y, p, ["dog"])
    assert m["micro_auprc_threshold_order"] == pytest.approx(m["macro_auprc_threshold_order"], abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_equals_an_independent_evaluator_on_tied_predictions(seed):
    """Many files, predictions on a coarse grid (as a 2-decimal CSV would hold): many tied recalls.

    Bit-for-bit equality with the independent re-implementation of the evaluator's procedure
    (tests/ust_evaluator_support.py), which counts the micro curve its own way (each class's last
    row above the threshold) and sorts with the same numpy call.
    """
    rng = np.random.default_rng(seed)
    n, k = 120 + 40 * seed, 8
    y = (rng.random((n, k)) < rng.uniform(0.1, 0.5, k)).astype(int)
    y[0], y[1] = 1, 0    # every class has both labels: the evaluator's confusion matrix is 2 x 2
    p = np.clip(np.round(0.45 * y + 0.55 * rng.random((n, k)), 2), 0, 1)
    m = um.ust_metrics(y, p, [f"c{i}" for i in range(k)])
    ref = ust_evaluator_support.evaluate_arrays(y, p)
    assert m["micro_auprc"] == ref["micro_auprc"]
    assert m["macro_auprc"] == ref["macro_auprc"]
    assert m["micro_f1"] == ref["micro_f1"]
    assert list(m["class_auprc"].values()) == ref["class_auprc"]


def test_tied_recalls_make_the_evaluators_area_differ_from_the_threshold_order():
    # Over the cases above at least one micro area differs between the two orders: the evaluator's
    # number is not the threshold-order area the old code reported as micro_auprc.
    differ = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n, k = 120 + 40 * seed, 8
        y = (rng.random((n, k)) < rng.uniform(0.1, 0.5, k)).astype(int)
        y[0], y[1] = 1, 0
        p = np.clip(np.round(0.45 * y + 0.55 * rng.random((n, k)), 2), 0, 1)
        m = um.ust_metrics(y, p, [f"c{i}" for i in range(k)])
        differ.append(m["micro_auprc"] != m["micro_auprc_threshold_order"])
    assert any(differ)


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
