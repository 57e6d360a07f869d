"""ONNX export: one file, dynamic batch, metadata, parity with PyTorch, and predict running it."""

from __future__ import annotations

import numpy as np
import pytest

from fer_multires.inference.onnx_export import (
    ParityError,
    compare_heads,
    compare_logits,
    describe_parity,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_compare_logits_catches_an_argmax_change_within_the_tolerance() -> None:
    reference = np.array([[1.0, 1.0002, 0.0], [0.0, 2.0, 1.0]])
    exported = np.array([[1.0002, 1.0, 0.0], [0.0, 2.0, 1.0]])
    parity = compare_logits(reference, exported, atol=1e-3, rtol=1e-3)
    assert parity.within_tolerance and parity.argmax_mismatches == 1 and not parity.ok
    assert parity.max_abs == pytest.approx(2e-4)
    assert compare_logits(reference, reference, 1e-3, 1e-3).ok


def test_every_head_is_compared_and_only_the_classes_by_argmax() -> None:
    """mtl with 2 classes: expression 0-1, valence-arousal 2-3, AUs 4-15."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(3, 16))
    reference[0, 2:4] = [0.5, 0.5001]  # valence and arousal: an argmax within the tolerance
    exported = reference.copy()
    exported[0, 2:4] = [0.5001, 0.5]
    parities = compare_heads(reference, exported, "mtl", ["A", "B"], 1e-3, 1e-3)
    assert list(parities) == ["expr", "va", "au"] and all(p.ok for p in parities.values())
    assert not parities["va"].argmax_checked and parities["va"].max_abs == pytest.approx(1e-4)
    exported[1, 4 + 6] += 0.01  # AU12's logit
    exported[2, :2] = reference[2, 1::-1]  # the classes swapped
    parities = compare_heads(reference, exported, "mtl", ["A", "B"], 1e-3, 1e-3)
    assert not parities["au"].ok and "worst at row 1, AU12" in parities["au"].describe()
    assert parities["expr"].argmax_mismatches == 1 and "argmax differs on 1 of 3" in (
        parities["expr"].describe())  # fmt: skip
    assert describe_parity(parities).startswith("expr: largest absolute difference")
    assert "; au: largest" in describe_parity(parities)
    with pytest.raises(ParityError, match=r"shape \(3, 15\), PyTorch's \(3, 16\)"):
        compare_heads(reference, exported[:, :15], "mtl", ["A", "B"], 1e-3, 1e-3)
