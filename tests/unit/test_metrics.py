from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_multires.metrics import ChallengeScore, metrics_from_confusion


def reference(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> dict[str, float]:
    """Plain numpy: micro accuracy, F1 per class with zero_division=0, mean over all classes."""
    f1s = []
    for c in range(num_classes):
        tp = np.sum((preds == c) & (labels == c))
        fp = np.sum((preds == c) & (labels != c))
        fn = np.sum((preds != c) & (labels == c))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    acc = float(np.mean(labels == preds))
    f1 = float(np.mean(f1s))
    return {"acc": acc, "f1": f1, "score": 0.33 * acc + 0.67 * f1, "f1_per_class": f1s}


@pytest.mark.parametrize("seed", range(5))
def test_matches_numpy_reference_with_absent_classes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 8
    # classes 6 and 7 never occur in the labels; class 7 is still sometimes predicted
    labels = rng.integers(0, 6, size=500)
    preds = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 8, size=500))
    metric = ChallengeScore(num_classes)
    for chunk in np.array_split(np.arange(500), 7):
        metric.update(torch.from_numpy(preds[chunk]), torch.from_numpy(labels[chunk]))
    got = metric.compute()
    want = reference(labels, preds, num_classes)
    for key in ("acc", "f1", "score"):
        assert got[key].item() == pytest.approx(want[key], abs=1e-12)
    np.testing.assert_allclose(got["f1_per_class"].numpy(), want["f1_per_class"], atol=1e-12)
    assert got["f1_per_class"][6].item() == 0.0  # never occurs, never predicted: counts as 0
    assert got["n"].item() == 500


def test_logits_are_argmaxed() -> None:
    metric = ChallengeScore(3)
    metric.update(torch.tensor([[0.1, 0.9, 0.0], [2.0, 0.0, 0.0]]), torch.tensor([1, 2]))
    assert metric.confusion.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_confusion_sum_of_shards_equals_whole() -> None:
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 7, 101), rng.integers(0, 7, 101)
    whole = ChallengeScore(7)
    whole.update(torch.from_numpy(preds), torch.from_numpy(labels))
    parts = [ChallengeScore(7), ChallengeScore(7)]
    for rank, part in enumerate(parts):
        part.update(torch.from_numpy(preds[rank::2]), torch.from_numpy(labels[rank::2]))
    merged = metrics_from_confusion(parts[0].confusion + parts[1].confusion)
    assert merged["score"].item() == whole.compute()["score"].item()


def test_empty_is_zero_not_nan() -> None:
    out = ChallengeScore(7).compute()
    assert out["score"].item() == 0.0 and out["n"].item() == 0


def test_confusion_from_labels_counts_every_pair_and_rejects_out_of_range_labels() -> None:
    from fer_multires.metrics import confusion_from_labels

    rng = np.random.default_rng(0)
    target, predicted = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=np.int64)
    np.add.at(expected, (target, predicted), 1)
    assert np.array_equal(confusion_from_labels(target, predicted, 7).numpy(), expected)
    assert confusion_from_labels(np.array([], int), np.array([], int), 7).sum() == 0
    with pytest.raises(IndexError, match=r"outside 0..6"):
        confusion_from_labels(np.array([0, 1]), np.array([0, 8]), 7)  # 0 * 7 + 8 is a valid cell


def test_frames_without_an_expression_are_left_out_of_the_confusion_matrix() -> None:
    """Multi-task frames annotated only for valence-arousal or AUs carry the label -1."""
    from fer_multires.metrics import ChallengeScore

    metric = ChallengeScore(3)
    metric.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, -1, 2, -1]))
    assert metric.compute()["confusion"].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
