"""Tests for fer_multires.models.backbone (CPU, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch import nn
from unit.test_backbone import (  # noqa: F401 (fixtures)
    _write_pkl,
    no_network,
    vggface2_ref,
)

from fer_multires.models.backbone import (
    apply_caffe_patches,
    create_backbone,
    load_vggface2_state_dict,
)


def _assert_features_close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = b.abs().max().item()
    assert scale > 1e-3 and b.std().item() > 1e-4 * scale, "degenerate reference features"
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * scale)


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.mark.parametrize("size", [112, 100])
def test_vggface2_conversion_matches_caffe_reference(vggface2_ref, no_network, size) -> None:
    ref, _, path = vggface2_ref
    model = create_backbone("seresnet50", 7, pretrained=path).eval()
    assert model.fc.out_features == 7
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        expected = ref.features(x)
    got = _features(model, x)
    assert got.shape == expected.shape == (1, 2048)
    _assert_features_close(got, expected)


def test_vggface2_without_patches_differs(vggface2_ref) -> None:
    ref, _, path = vggface2_ref
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref.features(x)
    scale = expected.abs().max().item()

    unpatched = timm.create_model("seresnet50", pretrained=False, num_classes=7)
    unpatched.load_state_dict(load_vggface2_state_dict(path), strict=False)
    unpatched.eval()
    assert (_features(unpatched, x) - expected).abs().max().item() > 1e-2 * scale

    # Each patch alone is not enough: both differences matter.
    only_pool = timm.create_model("seresnet50", pretrained=False, num_classes=7).eval()
    only_pool.load_state_dict(unpatched.state_dict())
    only_pool.maxpool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)
    assert (_features(only_pool, x) - expected).abs().max().item() > 1e-2 * scale

    only_stride = timm.create_model("seresnet50", pretrained=False, num_classes=7).eval()
    only_stride.load_state_dict(unpatched.state_dict())
    apply_caffe_patches(only_stride)
    only_stride.maxpool = nn.MaxPool2d(3, 2, 1)
    assert (_features(only_stride, x) - expected).abs().max().item() > 1e-2 * scale


def test_vggface2_unexpected_and_missing_keys(vggface2_ref, tmp_path) -> None:
    _, arrays, _ = vggface2_ref
    # The 8631-way head may be absent (it is dropped anyway); leaving it out keeps the files small.
    arrays = {k: v for k, v in arrays.items() if not k.startswith("fc.")}
    extra = dict(arrays)
    extra["layer1.0.bogus.weight"] = np.zeros(3, np.float32)
    bad = _write_pkl(tmp_path / "extra.pkl", extra)
    with pytest.raises(ValueError, match=r"layer1\.0\.bogus\.weight") as err:
        create_backbone("seresnet50", 7, pretrained=bad)
    assert str(bad) in str(err.value) and "unexpected" in str(err.value)

    fewer = {k: v for k, v in arrays.items() if k != "layer3.1.conv5.bias"}
    bad = _write_pkl(tmp_path / "fewer.pkl", fewer)
    with pytest.raises(ValueError, match=r"layer3\.1\.se\.fc2\.bias") as err:
        create_backbone("seresnet50", 7, pretrained=bad)
    assert str(bad) in str(err.value) and "missing" in str(err.value)
