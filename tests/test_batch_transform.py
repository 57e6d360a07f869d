"""The device-side batch pipeline against the per-image PIL reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fer_multires.data.transforms import (
    AugmentDraws,
    BatchTransform,
    DecodedSample,
    EvalTransform,
    MultiResolution,
    Normalize,
    TrainTransform,
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
    train = TrainTransform(256, 224, 0.2, normalize, MultiResolution(1.0, 8, 128, "pow2"), seed=1)
    return train, BatchTransform(256, 224, normalize)


def as_batch(draws: list[AugmentDraws]) -> dict[str, torch.Tensor]:
    return {
        "resolution": torch.tensor([d.resolution for d in draws]),
        "crop_top": torch.tensor([d.crop_top for d in draws]),
        "crop_left": torch.tensor([d.crop_left for d in draws]),
        "grayscale": torch.tensor([d.grayscale for d in draws]),
    }


@pytest.mark.parametrize("resolution", [0, 8, 16, 32, 64, 128])
@pytest.mark.parametrize("grayscale", [False, True])
def test_fixed_draws_agree_with_the_pil_reference(transforms, resolution, grayscale) -> None:
    train, batch = transforms
    images = [face_like(s) for s in range(4)]
    draws = [AugmentDraws(resolution, 3 + 7 * s, 29 - 5 * s, grayscale) for s in range(4)]
    reference = torch.stack([train.apply(img, d) for img, d in zip(images, draws, strict=True)])
    uint8 = torch.stack([to_uint8_tensor(img) for img in images])
    fast = batch.train(uint8, as_batch(draws))
    assert fast.shape == reference.shape == (4, 3, 224, 224)
    # normalised units: 1/0.225 per grey level; a mean error below ~1 grey level
    error = (fast - reference).abs() * 0.225 * 255
    assert error.mean() < 1.0
    assert error.max() < 30


def test_eval_at_fixed_resolution_agrees_with_the_pil_reference(transforms) -> None:
    _, batch = transforms
    images = [face_like(s) for s in range(3)]
    uint8 = torch.stack([to_uint8_tensor(img) for img in images])
    for resolution in (None, 12, 48):
        reference = torch.stack(
            [EvalTransform(256, 224, Normalize(), resolution)(img) for img in images]
        )
        error = (batch.eval(uint8, resolution) - reference).abs() * 0.225 * 255
        assert error.mean() < 1.0


def test_mixed_batch_equals_per_sample_batches(transforms) -> None:
    train, batch = transforms
    uint8 = torch.stack([to_uint8_tensor(face_like(s)) for s in range(8)])
    draws = [train.draw(0, i, 112, 112) for i in range(8)]
    together = batch.train(uint8, as_batch(draws))
    alone = torch.cat([batch.train(uint8[i : i + 1], as_batch(draws[i : i + 1])) for i in range(8)])
    torch.testing.assert_close(together, alone)


def test_output_statistics_match_over_many_samples(transforms) -> None:
    train, batch = transforms
    images = [face_like(s) for s in range(6)]
    uint8 = torch.stack([to_uint8_tensor(img) for img in images])
    ref_means, fast_means = [], []
    for index in range(20):
        draws = [train.draw(0, index * 6 + k, 112, 112) for k in range(6)]
        ref = torch.stack([train.apply(img, d) for img, d in zip(images, draws, strict=True)])
        fast = batch.train(uint8, as_batch(draws))
        ref_means.append(ref.mean((1, 2, 3)))
        fast_means.append(fast.mean((1, 2, 3)))
        # high-frequency content: mean absolute horizontal gradient
        ref_grad = (ref[..., 1:] - ref[..., :-1]).abs().mean()
        fast_grad = (fast[..., 1:] - fast[..., :-1]).abs().mean()
        assert float(fast_grad) == pytest.approx(float(ref_grad), rel=0.1)
    torch.testing.assert_close(torch.cat(fast_means), torch.cat(ref_means), atol=0.02, rtol=0)


def test_decoded_sample_carries_the_reference_draws(transforms) -> None:
    train, _ = transforms
    sample = DecodedSample(train)(torch.zeros(3, 112, 112, dtype=torch.uint8), 3, 17)
    draws = train.draw(3, 17, 112, 112)
    assert sample["resolution"].item() == draws.resolution
    assert sample["crop_top"].item() == draws.crop_top
    assert bool(sample["grayscale"]) == draws.grayscale
    assert set(DecodedSample(None)(sample["image"], 0, 0)) == {"image"}
