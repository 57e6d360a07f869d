"""fer_multires/models/module.py: the task's heads and losses (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fer_multires.models.module import FERModule
from fer_multires.task_losses import au_bce_loss, ccc_loss, masked_cross_entropy
from fer_multires.tasks import AU_NAMES, EXPR_MISSING

CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]


def make(task: str, **kwargs) -> FERModule:
    num_classes = 0 if task in ("va", "au") else len(CLASSES)
    names = [] if num_classes == 0 else CLASSES
    torch.manual_seed(0)
    return FERModule("seresnet18", num_classes, names, task=task, **kwargs)


def batch_targets(n: int = 16) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    expr = torch.as_tensor(rng.integers(0, 7, n))
    expr[::4] = EXPR_MISSING
    va = torch.as_tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)
    va[1::5] = float("nan")
    au = torch.as_tensor(rng.integers(0, 2, (n, len(AU_NAMES))), dtype=torch.int8)
    au[2::3, :4] = -1
    return {"expr": expr, "va": va, "au": au, "index": torch.arange(n)}


@pytest.mark.parametrize(("task", "width"), [("expr", 7), ("va", 2), ("au", 12), ("mtl", 21)])
def test_one_output_layer_holds_every_head_of_the_task(task, width) -> None:
    model = make(task).eval()
    outputs = model(torch.randn(3, 3, 32, 32))
    assert outputs.shape == (3, width)
    heads = model.split_heads(outputs)
    assert list(heads) == {"expr": ["expr"], "va": ["va"], "au": ["au"],
                           "mtl": ["expr", "va", "au"]}[task]  # fmt: skip
    if "va" in heads:
        assert heads["va"].shape == (3, 2) and bool((heads["va"].abs() < 1).all())
    if task == "mtl":  # the layout is expr | va | au
        assert torch.equal(heads["expr"], outputs[:, :7])
        assert torch.equal(heads["au"], outputs[:, 9:])
        assert torch.equal(heads["va"], torch.tanh(outputs[:, 7:9]))


def test_the_expression_loss_is_the_class_weighted_cross_entropy() -> None:
    weights = [0.4, 0.9, 0.9, 0.9, 0.8, 0.8, 0.9]
    model = make("expr", class_weights=weights)
    logits = torch.randn(8, 7)
    target = torch.arange(8) % 7
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights))
    assert torch.equal(model.task_loss(logits, {"expr": target}), expected)


def test_the_multi_task_loss_is_the_sum_of_the_three_masked_losses() -> None:
    positives = [float(i + 1) for i in range(12)]
    model = make("mtl", au_pos_weights=positives)
    targets = batch_targets()
    outputs = torch.randn(16, 21, requires_grad=True)
    loss = model.task_loss(outputs, targets)
    heads = model.split_heads(outputs)
    expected = (
        masked_cross_entropy(heads["expr"], targets["expr"], torch.ones(7))
        + ccc_loss(heads["va"], targets["va"])
        + au_bce_loss(heads["au"], targets["au"], torch.tensor(positives))
    )
    assert torch.allclose(loss, expected)
    loss.backward()
    assert outputs.grad is not None and bool(outputs.grad.abs().sum() > 0)


def test_frames_without_a_label_do_not_move_that_head() -> None:
    """A multi-task frame annotated only for VA gives no gradient to the expression logits."""
    model = make("mtl")
    targets = batch_targets()
    outputs = torch.randn(16, 21, requires_grad=True)
    model.task_loss(outputs, targets).backward()
    missing_expr = targets["expr"] == EXPR_MISSING
    assert bool((outputs.grad[missing_expr, :7] == 0).all())
    missing_va = targets["va"].isnan().any(dim=1)
    assert bool((outputs.grad[missing_va, 7:9] == 0).all())
