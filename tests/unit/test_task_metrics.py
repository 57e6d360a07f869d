from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_f1_score

from fer_multires.task_metrics import (
    AU_THRESHOLDS,
    ActionUnitScore,
    AuCounts,
    ConcordanceScore,
    au_counts,
    au_f1_at,
    au_f1_from_counts,
    au_metrics_from_counts,
    ccc_from_sums,
    choose_thresholds,
    mtl_score,
    threshold_indices,
    va_metrics_from_sums,
    va_sums,
)
from fer_multires.tasks import AU_MISSING, AU_NAMES, VA_MISSING

# --------------------------------------------------------------------------------------------
# valence-arousal


def ccc_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Two-pass numpy CCC with population moments (np.cov with bias=True)."""
    cov = np.cov(x, y, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))


def va_data(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, annotations with missing rows (-5 in both, -5 in one, NaN), kept mask."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, size=(n, 2))
    preds = np.clip(0.6 * target + rng.normal(0.1, 0.3, size=(n, 2)), -1, 1).astype(np.float32)
    missing = rng.random(n) < 0.2
    kind = rng.integers(0, 3, size=n)
    target[missing & (kind == 0)] = VA_MISSING
    target[missing & (kind == 1), 1] = VA_MISSING
    target[missing & (kind == 2), 0] = np.nan
    preds[missing & (kind == 2)] = np.nan  # a prediction at a missing row is never read
    return preds, target, ~missing


@pytest.mark.parametrize("seed", range(4))
def test_ccc_matches_numpy_in_one_or_many_batches(seed: int) -> None:
    preds, target, kept = va_data(seed)
    want = [ccc_reference(preds[kept, d].astype(np.float64), target[kept, d]) for d in (0, 1)]
    whole = ConcordanceScore()
    whole.update(torch.from_numpy(preds), torch.from_numpy(target))
    batched = ConcordanceScore()
    for chunk in np.array_split(np.arange(len(preds)), 9):
        batched.update(torch.from_numpy(preds[chunk]), torch.from_numpy(target[chunk]))
    for metric in (whole, batched):
        got = metric.compute()
        assert got["ccc_valence"].item() == pytest.approx(want[0], abs=1e-12)
        assert got["ccc_arousal"].item() == pytest.approx(want[1], abs=1e-12)
        assert got["va_score"].item() == pytest.approx(np.mean(want), abs=1e-12)
        assert got["n"].item() == kept.sum()
    # the same sums added in another order: equal to float64 rounding
    torch.testing.assert_close(whole.sums, batched.sums, rtol=1e-14, atol=1e-12)


def test_sums_are_float64_sums_of_the_annotated_frames() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    preds = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    target = rng.uniform(-1, 1, size=(n, 2))
    metric = ConcordanceScore()
    for chunk in np.array_split(np.arange(n), 10):
        metric.update(torch.from_numpy(preds[chunk]), torch.from_numpy(target[chunk]))
    assert metric.sums.dtype == torch.float64
    x, y = preds.astype(np.float64), target
    for d in (0, 1):
        exact = [n, *(math.fsum(v[:, d]) for v in (x, y, x * x, y * y, x * y))]
        # float32 sums would be off by about 1e-7 relative
        np.testing.assert_allclose(metric.sums[d].numpy(), exact, rtol=1e-13, atol=1e-10)


def test_sums_stay_float64_when_the_module_changes_dtype() -> None:
    metric = ConcordanceScore()
    metric.update(torch.tensor([[0.25, -0.5]]), torch.tensor([[0.5, -0.25]]))
    for change in (
        lambda m: m.to(torch.bfloat16),
        lambda m: m.half(),
        lambda m: m.set_dtype(torch.float16),
        lambda m: m.to("cpu"),
    ):
        change(metric)
        assert metric.sums.dtype == torch.float64
    assert metric.sums[0].tolist() == [1.0, 0.25, 0.5, 0.0625, 0.25, 0.125]
    metric.reset()
    assert metric.sums.dtype == torch.float64 and metric.sums.sum() == 0


def test_missing_rows_leave_no_trace() -> None:
    preds = torch.tensor([[0.1, 0.2], [float("nan"), 9.0], [0.3, -0.4], [5.0, 5.0]])
    target = torch.tensor([[0.2, 0.1], [float("nan"), 0.5], [0.1, -0.2], [0.5, VA_MISSING]])
    assert torch.equal(va_sums(preds, target), va_sums(preds[[0, 2]], target[[0, 2]]))


def test_ccc_of_special_cases() -> None:
    y = torch.linspace(-1, 1, 101, dtype=torch.float64)
    cases = {
        "agreement": (y, y, 1.0),
        "opposite": (-y, y, -1.0),
        "constant prediction": (torch.full_like(y, 0.3), y, 0.0),
        "both constant and equal": (torch.full_like(y, 0.3), torch.full_like(y, 0.3), 0.0),
    }
    for name, (x, t, want) in cases.items():
        sums = va_sums(torch.stack([x, x], 1), torch.stack([t, t], 1))
        assert ccc_from_sums(sums).tolist() == pytest.approx([want, want], abs=1e-12), name
    shifted = va_sums(torch.stack([y + 0.5] * 2, 1), torch.stack([y] * 2, 1))
    assert ccc_from_sums(shifted)[0].item() < 1  # a bias is penalised: CCC, not correlation
    with pytest.warns(UserWarning, match="before the ``update``"):
        empty = ConcordanceScore().compute()
    assert empty["va_score"].item() == 0.0 and empty["n"].item() == 0


def test_ccc_from_sums_on_numpy_and_stacks() -> None:
    stack = []
    for seed in range(5):
        preds, target, _ = va_data(seed, n=60)
        stack.append(va_sums(torch.from_numpy(preds), torch.from_numpy(target)))
    sums = torch.stack(stack)  # (B, 2, 6), as a bootstrap's resamples
    stacked = ccc_from_sums(sums)
    assert stacked.shape == (5, 2)
    for b in range(5):
        assert torch.equal(stacked[b], ccc_from_sums(sums[b]))
    as_numpy = ccc_from_sums(sums.numpy())
    assert isinstance(as_numpy, np.ndarray) and np.array_equal(as_numpy, stacked.numpy())
    assert va_metrics_from_sums(sums)["va_score"].shape == (5,)


# --------------------------------------------------------------------------------------------
# action units


def au_data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities (some exactly on grid thresholds) and labels, 25% missing."""
    rng = np.random.default_rng(seed)
    target = (rng.random((n, 12)) < rng.uniform(0.05, 0.6, size=12)).astype(np.int64)
    probs = np.clip(0.35 * target + rng.beta(2, 4, size=(n, 12)), 0, 1).astype(np.float32)
    on_grid = rng.random((n, 12)) < 0.1
    probs[on_grid] = rng.choice(AU_THRESHOLDS, size=on_grid.sum()).astype(np.float32)
    target[rng.random((n, 12)) < 0.25] = AU_MISSING
    target[:, 7] = np.where(target[:, 7] == 1, 0, target[:, 7])  # AU15 never positive
    return probs, target


def f1_reference(probs: np.ndarray, target: np.ndarray, thresholds) -> np.ndarray:
    """scikit-learn's f1_score(zero_division=0) per AU on its labelled entries (predicted
    positive at prob >= t); torchmetrics' binary F1 (labels -1 ignored) must agree."""
    from sklearn.metrics import f1_score

    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (12,))
    out = []
    for a in range(12):
        kept = target[:, a] != AU_MISSING
        predicted = (probs[:, a] >= thresholds[a]).astype(np.int64)
        score = f1_score(target[kept, a], predicted[kept], zero_division=0)
        other = binary_f1_score(torch.from_numpy(predicted), torch.from_numpy(target[:, a]),
                                ignore_index=-1, zero_division=0)  # fmt: skip
        assert other.item() == pytest.approx(score, abs=1e-7)
        out.append(score)
    return np.array(out)


def f1_by_precision_recall(probs: np.ndarray, target: np.ndarray, threshold: float) -> np.ndarray:
    """Plain numpy, F1 as the harmonic mean of precision and recall, 0 when undefined."""
    out = []
    for a in range(12):
        kept = target[:, a] != AU_MISSING
        y, p = target[kept, a] == 1, probs[kept, a] >= threshold
        tp, fp, fn = np.sum(p & y), np.sum(p & ~y), np.sum(~p & y)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return np.array(out)


def filled_metric(probs: np.ndarray, target: np.ndarray, batches: int = 1) -> ActionUnitScore:
    metric = ActionUnitScore()
    for chunk in np.array_split(np.arange(len(probs)), batches):
        metric.update(torch.from_numpy(probs[chunk]), torch.from_numpy(target[chunk]))
    return metric


@pytest.mark.parametrize("seed", range(4))
def test_au_f1_matches_references_at_half_and_at_chosen_thresholds(seed: int) -> None:
    probs, target = au_data(seed)
    metric = filled_metric(probs, target, batches=7)
    at_half = metric.compute()
    want = f1_reference(probs, target, 0.5)
    np.testing.assert_allclose(at_half["f1_per_au"].numpy(), want, atol=1e-7)
    np.testing.assert_allclose(want, f1_by_precision_recall(probs, target, 0.5), atol=1e-12)
    assert at_half["f1_AU15"].item() == 0.0  # never positive: zero_division = 0, still averaged
    assert at_half["au_score"].item() == pytest.approx(want.mean(), abs=1e-7)
    for i, name in enumerate(AU_NAMES):
        assert at_half[f"f1_{name}"].item() == at_half["f1_per_au"][i].item()

    chosen = choose_thresholds(at_half["counts"])
    at_chosen = metric.compute(chosen)  # not the cached result at 0.5
    np.testing.assert_allclose(at_chosen["f1_per_au"].numpy(),
                               f1_reference(probs, target, chosen), atol=1e-7)  # fmt: skip
    # the numpy recomputation agrees to the last digit
    assert np.array_equal(at_chosen["f1_per_au"].numpy(), au_f1_at(probs, target, chosen))
    assert np.array_equal(at_half["f1_per_au"].numpy(), au_f1_at(probs, target, 0.5))


@pytest.mark.parametrize("seed", range(3))
def test_chosen_thresholds_are_the_best_of_the_grid(seed: int) -> None:
    probs, target = au_data(seed)
    counts = filled_metric(probs, target).compute()["counts"]
    chosen = choose_thresholds(counts)
    brute = np.stack([au_f1_at(probs, target, t) for t in AU_THRESHOLDS])  # (T, 12)
    best = au_f1_at(probs, target, chosen)
    assert np.array_equal(best, brute.max(axis=0))
    assert np.all(best >= au_f1_at(probs, target, 0.5))
    assert set(chosen) <= set(AU_THRESHOLDS)
    assert chosen[AU_NAMES.index("AU15")] == 0.5  # F1 = 0 at every threshold: 0.5 kept


def test_ties_go_to_the_threshold_nearest_one_half_then_the_lower() -> None:
    shape = (len(AU_THRESHOLDS), 12)
    tp, fp, fn = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    i = {t: int(k) for k, t in enumerate(AU_THRESHOLDS)}
    tp[:, 0] = 1  # F1 = 2/3 everywhere but 2/3 = 4/6 at 0.25 and 0.75: equal floats, 0.5 wins
    fn[:, 0] = 1
    tp[[i[0.25], i[0.75]], 0], fn[[i[0.25], i[0.75]], 0] = 2, 2
    tp[[i[0.375], i[0.625], i[0.875]], 1] = 3  # the same best F1 at three: the nearest two tie
    chosen = choose_thresholds(AuCounts(tp, fp, fn))
    assert chosen[0] == 0.5 and chosen[1] == 0.375 and np.all(chosen[2:] == 0.5)


def test_threshold_comparison_is_greater_or_equal_and_exact_after_csv(tmp_path) -> None:
    grid32 = AU_THRESHOLDS.astype(np.float32)
    below, above = np.nextafter(grid32, np.float32(0)), np.nextafter(grid32, np.float32(1))
    probs = np.concatenate([grid32, below, above]).repeat(12).reshape(-1, 12)
    target = np.ones_like(probs, dtype=np.int64)
    counts = au_counts(torch.from_numpy(probs), torch.from_numpy(target))
    # at threshold t, positive: the values >= t of the grid and its float32 neighbours
    for k, t in enumerate(AU_THRESHOLDS):
        assert counts.tp[k, 0].item() == int(np.sum(probs[:, 0] >= t))
        assert counts.tp[k, 0].item() == 3 * (len(AU_THRESHOLDS) - k) - 1
    # predictions.csv with 9 significant digits, read back as float64: the same F1 to the digit
    rng = np.random.default_rng(3)
    probs, target = au_data(5)
    probs[:93] = np.concatenate([grid32, below, above])[:, None]
    csv = tmp_path / "predictions.csv"
    np.savetxt(csv, np.concatenate([probs, target], axis=1), fmt=["%.9g"] * 12 + ["%d"] * 12,
               delimiter=",")  # fmt: skip
    table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
    read_probs, read_target = table[:, :12], table[:, 12:].astype(np.int64)
    assert np.array_equal(read_probs.astype(np.float32), probs)
    metric = filled_metric(probs, target, batches=3)
    thresholds = rng.choice(AU_THRESHOLDS, size=12)
    got = metric.compute(thresholds)["f1_per_au"].numpy()
    assert np.array_equal(got, au_f1_at(read_probs, read_target, thresholds))


def test_counts_in_batches_equal_one_batch_exactly_and_add_up() -> None:
    probs, target = au_data(7)
    whole = filled_metric(probs, target).compute()["counts"]
    parts = [filled_metric(probs[s], target[s], 4).compute()["counts"] for s in
             (slice(0, 111), slice(111, None))]  # fmt: skip
    summed = parts[0] + parts[1]
    for name in ("tp", "fp", "fn"):
        assert torch.equal(getattr(whole, name), getattr(summed, name))
        assert getattr(whole, name).dtype == torch.long


def test_counts_leave_out_each_missing_entry_on_its_own() -> None:
    probs = torch.full((3, 12), 0.9)
    target = torch.ones(3, 12, dtype=torch.long)
    target[0, 0] = AU_MISSING  # only AU1 of frame 0
    target[1, 1] = 0
    counts = au_counts(probs, target)
    half = threshold_indices(0.5)[0]
    assert counts.tp[half, :3].tolist() == [2, 2, 3]
    assert counts.fp[half, :3].tolist() == [0, 1, 0]
    assert counts.fn[: half + 1].sum() == 0
    assert counts.fn[-1, :3].tolist() == [2, 2, 3]  # 0.9 < 31/32: every positive missed


def test_f1_from_counts_on_stacks_numpy_and_zero_division() -> None:
    rng = np.random.default_rng(0)
    tp, fp, fn = (rng.integers(0, 5, size=(6, len(AU_THRESHOLDS), 12)) for _ in range(3))
    tp[0, 0, 0] = fp[0, 0, 0] = fn[0, 0, 0] = 0
    f1 = au_f1_from_counts(tp, fp, fn)
    assert isinstance(f1, np.ndarray) and f1[0, 0, 0] == 0.0
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(f1, np.nan_to_num(2 * tp / (2 * tp + fp + fn)), atol=1e-15)
    stacked = au_metrics_from_counts(AuCounts(tp, fp, fn), 0.5)["au_score"]
    assert stacked.shape == (6,)
    single = au_metrics_from_counts(AuCounts(tp[2], fp[2], fn[2]), 0.5)["au_score"]
    assert stacked[2].item() == single.item()


def test_bad_thresholds_and_batches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"AU1: threshold 0.05 is not one of"):
        threshold_indices(0.05)
    with pytest.raises(ValueError, match=r"AU26: threshold 1.0"):
        threshold_indices([0.5] * 11 + [1.0])
    metric = ActionUnitScore()
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        metric.update(torch.full((2, 12), 1.5), torch.zeros(2, 12, dtype=torch.long))
    with pytest.raises(ValueError, match=r"other than 0, 1 or -1"):
        metric.update(torch.full((2, 12), 0.5), torch.full((2, 12), 2))
    with pytest.raises(ValueError, match=r"\(N, 12\)"):
        metric.update(torch.full((2, 11), 0.5), torch.zeros(2, 11, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        ConcordanceScore().update(torch.zeros(3, 2), torch.zeros(3, 3))


# --------------------------------------------------------------------------------------------
# multi-task


def test_mtl_score_is_mean_ccc_plus_expression_f1_plus_au_f1() -> None:
    assert mtl_score(0.5, 0.3, 0.4, 0.45) == pytest.approx(0.4 + 0.4 + 0.45)
    assert mtl_score(1.0, 1.0, 1.0, 1.0) == 3.0
    values = mtl_score(np.array([0.5, -1.0]), np.array([0.3, -1.0]), np.array([0.4, 0.0]),
                       np.array([0.45, 0.0]))  # fmt: skip
    np.testing.assert_allclose(values, [1.25, -1.0])
