"""ONNX export: one file, dynamic batch, metadata, parity with PyTorch, and predict running it."""

from __future__ import annotations

import numpy as np
import pytest

from fer_multires.inference.onnx_export import compare_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_compare_logits_catches_an_argmax_change_within_the_tolerance() -> None:
    reference = np.array([[1.0, 1.0002, 0.0], [0.0, 2.0, 1.0]])
    exported = np.array([[1.0002, 1.0, 0.0], [0.0, 2.0, 1.0]])
    parity = compare_logits(reference, exported, atol=1e-3, rtol=1e-3)
    assert parity.within_tolerance and parity.argmax_mismatches == 1 and not parity.ok
    assert parity.max_abs == pytest.approx(2e-4)
    assert compare_logits(reference, reference, 1e-3, 1e-3).ok
