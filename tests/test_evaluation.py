import numpy as np
import pytest

from ser.evaluation import plot_confusion, scores


def test_scores_pinned_numbers():
    y_true = [0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 0]
    s = scores(y_true, y_pred, 3)
    assert s["n"] == 8
    assert s["wa"] == pytest.approx(5 / 8)
    # recalls: class 0 1/2, class 1 2/2, class 2 2/4 -> UA = (0.5 + 1 + 0.5) / 3
    assert s["ua"] == pytest.approx(2 / 3)
    # F1: class 0 P=1/3 R=1/2 -> 0.4; class 1 P=2/3 R=1 -> 0.8; class 2 P=1 R=1/2 -> 2/3
    assert s["macro_f1"] == pytest.approx((0.4 + 0.8 + 2 / 3) / 3)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [2, 0, 2]]


def test_ua_differs_from_wa_under_imbalance():
    y_true = [0] * 9 + [1]
    y_pred = [0] * 10
    s = scores(y_true, y_pred, 2)
    assert s["wa"] == pytest.approx(0.9)
    assert s["ua"] == pytest.approx(0.5)


def test_ua_uses_only_classes_present_in_the_fold():
    s = scores([0, 0, 1], [0, 0, 2], 4)
    assert s["ua"] == pytest.approx(0.5)  # mean of recall(0)=1 and recall(1)=0; classes 2, 3 absent
    assert np.asarray(s["confusion"]).shape == (4, 4)


def test_scores_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="equal, non-empty"):
        scores([0, 1], [0], 2)


def test_plot_confusion_writes_png(tmp_path):
    path = tmp_path / "cm.png"
    plot_confusion([[3, 1], [0, 4]], ["a", "b"], path, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_recalls_and_chance_levels():
    from ser.evaluation import chance_levels, class_recalls

    confusion = [[3, 1, 0], [0, 0, 0], [2, 0, 2]]
    assert class_recalls(confusion, ["a", "b", "c"]) == {"a": 0.75, "c": 0.5}  # b has no example
    assert chance_levels([0, 0, 0, 2]) == {"ua": 0.5, "wa": 0.75}
