from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_multires.task_losses import (
    MAX_AU_POS_WEIGHT,
    au_bce_loss,
    au_pos_weights,
    au_positive_rates,
    ccc_loss,
    masked_cross_entropy,
)
from fer_multires.tasks import AU_MISSING, VA_MISSING


def ccc_numpy(x: np.ndarray, y: np.ndarray) -> float:
    cov = np.cov(x, y, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))


def va_batch(seed: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, size=(n, 2))
    preds = 0.5 * target + rng.normal(0.1, 0.3, size=(n, 2))
    missing = rng.random(n) < 0.25
    target[missing & (rng.random(n) < 0.5)] = VA_MISSING
    target[missing, 1] = np.where(target[missing, 1] == VA_MISSING, VA_MISSING, np.nan)
    preds_t = torch.tensor(preds, dtype=torch.float32, requires_grad=True)
    return preds_t, torch.tensor(target, dtype=torch.float32), ~missing


@pytest.mark.parametrize("seed", range(3))
def test_ccc_loss_is_one_minus_the_mean_ccc_of_the_annotated_rows(seed: int) -> None:
    preds, target, kept = va_batch(seed)
    x, y = preds.detach().double().numpy()[kept], target.double().numpy()[kept]
    want = 1 - np.mean([ccc_numpy(x[:, d], y[:, d]) for d in (0, 1)])
    loss = ccc_loss(preds, target)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    loss.backward()
    grad = preds.grad
    assert torch.isfinite(grad).all()
    assert (grad[torch.from_numpy(kept)] != 0).any(dim=1).all()
    assert (grad[torch.from_numpy(~kept)] == 0).all()


def test_ccc_loss_ignores_what_masked_rows_hold() -> None:
    preds, target, kept = va_batch(0)
    loss = ccc_loss(preds, target)
    other_preds = preds.detach().clone()
    other_preds[torch.from_numpy(~kept)] = 7.0
    other_target = target.clone()
    other_target[torch.from_numpy(~kept), 0] = VA_MISSING  # still missing, another way
    assert ccc_loss(other_preds, other_target).item() == loss.item()
    rows = torch.from_numpy(kept)
    assert ccc_loss(preds[rows], target[rows]).item() == pytest.approx(loss.item(), abs=1e-6)


def test_ccc_loss_adds_weighted_mse_of_the_annotated_rows() -> None:
    preds, target, kept = va_batch(1)
    x, y = preds.detach().double().numpy()[kept], target.double().numpy()[kept]
    mse = np.mean((x - y) ** 2)
    plain, with_mse = ccc_loss(preds, target), ccc_loss(preds, target, mse_weight=0.5)
    assert with_mse.item() - plain.item() == pytest.approx(0.5 * mse, abs=1e-6)


def test_ccc_loss_of_an_unannotated_batch_is_zero_with_a_gradient() -> None:
    preds = torch.randn(4, 2, requires_grad=True)
    target = torch.full((4, 2), VA_MISSING)
    target[1] = float("nan")
    loss = ccc_loss(preds, target, mse_weight=1.0)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(preds.grad, torch.zeros(4, 2))


def test_ccc_loss_is_one_with_finite_gradients_when_undefined() -> None:
    preds = torch.full((3, 2), 0.2, requires_grad=True)
    loss = ccc_loss(preds, torch.full((3, 2), 0.2))  # both constant and equal: CCC = 0
    assert loss.item() == 1.0
    loss.backward()
    assert torch.isfinite(preds.grad).all()


def bce_by_hand(logits: np.ndarray, target: np.ndarray, pos_weight: np.ndarray) -> float:
    """Mean over the labelled entries of -(w y log s + (1 - y) log(1 - s)), s = sigmoid(z)."""
    losses = []
    for i, a in zip(*np.nonzero(target != AU_MISSING), strict=True):
        z, y = logits[i, a], target[i, a]
        s = 1 / (1 + np.exp(-z))
        losses.append(-(pos_weight[a] * y * np.log(s) + (1 - y) * np.log(1 - s)))
    return float(np.mean(losses))


def test_au_bce_loss_matches_bce_of_the_labelled_entries() -> None:
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(0, 2, size=(32, 12)), dtype=torch.float32, requires_grad=True)
    target = torch.from_numpy(rng.integers(-1, 2, size=(32, 12)))
    pos_weight = au_pos_weights(rng.uniform(0.05, 0.6, size=12))
    loss = au_bce_loss(logits, target, pos_weight)
    kept = target != AU_MISSING
    columns = torch.arange(12).expand(32, 12)[kept]
    torch_pieces = torch.stack([
        F.binary_cross_entropy_with_logits(logits[i, a], target[i, a].float(),
                                           pos_weight=pos_weight[a])
        for i, a in zip(*torch.nonzero(kept, as_tuple=True), strict=True)
    ])  # fmt: skip
    assert len(columns) == len(torch_pieces)
    assert loss.item() == pytest.approx(torch_pieces.mean().item(), abs=1e-6)
    by_hand = bce_by_hand(logits.detach().double().numpy(), target.numpy(), pos_weight.numpy())
    assert loss.item() == pytest.approx(by_hand, abs=1e-5)
    loss.backward()
    assert (logits.grad[~kept] == 0).all() and (logits.grad[kept] != 0).all()
    unweighted = au_bce_loss(logits, target)
    assert unweighted.item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits[kept], target[kept].float()).item(), abs=1e-6
    )


def test_au_bce_loss_with_nothing_labelled_is_zero_with_a_gradient() -> None:
    logits = torch.randn(4, 12, requires_grad=True)
    loss = au_bce_loss(logits, torch.full((4, 12), AU_MISSING), torch.ones(12))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 12))


def test_pos_weights_are_negatives_per_positive_clipped() -> None:
    rates = np.array([0.5, 0.2, 0.1, 0.75, 0.01, 0.0, 1.0, 0.03, 0.3, 0.4, 0.6, 0.9])
    weights = au_pos_weights(rates)
    assert weights.dtype == torch.float32 and weights.shape == (12,)
    with np.errstate(divide="ignore"):  # p = 0: inf, clipped to the largest weight
        want = np.clip((1 - rates) / rates, 1 / MAX_AU_POS_WEIGHT, MAX_AU_POS_WEIGHT)
    np.testing.assert_allclose(weights.numpy(), want, rtol=1e-6)
    assert weights[0].item() == 1.0 and weights[6].item() == pytest.approx(0.02)
    assert au_pos_weights(rates, max_weight=5.0).max().item() == 5.0


def test_pos_weights_refuse_undefined_rates() -> None:
    rates = np.full(12, 0.2)
    rates[3] = np.nan
    with pytest.raises(ValueError, match=r"AU6: positive rate nan is not in \[0, 1\]"):
        au_pos_weights(rates)
    with pytest.raises(ValueError, match=r"11 AU positive rates for the 12 AUs"):
        au_pos_weights(np.full(11, 0.2))


def test_positive_rates_count_the_labelled_frames_of_each_au() -> None:
    labels = np.zeros((4, 12), np.int64)
    labels[:, 0] = [1, 1, 0, AU_MISSING]
    labels[:, 1] = AU_MISSING
    labels[:, 2] = [1, 1, 1, 1]
    rates = au_positive_rates(torch.from_numpy(labels))
    assert rates[0] == pytest.approx(2 / 3) and np.isnan(rates[1]) and rates[2] == 1.0
    assert np.all(rates[3:] == 0)


@pytest.mark.parametrize("weighted", [False, True])
def test_masked_cross_entropy_is_cross_entropy_of_the_labelled_frames(weighted: bool) -> None:
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(20, 8)), dtype=torch.float32, requires_grad=True)
    target = torch.from_numpy(rng.integers(-1, 8, size=20))
    weight = torch.tensor(rng.uniform(0.3, 1.0, size=8), dtype=torch.float32) if weighted else None
    kept = target != -1
    loss = masked_cross_entropy(logits, target, weight)
    want = F.cross_entropy(logits[kept], target[kept], weight=weight)
    assert loss.item() == pytest.approx(want.item(), abs=1e-6)
    loss.backward()
    assert (logits.grad[~kept] == 0).all()


def test_masked_cross_entropy_with_nothing_labelled_is_zero_with_a_gradient() -> None:
    logits = torch.randn(3, 8, requires_grad=True)
    target = torch.full((3,), -1)
    assert F.cross_entropy(logits, target, ignore_index=-1).isnan()  # what it replaces
    loss = masked_cross_entropy(logits, target, torch.ones(8))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 8))
