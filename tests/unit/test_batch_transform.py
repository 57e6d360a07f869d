"""The device-side batch pipeline against the per-image PIL reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from fer_multires.data.batch_transforms import (
    DEGRADATIONS,
    BatchTransform,
    axis_operators,
    blur_sigma,
    degradation_matrix,
    gaussian_matrix,
    interpolation_matrix,
)
from fer_multires.data.transforms import (
    EvalTransform,
    MultiResolution,
    Normalize,
    TrainTransform,
    degrade,
    resize,
    shorter_side_size,
    to_uint8_tensor,
)


def face_like(seed: int) -> Image.Image:
    """A smooth image with edges (closer to a face crop than white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:112, 0:112] / 112.0
    img = np.zeros((112, 112, 3))
    for c in range(3):
        a, b, f = rng.uniform(0.2, 1.0, 3)
        img[..., c] = 128 + 60 * np.sin(2 * np.pi * (a * xx * 3 + b * yy * 2) + f)
    img[30:50, 20:90] += rng.uniform(-80, 80)  # an edge-rich band
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture
def transforms() -> tuple[TrainTransform, BatchTransform]:
    normalize = Normalize("imagenet")
    multires = MultiResolution(1.0, 8, 128, "pow2")
    train = TrainTransform(256, 224, 0.2, normalize, multires, seed=1)
    return train, BatchTransform(256, 224, normalize, multires.choices)


def test_eval_at_fixed_resolution_agrees_with_the_pil_reference(transforms) -> None:
    _, batch = transforms
    images = [face_like(s) for s in range(3)]
    uint8 = torch.stack([to_uint8_tensor(img) for img in images])
    for resolution in (None, 12, 48):
        reference = torch.stack(
            [EvalTransform(256, 224, Normalize(), resolution)(img) for img in images]
        )
        error = (batch.eval(uint8, resolution) - reference).abs() * 0.225 * 255
        assert error.mean() < 0.6
        assert error.max() < 3.0


def test_device_worker_sample_carries_the_reference_draws(transforms) -> None:
    from fer_multires.data.transforms import DeviceWorkerTransform

    train, _ = transforms
    sample = DeviceWorkerTransform(train)(torch.zeros(3, 112, 112, dtype=torch.uint8), 3, 17)
    draws = train.draw(3, 17, 112, 112)
    assert sample["resolution"] == draws.resolution and sample["crop_top"] == draws.crop_top
    assert sample["crop_left"] == draws.crop_left and sample["grayscale"] == draws.grayscale
    assert set(DeviceWorkerTransform(None)(sample["image"], 0, 0)) == {"image"}


@pytest.mark.parametrize(("height", "width"), [(112, 112), (96, 130)])
@pytest.mark.parametrize("resolution", [0, 8, 24, 200])
def test_axis_operators_are_degrade_then_resize(height, width, resolution) -> None:
    """rows @ image @ cols.T is torch's own degrade and resize (unrounded), also non-square."""
    image = torch.rand(1, 3, height, width, dtype=torch.float64) * 255
    expected = image if resolution == 0 else degrade(image, resolution)
    expected = resize(expected, *shorter_side_size(height, width, 64))
    rows, cols = axis_operators(height, width, 64, resolution)
    torch.testing.assert_close(rows @ image @ cols.T, expected)


@pytest.mark.parametrize("preset", ["imagenet", "vggface2"])
def test_normalize_affine_is_the_normalisation(preset) -> None:
    normalize = Normalize(preset)
    pixels = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    matrix, bias = normalize.affine()
    affine = torch.einsum("ij,jhw->ihw", matrix, pixels.double()) + bias.view(3, 1, 1)
    torch.testing.assert_close(affine.float(), normalize(pixels))


def face_batch(n: int = 3) -> torch.Tensor:
    return torch.stack([to_uint8_tensor(face_like(seed)) for seed in range(n)])


@pytest.mark.parametrize("kernel", DEGRADATIONS)
def test_each_degradation_removes_detail_at_the_native_size(kernel) -> None:
    batch = BatchTransform(128, 112, Normalize("imagenet"))
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 112, 112), dtype=torch.uint8, generator=generator)
    degraded = batch.degrade(images, 12, kernel)
    assert degraded.dtype == torch.uint8 and degraded.shape == images.shape

    # high frequencies go: the mean absolute difference of neighbouring pixels drops
    def detail(x: torch.Tensor) -> float:
        return float((x[..., 1:].float() - x[..., :-1].float()).abs().mean())

    assert detail(degraded) < 0.3 * detail(images)
    assert batch.degrade(images, 112, kernel) is images  # not below native: unchanged
    # eval with a kernel = the usual native pipeline on the degraded images
    if kernel != "bilinear":
        assert torch.equal(batch.eval(images, 12, kernel), batch.eval(degraded))


def test_area_averages_whole_blocks() -> None:
    matrix = interpolation_matrix(48, 12, "area")
    expected = torch.kron(torch.eye(12, dtype=torch.float64), torch.full((1, 4), 0.25))
    assert torch.allclose(matrix, expected)


def test_bicubic_and_bilinear_are_torchvisions_resize() -> None:
    image = torch.rand(1, 3, 48, 36, dtype=torch.float64) * 255
    for mode, interpolation in (("bicubic", TF.InterpolationMode.BICUBIC),
                                ("bilinear", TF.InterpolationMode.BILINEAR)):  # fmt: skip
        rows, cols = interpolation_matrix(48, 16, mode), interpolation_matrix(36, 12, mode)
        ours = rows @ image @ cols.T
        theirs = TF.resize(image, [16, 12], interpolation=interpolation, antialias=True)
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_blur_sigma_is_matched_to_the_resolution() -> None:
    assert blur_sigma(48, 8) == pytest.approx(2.5) and blur_sigma(48, 48) == 0.0
    matrix = gaussian_matrix(48, blur_sigma(48, 8))
    assert torch.allclose(matrix.sum(dim=1), torch.ones(48, dtype=torch.float64))
    impulse = matrix[:, 24]  # the spread of one pixel in the middle
    positions = torch.arange(48, dtype=torch.float64)
    mean = (impulse * positions).sum()
    assert float(((impulse * (positions - mean) ** 2).sum()).sqrt()) == pytest.approx(2.5, rel=0.02)


def test_jpeg_degradation_is_a_real_jpeg_round_trip() -> None:
    batch = BatchTransform(128, 112, Normalize("imagenet"))
    images = face_batch(2)
    down_up = batch.degrade(images, 24, "bilinear")  # uint8, like the jpeg kernel's first step
    jpeg = batch.degrade(images, 24, "jpeg", jpeg_quality=30)
    assert not torch.equal(jpeg, down_up)
    for i in range(2):  # the same as PIL's JPEG at quality 30 of the same image, within a level
        buffer = io.BytesIO()
        Image.fromarray(down_up[i].permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=30)
        reference = torch.from_numpy(np.asarray(Image.open(buffer))).permute(2, 0, 1)
        assert (jpeg[i].float() - reference.float()).abs().mean() < 1.5
    assert (batch.degrade(images, 24, "jpeg", jpeg_quality=95).float() - down_up.float()).abs(
    ).mean() < (jpeg.float() - down_up.float()).abs().mean()  # fmt: skip


def test_unknown_degradation_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown degradation 'nearest'"):
        degradation_matrix(48, 12, "nearest")
