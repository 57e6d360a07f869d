"""Tests for fer_multires.models.backbone (CPU, no network)."""

from __future__ import annotations

import logging
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn
from torch.nn import functional as F

from fer_multires.models.backbone import (
    apply_caffe_patches,
    create_backbone,
    detect_weights_format,
    load_vggface2_state_dict,
)


class RefSEBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * self.expansion
        # Caffe style: the stride is on the first 1x1 convolution.
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        # Squeeze-excite as two 1x1 convolutions with bias (reduction 16).
        self.conv4 = nn.Conv2d(out, out // 16, 1, bias=True)
        self.conv5 = nn.Conv2d(out // 16, out, 1, bias=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        s = F.adaptive_avg_pool2d(y, 1)
        s = torch.sigmoid(self.conv5(F.relu(self.conv4(s))))
        return F.relu(y * s + identity)


class RefCaffeSENet50(nn.Module):
    def __init__(self, num_classes: int = 8631) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
        ):
            layers = []
            for b in range(blocks):
                layers.append(RefSEBottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * 4
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))


def _randomise(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def _to_pickle_dict(model: nn.Module) -> dict[str, np.ndarray]:
    return {
        k: v.detach().numpy().astype(np.float32)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def _write_pkl(path: Path, arrays: dict) -> Path:
    with path.open("wb") as f:
        pickle.dump(arrays, f, protocol=2)  # like the Python 2 original
    return path


@pytest.fixture(scope="module")
def vggface2_ref(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    ref = RefCaffeSENet50()
    _randomise(ref, seed=1)
    ref.eval()
    arrays = _to_pickle_dict(ref)
    assert len(arrays) == 331  # as in senet50_ft_weight.pkl
    path = _write_pkl(tmp_path_factory.mktemp("vgg") / "senet50_ft_weight.pkl", arrays)
    return ref, arrays, path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_load_vggface2_state_dict_renames(vggface2_ref) -> None:
    _, arrays, path = vggface2_ref
    sd = load_vggface2_state_dict(path)
    assert "layer1.0.se.fc1.weight" in sd and "layer4.2.se.fc2.bias" in sd
    assert not any(".conv4." in k or ".conv5." in k for k in sd)
    assert "fc.weight" not in sd and "fc.bias" not in sd
    assert len(sd) == len(arrays) - 2
    assert all(v.dtype == torch.float32 for v in sd.values())
    np.testing.assert_array_equal(
        sd["layer2.0.se.fc1.weight"].numpy(), arrays["layer2.0.conv4.weight"]
    )


def test_vggface2_logs_one_info_line(vggface2_ref, caplog) -> None:
    _, _, path = vggface2_ref
    with caplog.at_level(logging.INFO, logger="fer_multires.models.backbone"):
        create_backbone("seresnet50", 8, pretrained=str(path))
    lines = [r.getMessage() for r in caplog.records if r.name == "fer_multires.models.backbone"]
    assert len(lines) == 1 and str(path) in lines[0] and "VGGFace2" in lines[0]


def test_vggface2_needs_seresnet50(vggface2_ref) -> None:
    _, _, path = vggface2_ref
    with pytest.raises(ValueError, match="seresnet50"):
        create_backbone("seresnet18", 7, pretrained=path)


def test_detect_weights_format(vggface2_ref, tmp_path) -> None:
    _, arrays, path = vggface2_ref
    assert detect_weights_format(path) == "vggface2"
    small = {k: v for k, v in arrays.items() if k.startswith("layer1.0.")}
    assert detect_weights_format(_write_pkl(tmp_path / "weights.bin", small)) == "vggface2"
    pth = tmp_path / "m.pth"
    torch.save(timm.create_model("seresnet18", pretrained=False).state_dict(), pth)
    assert detect_weights_format(pth) == "timm"
    junk = tmp_path / "junk.dat"
    junk.write_bytes(os.urandom(64))
    assert detect_weights_format(junk) == "timm"
    with pytest.raises(FileNotFoundError):
        detect_weights_format(tmp_path / "absent.pkl")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_file_new_head_and_no_network(no_network, tmp_path, suffix) -> None:
    src = timm.create_model("seresnet18", pretrained=False, num_classes=1000)
    path = tmp_path / f"seresnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(path))
    else:
        torch.save(src.state_dict(), path)
    assert detect_weights_format(path) == "timm"

    model = create_backbone("seresnet18", 7, pretrained=path)
    assert model.fc.out_features == 7
    got, want = model.state_dict(), src.state_dict()
    assert got.keys() == want.keys()
    for k, v in want.items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k
    # Caffe patches are for the VGGFace2 weights only.
    assert model.maxpool.padding == 1 and not model.maxpool.ceil_mode


def test_timm_file_head_of_same_size_is_kept(tmp_path) -> None:
    src = timm.create_model("seresnet18", pretrained=False, num_classes=7)
    path = tmp_path / "ft.pth"
    torch.save({"state_dict": src.state_dict()}, path)  # a checkpoint dict also works
    model = create_backbone("seresnet18", 7, pretrained=path)
    assert torch.equal(model.fc.weight, src.fc.weight)
    # timm alone would hit a size mismatch here; we replace the 7-way head instead.
    model = create_backbone("seresnet18", 1000, pretrained=path)
    assert model.fc.out_features == 1000
    assert torch.equal(model.conv1.weight, src.conv1.weight)


def test_timm_file_of_another_architecture_is_an_error(tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("seresnet18", pretrained=False).state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys: .*layer1\.2\.") as err:
        create_backbone("seresnet34", 7, pretrained=path)
    assert str(path) in str(err.value)


def test_random_init_and_unknown_name() -> None:
    model = create_backbone("seresnet18", 5)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    with pytest.raises(ValueError, match="no_such_model"):
        create_backbone("no_such_model", 5)


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nowhere" / "senet50_ft_weight.pkl"
    with pytest.raises(FileNotFoundError, match=r"senet50_ft_weight\.pkl") as err:
        create_backbone("seresnet50", 7, pretrained=path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["corrupt.pth", "corrupt.pkl", "corrupt.safetensors"])
def test_corrupt_file(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x02" + os.urandom(1000))
    with pytest.raises(ValueError, match="expected") as err:
        create_backbone("seresnet50", 7, pretrained=path)
    assert str(path) in str(err.value)


def test_pickle_with_foreign_globals_is_refused(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    path = _write_pkl(tmp_path / "evil.pkl", {"conv1.weight": Evil()})
    with pytest.raises(ValueError, match="not allowed"):
        load_vggface2_state_dict(path)
    path = _write_pkl(tmp_path / "strings.pkl", {"conv1.weight": "text"})
    with pytest.raises(ValueError, match=r"conv1\.weight"):
        load_vggface2_state_dict(path)


def test_apply_caffe_patches_structure() -> None:
    model = timm.create_model("seresnet50", pretrained=False, num_classes=0)
    apply_caffe_patches(model)
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].conv1.stride == (2, 2) and stage[0].conv2.stride == (1, 1)
        assert stage[0].downsample[0].stride == (2, 2)
    assert model.layer1[0].conv1.stride == (1, 1) and model.layer1[0].conv2.stride == (1, 1)
    assert model.maxpool.padding == 0 and model.maxpool.ceil_mode
    apply_caffe_patches(model)  # idempotent
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2048)

    basic = timm.create_model("seresnet18", pretrained=False)
    before = {n: m.stride for n, m in basic.named_modules() if isinstance(m, nn.Conv2d)}
    with pytest.raises(ValueError, match="Bottleneck"):
        apply_caffe_patches(basic)
    after = {n: m.stride for n, m in basic.named_modules() if isinstance(m, nn.Conv2d)}
    assert before == after and basic.maxpool.padding == 1  # untouched on failure
