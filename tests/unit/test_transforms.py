from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from fer_multires.data.transforms import (
    DeviceWorkerTransform,
    EvalTransform,
    MultiResolution,
    Normalize,
    TrainTransform,
    degrade,
    sample_rng,
    to_uint8_tensor,
)
from fer_multires.data.transforms_factory import create_transforms


def noise_image(size: int = 112, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def high_frequency_energy(img: Image.Image) -> float:
    x = np.asarray(img.convert("L"), dtype=np.float64)
    lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    return float(np.mean(lap**2))


def draws(multires: MultiResolution, n: int = 5000) -> list[int]:
    return multires.draw(sample_rng(0, 0, np.arange(n))).tolist()


def test_pow2_sampling_matches_the_authors_code() -> None:
    counts = Counter(draws(MultiResolution(p=1.0, min_res=8, max_res=128, sampling="pow2")))
    assert set(counts) == {8, 16, 32, 64, 128}
    for share in counts.values():
        assert abs(share / 5000 - 0.2) < 0.025


def test_uniform_sampling_covers_the_range_evenly() -> None:
    values = np.array(draws(MultiResolution(p=1.0, min_res=8, max_res=64, sampling="uniform")))
    assert values.min() == 8 and values.max() == 64
    hist = np.bincount(values - 8, minlength=57)
    assert hist.min() > 0.5 * 5000 / 57 and hist.max() < 1.5 * 5000 / 57


def test_probability_p_leaves_the_rest_unchanged() -> None:
    values = np.array(draws(MultiResolution(p=0.3, min_res=8, max_res=64, sampling="pow2")))
    assert abs(np.mean(values == 0) - 0.7) < 0.03


def test_degrade_keeps_size_and_removes_high_frequencies() -> None:
    img = noise_image()
    for resolution in (8, 16, 32, 64):
        out = degrade(img, resolution)
        assert out.size == img.size
    assert high_frequency_energy(degrade(img, 16)) < 0.05 * high_frequency_energy(img)
    assert high_frequency_energy(degrade(img, 16)) < high_frequency_energy(degrade(img, 64))


def test_resolution_not_below_the_shorter_side_is_a_no_op() -> None:
    img = noise_image()
    assert degrade(img, 112) is img
    assert degrade(img, 128) is img
    assert degrade(img, 111) is not img


def test_degrade_on_tensor_matches_pil() -> None:
    img = noise_image(seed=3)
    from_pil = to_uint8_tensor(degrade(img, 16)).float()
    from_tensor = degrade(to_uint8_tensor(img), 16).float()
    assert from_tensor.shape == (3, 112, 112)
    assert (from_pil - from_tensor).abs().mean() < 3.0


def test_multires_is_a_function_of_its_generator() -> None:
    img = noise_image()
    multires = MultiResolution(p=0.5, min_res=8, max_res=64, sampling="uniform")
    a = multires(img, sample_rng(1, 2, 3))
    b = multires(img, sample_rng(1, 2, 3))
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_res": 0}, "^min_res=0 must be >= 1$"),
        ({"min_res": 64, "max_res": 32}, "^min_res=64 must not exceed max_res=32$"),
        ({"p": 1.5}, r"^p=1.5 must be in \[0, 1\]$"),
        ({"p": -0.1}, "^p=-0.1 "),
        ({"sampling": "log"}, "^sampling 'log' is not one of uniform, pow2$"),
        ({"min_res": 9, "max_res": 15}, "^min_res=9..max_res=15 holds no power of two"),
    ],
)
def test_invalid_multires_names_the_parameter(kwargs: dict, message: str) -> None:
    # a plain message, parameter first: the config boundary adds the key (data.multires.)
    with pytest.raises(ValueError, match=message):
        MultiResolution(**kwargs)


def test_train_transform_draws_depend_on_seed_epoch_index_only() -> None:
    transform = TrainTransform(
        256, 224, 0.2, Normalize("imagenet"), MultiResolution(1.0, 8, 128, "pow2"), seed=7
    )
    first = [transform.draw(0, i, 112, 112) for i in range(50)]
    assert first == [transform.draw(0, i, 112, 112) for i in range(50)]
    assert first != [transform.draw(1, i, 112, 112) for i in range(50)]
    assert all(0 <= d.crop_top <= 32 and 0 <= d.crop_left <= 32 for d in first)
    out = transform(noise_image(), epoch=0, index=0)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32


def test_grayscale_share() -> None:
    transform = TrainTransform(256, 224, 0.2, Normalize("imagenet"), None, seed=0)
    gray = np.mean([transform.draw(0, i, 112, 112).grayscale for i in range(4000)])
    assert abs(gray - 0.2) < 0.03


def test_eval_transform_is_deterministic_center_crop() -> None:
    transform = EvalTransform(256, 224, Normalize("imagenet"))
    img = noise_image()
    assert torch.equal(transform(img), transform(img))
    low = EvalTransform(256, 224, Normalize("imagenet"), resolution=8)(img)
    assert low.shape == (3, 224, 224)
    assert not torch.allclose(low, transform(img))


def test_vggface2_normalisation_is_bgr_mean_subtracted() -> None:
    img = torch.zeros(3, 2, 2, dtype=torch.uint8)
    img[0] = 200  # R
    img[2] = 10  # B
    out = Normalize("vggface2")(img)
    assert out[0, 0, 0].item() == pytest.approx(10 - 91.4953, abs=1e-4)  # B first
    assert out[2, 0, 0].item() == pytest.approx(200 - 131.0912, abs=1e-4)  # R last
    with pytest.raises(ValueError, match="^normalization 'caffe' is not one of imagenet, vggface2"):
        Normalize("caffe")


def test_crop_larger_than_resize_is_an_error() -> None:
    with pytest.raises(ValueError, match="^crop_size=300 must not exceed resize_size=256$"):
        EvalTransform(256, 300, Normalize())


def test_factory_wires_the_transforms_of_one_config() -> None:
    multires = MultiResolution(0.5, 8, 64, "uniform")
    made = create_transforms(256, 224, 0.3, "vggface2", multires, seed=5)
    by_hand = TrainTransform(256, 224, 0.3, Normalize("vggface2"), multires, seed=5)
    # the same draws as the pipeline wired by hand, and one normalisation and multires for all
    assert [made.train.draw(2, i, 112, 120) for i in range(200)] == [
        by_hand.draw(2, i, 112, 120) for i in range(200)
    ]
    assert made.multires is multires and made.normalize.preset == "vggface2"
    assert made.eval.normalize is made.batch.normalize is made.normalize
    assert made.batch.resolutions == [0, *range(8, 65)]
    img = noise_image()
    assert torch.equal(made.eval(img), EvalTransform(256, 224, Normalize("vggface2"))(img))
    # what the workers apply: the PIL pipelines on the cpu, uint8 (+ draws) on the device path
    assert made.worker(train=True, on_device=False) is made.train
    assert made.worker(train=False, on_device=False) is made.eval
    decoded = made.worker(train=True, on_device=True)
    assert isinstance(decoded, DeviceWorkerTransform) and decoded.train_transform is made.train
    assert made.worker(train=False, on_device=True).train_transform is None


def test_factory_without_multires_never_degrades() -> None:
    made = create_transforms(multires=None)
    assert made.multires is None and made.batch.resolutions == [0]
    assert {made.train.draw(0, i, 112, 112).resolution for i in range(500)} == {0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 300}, "^crop_size=300 must not exceed resize_size=256$"),
        ({"normalization": "x"}, "^normalization 'x' is not one of imagenet, vggface2$"),
        ({"grayscale_p": 1.5}, r"^grayscale_p=1.5 must be in \[0, 1\]$"),
    ],
)
def test_factory_errors_name_the_parameter(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_transforms(**kwargs)


def test_sample_draws_are_pinned() -> None:
    # a changed generator would silently change every run's augmentation (and a resumed run
    # of an older version): the numbers are splitmix64's, keyed by (seed, epoch, index)
    rng = sample_rng(0, 0, 0)
    assert [int(rng.next64()[0]) for _ in range(3)] == [
        0x2130748AAAC80268,
        0x0CC78FB979CE5090,
        0xAB9AA3DAFBA6B4AC,
    ]
    transform = TrainTransform(
        256, 224, 0.2, Normalize("imagenet"), MultiResolution(1.0, 8, 128, "pow2"), seed=7
    )
    assert [(d.resolution, d.crop_top, d.crop_left, d.grayscale) for d in (
        transform.draw(2, 0, 112, 112), transform.draw(2, 1000, 112, 112)
    )] == [(16, 4, 29, False), (32, 4, 27, True)]  # fmt: skip


def test_sample_random_is_uniform_and_keyed_by_every_part() -> None:
    keys = [(s, e, i) for s in range(3) for e in range(3) for i in range(3)]
    firsts = {int(sample_rng(*key).next64()[0]) for key in keys}
    assert len(firsts) == len(keys)  # seed, epoch and index each change the numbers
    values = sample_rng(1, 2, np.arange(7000)).integers(7)
    assert values.min() == 0 and values.max() == 6
    assert np.abs(np.bincount(values, minlength=7) - 1000).max() < 120  # about 4 sigma
    floats = sample_rng(1, 2, np.arange(4000)).random()
    assert floats.min() >= 0.0 and floats.max() < 1.0 and abs(floats.mean() - 0.5) < 0.02
    for high in (0, 2**32):
        with pytest.raises(ValueError, match=f"^high={high} must be >= 1 and below 2\\*\\*32$"):
            sample_rng(0, 0, 0).integers(high)


def splitmix64_reference(seed: int, epoch: int, index: int, count: int) -> int:
    """The ``count``-th number of a sample, in plain Python integers (no numpy)."""
    mask, golden = (1 << 64) - 1, 0x9E3779B97F4A7C15

    def mix(value: int) -> int:
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & mask
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & mask
        return value ^ (value >> 31)

    key = 0
    for part in (seed, epoch, index):
        key = mix((key + golden + part) & mask)
    return mix((key + count * golden) & mask)


def test_batched_numbers_are_each_samples_own_exactly() -> None:
    # one generator draws for a whole batch; every sample must get what it alone would get,
    # and integers(high) must be floor(x * high / 2**64) exactly, also for high near 2**32
    indices = np.arange(0, 60_000, 97)
    epochs = indices % 5
    batch = sample_rng(3, epochs, indices)
    highs = (7, 33, 2**31 + 11, 2**32 - 1)
    drawn = [batch.integers(high) for high in highs]
    for k, (index, epoch) in enumerate(zip(indices.tolist(), epochs.tolist(), strict=True)):
        expected = [
            splitmix64_reference(3, epoch, index, count) * high >> 64
            for count, high in enumerate(highs, start=1)
        ]
        assert [int(values[k]) for values in drawn] == expected
    alone = sample_rng(3, int(epochs[5]), int(indices[5]))
    assert [int(alone.integers(high)[0]) for high in highs] == [int(v[5]) for v in drawn]


def test_multires_still_draws_from_a_numpy_generator() -> None:
    multires = MultiResolution(p=1.0, min_res=8, max_res=64, sampling="pow2")
    assert multires.draw(np.random.default_rng(0)) in (8, 16, 32, 64)
