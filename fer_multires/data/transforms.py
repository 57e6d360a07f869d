"""Image transforms: multi-resolution degradation, the paper's train/eval pipelines, normalisation.

All randomness derives from ``(seed, epoch, sample index)`` through :func:`sample_rng`, never
from global RNG state: the same seed gives the same augmented samples whatever the number of
DataLoader workers, and a resumed run draws what an uninterrupted one would have drawn. The
generator is counter-based (:class:`SampleRandom`): a sample's numbers are a hash of its key,
so no state is carried between samples, and a whole batch's numbers are drawn at once.

The train pipeline is the paper's: multi-resolution degrade -> resize the shorter side to 256 ->
random crop 224 -> random grayscale (p=0.2) -> tensor -> normalise. Grayscale is applied to RGB,
before any conversion to the BGR order of the VGGFace2 weights (the authors' code applied it to BGR
data, which weighs the channels wrongly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image
from torchvision.transforms.v2 import functional as TF

Sampling = Literal["uniform", "pow2"]
SAMPLINGS: tuple[str, ...] = ("uniform", "pow2")

#: Per-channel mean of the VGGFace2 weights, in their B, G, R order, on the 0-255 scale.
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
NORMALIZATIONS: tuple[str, ...] = ("imagenet", "vggface2")


_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's increment
_MIX_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_LOW32 = np.uint64(0xFFFFFFFF)


def mix64(value: np.ndarray) -> np.ndarray:
    """Return splitmix64's finaliser of each ``uint64`` in ``value`` (a bijection of 64-bit ints).

    Every output bit depends on every input bit (it passes BigCrush as a counter hash). Array
    arithmetic on ``uint64`` wraps modulo 2**64, as the finaliser needs.
    """
    first, second = _MIX_MULTIPLIERS
    value = (value ^ (value >> np.uint64(30))) * first
    value = (value ^ (value >> np.uint64(27))) * second
    return value ^ (value >> np.uint64(31))


class RandomSource(Protocol):
    """What the augmentations draw from: :class:`SampleRandom` or a ``numpy`` Generator.

    A :class:`SampleRandom` returns one number per sample (arrays); a Generator one number.
    """

    def random(self) -> float | np.ndarray:
        """Return floats uniform in [0, 1)."""
        ...

    def integers(self, high: int) -> int | np.ndarray:
        """Return integers uniform in [0, high)."""
        ...


class SampleRandom:
    """The random numbers of samples in one epoch: a counter-based generator, vectorised.

    Each sample's key is a hash of ``(seed, epoch, index)``; its k-th number is splitmix64's k-th
    output from that key. Nothing but the keys is stored, so a sample's numbers depend on its key
    alone (not on the worker, nor on the samples drawn with it or before it). One generator draws
    for a whole batch at once (numpy, about a microsecond per sample), or for a single sample
    (arrays of one).

    Args:
        seed: the run's augmentation seed (>= 0).
        epoch: the training epoch, or one per sample (>= 0).
        index: the sample's index in its split, or one per sample (>= 0).
    """

    __slots__ = ("count", "key")

    def __init__(self, seed: int, epoch: ArrayLike, index: ArrayLike) -> None:
        parts = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(part, np.uint64)) for part in (seed, epoch, index))
        )
        key = np.zeros(parts[0].shape, np.uint64)
        for part in parts:
            key = mix64(key + np.uint64(_GOLDEN64) + part)
        self.key = key
        self.count = 0

    def __len__(self) -> int:
        return len(self.key)

    def next64(self) -> np.ndarray:
        """Return the next 64-bit number of every sample (``uint64``)."""
        self.count += 1
        return mix64(self.key + np.uint64(self.count * _GOLDEN64 & _MASK64))

    def random(self) -> np.ndarray:
        """Return a float uniform in [0, 1) per sample (53 random bits)."""
        return (self.next64() >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def integers(self, high: int) -> np.ndarray:
        """Return an ``int64`` uniform in [0, high) per sample (bias below ``high / 2**64``).

        The number is ``floor(x * high / 2**64)`` for the next 64-bit ``x``, computed exactly in
        32-bit halves.

        Raises:
            ValueError: if ``high`` is outside 1..2**32-1.
        """
        if not 1 <= high < 2**32:
            raise ValueError(f"high={high} must be >= 1 and below 2**32")
        value, factor = self.next64(), np.uint64(high)
        upper, lower = value >> np.uint64(32), value & _LOW32
        product = upper * factor + ((lower * factor) >> np.uint64(32))
        return (product >> np.uint64(32)).astype(np.int64)


def sample_rng(seed: int, epoch: ArrayLike, index: ArrayLike) -> SampleRandom:
    """Return the random generator of samples in one epoch (one sample, or one per entry).

    Args:
        seed: the run's augmentation seed (>= 0).
        epoch: the training epoch (>= 0), or one per sample.
        index: the sample's index in its split (>= 0), or one per sample.
    """
    return SampleRandom(seed, epoch, index)


def image_size(img: Image.Image | torch.Tensor) -> tuple[int, int]:
    """Return ``(height, width)`` of a PIL image or a ``(..., C, H, W)`` tensor."""
    if isinstance(img, Image.Image):
        return img.height, img.width
    return int(img.shape[-2]), int(img.shape[-1])


def shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Return ``(height, width)`` after resizing the shorter side to ``size``, keeping the aspect.

    Uses the same rounding as torchvision's ``resize`` with an int size.
    """
    if height <= width:
        return size, max(1, int(size * width / height))
    return max(1, int(size * height / width)), size


def resize(img: Image.Image | torch.Tensor, height: int, width: int) -> Image.Image | torch.Tensor:
    """Resize to ``(height, width)`` with antialiased bilinear interpolation.

    Works on a PIL image and on a uint8 or float tensor of shape ``(..., C, H, W)``.
    """
    if isinstance(img, Image.Image):
        return img.resize((width, height), Image.Resampling.BILINEAR)
    return TF.resize(
        img, [height, width], interpolation=TF.InterpolationMode.BILINEAR, antialias=True
    )


def degrade(img: Image.Image | torch.Tensor, resolution: int) -> Image.Image | torch.Tensor:
    """Lower an image's resolution: shorter side down to ``resolution``, then back up.

    The output has the input's size; only information is removed. An image whose shorter side is
    not larger than ``resolution`` is returned unchanged.

    Args:
        img: a PIL image or a ``(..., C, H, W)`` tensor.
        resolution: the target length of the shorter side, in pixels (>= 1).
    """
    height, width = image_size(img)
    if resolution >= min(height, width):
        return img
    small = resize(img, *shorter_side_size(height, width, resolution))
    return resize(small, height, width)


def check_sizes(resize_size: int, crop_size: int) -> None:
    """Check that a crop fits in the resized image.

    Raises:
        ValueError: if a size is below 1 or the crop exceeds the resized image.
    """
    if crop_size < 1 or resize_size < 1:
        raise ValueError(f"crop_size={crop_size} and resize_size={resize_size} must be >= 1")
    if crop_size > resize_size:
        raise ValueError(f"crop_size={crop_size} must not exceed resize_size={resize_size}")


class MultiResolution:
    """The paper's multi-resolution augmentation ("double random extraction").

    With probability ``p`` a resolution ``r`` is drawn (``uniform``: an integer uniform in
    ``[min_res, max_res]``; ``pow2``: a power of two in that range, uniformly — with 8..128 this is
    the authors' released code) and the image is degraded to ``r`` (see :func:`degrade`).

    Args:
        p: probability of degrading an image.
        min_res: smallest resolution drawn (>= 1).
        max_res: largest resolution drawn (>= min_res).
        sampling: ``"uniform"`` or ``"pow2"``.

    Raises:
        ValueError: for an invalid parameter, its name first (``p=1.5 must be in [0, 1]``).
    """

    def __init__(
        self,
        p: float = 1.0,
        min_res: int = 8,
        max_res: int = 128,
        sampling: Sampling = "pow2",
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} must be in [0, 1]")
        if min_res < 1:
            raise ValueError(f"min_res={min_res} must be >= 1")
        if min_res > max_res:
            raise ValueError(f"min_res={min_res} must not exceed max_res={max_res}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")
        self.p = float(p)
        self.min_res = int(min_res)
        self.max_res = int(max_res)
        self.sampling = sampling
        self.choices = self._choices()
        if self.choices.size == 0:
            raise ValueError(
                f"min_res={min_res}..max_res={max_res} holds no power of two for sampling=pow2"
            )

    def _choices(self) -> np.ndarray:
        if self.sampling == "uniform":
            return np.arange(self.min_res, self.max_res + 1)
        powers = [2**k for k in range(self.max_res.bit_length() + 1)]
        return np.array([r for r in powers if self.min_res <= r <= self.max_res])

    def draw(self, rng: RandomSource) -> np.ndarray:
        """Draw a resolution per sample, or 0 for "leave the image as it is".

        Always consumes the same number of random values, so later draws of the same generator do
        not depend on whether the image was degraded.

        Returns:
            ``int64`` resolutions, one per sample of a :class:`SampleRandom` (a 0-d array for a
            ``numpy`` Generator).
        """
        apply = np.asarray(rng.random()) < self.p
        resolution = self.choices[np.asarray(rng.integers(len(self.choices)))]
        return np.where(apply, resolution, 0).astype(np.int64)

    def __call__(
        self, img: Image.Image | torch.Tensor, rng: RandomSource
    ) -> Image.Image | torch.Tensor:
        """Degrade ``img`` to a resolution drawn from ``rng`` (one sample's generator)."""
        resolution = int(self.draw(rng).item())
        return degrade(img, resolution) if resolution else img

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(p={self.p}, min_res={self.min_res}, max_res={self.max_res}, "
            f"sampling={self.sampling!r})"
        )


@dataclass(frozen=True)
class AugmentDraws:
    """Everything random about one training sample.

    Attributes:
        resolution: multi-resolution target, or 0 for no degradation.
        crop_top: top of the random crop in the resized image.
        crop_left: left of the random crop in the resized image.
        grayscale: whether to convert to grayscale.
    """

    resolution: int
    crop_top: int
    crop_left: int
    grayscale: bool


class Normalize:
    """Turn uint8 RGB images into the float input a model expects.

    ``imagenet``: 0-1 scale, RGB, ImageNet mean/std. ``vggface2``: 0-255 scale, BGR order,
    per-channel mean subtraction and no division (the VGGFace2 SE-ResNet-50 weights' input).
    Works on ``(3, H, W)`` and ``(N, 3, H, W)`` tensors.

    Args:
        preset: ``"imagenet"`` or ``"vggface2"``.

    Raises:
        ValueError: for another preset.
    """

    def __init__(self, preset: str = "imagenet") -> None:
        if preset not in NORMALIZATIONS:
            raise ValueError(f"normalization {preset!r} is not one of {', '.join(NORMALIZATIONS)}")
        self.preset = preset
        if preset == "imagenet":
            self.mean = torch.tensor(IMAGENET_MEAN_RGB).view(3, 1, 1) * 255.0
            self.std = torch.tensor(IMAGENET_STD_RGB).view(3, 1, 1) * 255.0
        else:
            self.mean = torch.tensor(VGGFACE2_MEAN_BGR).view(3, 1, 1)
            self.std = torch.ones(3, 1, 1)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return this normalisation as ``(matrix, bias)`` in float64.

        Normalising an RGB pixel ``x`` (a 3-vector on the 0-255 scale) is ``matrix @ x + bias``.
        """
        order = torch.eye(3, dtype=torch.float64)
        if self.preset == "vggface2":
            order = order.flip(0)
        inv_std = 1.0 / self.std.view(3).double()
        return inv_std[:, None] * order, -self.mean.view(3).double() * inv_std

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 (or 0-255 float) RGB tensor."""
        x = img.float()
        if self.preset == "vggface2":
            x = x.flip(-3)
        mean = self.mean.to(x.device)
        std = self.std.to(x.device)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.preset!r})"


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL RGB image to a ``(3, H, W)`` uint8 tensor."""
    return TF.pil_to_tensor(img.convert("RGB"))


def to_grayscale(img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
    """Convert RGB to grayscale (ITU-R 601-2 luma), kept as three equal channels."""
    if isinstance(img, Image.Image):
        return img.convert("L").convert("RGB")
    return TF.rgb_to_grayscale(img, num_output_channels=3)


class TrainTransform:
    """The paper's training pipeline for one image, with draws from ``(seed, epoch, index)``.

    multi-resolution -> resize shorter side -> random crop -> random grayscale -> tensor ->
    normalise.

    Args:
        resize_size: length of the shorter side after resizing (the paper: 256).
        crop_size: side of the square random crop (the paper: 224).
        grayscale_p: probability of grayscale conversion (the paper: 0.2).
        normalize: the normalisation to apply last.
        multires: the multi-resolution augmentation, or None to leave it out.
        seed: augmentation seed.

    Raises:
        ValueError: for invalid sizes or a ``grayscale_p`` outside [0, 1].
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        grayscale_p: float,
        normalize: Normalize,
        multires: MultiResolution | None = None,
        seed: int = 0,
    ) -> None:
        check_sizes(resize_size, crop_size)
        if not 0.0 <= grayscale_p <= 1.0:
            raise ValueError(f"grayscale_p={grayscale_p} must be in [0, 1]")
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.grayscale_p = grayscale_p
        self.normalize = normalize
        self.multires = multires
        self.seed = seed

    def draws(
        self, epochs: ArrayLike, indices: ArrayLike, height: int, width: int
    ) -> dict[str, np.ndarray]:
        """Draw the random choices of many samples at once (images of one size).

        Args:
            epochs: each sample's epoch (or one for all).
            indices: each sample's index in its split.
            height: the images' height.
            width: the images' width.

        Returns:
            One array per :class:`AugmentDraws` field, one entry per sample: ``resolution``,
            ``crop_top`` and ``crop_left`` (``int64``) and ``grayscale`` (``bool``).
        """
        rng = sample_rng(self.seed, epochs, indices)
        if self.multires is not None:
            resolution = self.multires.draw(rng)
        else:
            resolution = np.zeros(len(rng), np.int64)
        resized_h, resized_w = shorter_side_size(height, width, self.resize_size)
        crop_top = rng.integers(resized_h - self.crop_size + 1)
        crop_left = rng.integers(resized_w - self.crop_size + 1)
        grayscale = rng.random() < self.grayscale_p
        return {"resolution": resolution, "crop_top": crop_top, "crop_left": crop_left,
                "grayscale": grayscale}  # fmt: skip

    def draw(self, epoch: int, index: int, height: int, width: int) -> AugmentDraws:
        """Draw the random choices for sample ``index`` in ``epoch`` (an image of that size)."""
        draws = self.draws(epoch, index, height, width)
        return AugmentDraws(**{key: values[0].item() for key, values in draws.items()})

    def apply(self, img: Image.Image, draws: AugmentDraws) -> torch.Tensor:
        """Apply fixed draws to a PIL image; returns the normalised ``(3, crop, crop)`` tensor."""
        if draws.resolution:
            img = degrade(img, draws.resolution)
        img = resize(img, *shorter_side_size(img.height, img.width, self.resize_size))
        img = img.crop(
            (
                draws.crop_left,
                draws.crop_top,
                draws.crop_left + self.crop_size,
                draws.crop_top + self.crop_size,
            )
        )
        if draws.grayscale:
            img = to_grayscale(img)
        return self.normalize(to_uint8_tensor(img))

    def __call__(self, img: Image.Image, epoch: int, index: int) -> torch.Tensor:
        """Transform sample ``index`` of ``epoch``."""
        return self.apply(img, self.draw(epoch, index, img.height, img.width))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.multires!r}, resize={self.resize_size}, "
            f"crop={self.crop_size}, grayscale_p={self.grayscale_p}, {self.normalize!r})"
        )


class DeviceWorkerTransform:
    """Worker-side transform of ``data.augment_on=device``: keep uint8, attach the draws.

    :class:`~fer_multires.data.datasets.FrameDataset` calls :meth:`batch_draws` once per batch
    when it puts a batch together itself (the DataLoader's path); :meth:`__call__` is the same
    for one sample (``dataset[i]``).

    Args:
        train_transform: the training transform whose draws to attach, or None for evaluation.
    """

    def __init__(self, train_transform: TrainTransform | None = None) -> None:
        self.train_transform = train_transform

    def batch_draws(
        self, epochs: ArrayLike, indices: ArrayLike, height: int, width: int
    ) -> dict[str, np.ndarray]:
        """Return the draws of samples ``(epochs, indices)``: none for evaluation.

        Training draws are ``resolution``, ``crop_top``, ``crop_left`` and ``grayscale``, the
        per-image pipeline's draws (:meth:`TrainTransform.draws`) for images of that size.
        """
        if self.train_transform is None:
            return {}
        return self.train_transform.draws(epochs, indices, height, width)

    def __call__(self, img: torch.Tensor, epoch: int, index: int) -> dict[str, object]:
        """Return ``{"image": img}`` and, for training, the draws of ``(epoch, index)``.

        The draws are plain Python numbers (ints; ``grayscale`` a bool).
        """
        draws = self.batch_draws(epoch, index, int(img.shape[-2]), int(img.shape[-1]))
        return {"image": img, **{key: values[0].item() for key, values in draws.items()}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train={self.train_transform is not None})"


class EvalTransform:
    """The evaluation pipeline: [fixed degradation] -> resize -> center crop -> normalise.

    Args:
        resize_size: length of the shorter side after resizing.
        crop_size: side of the square center crop.
        normalize: the normalisation to apply last.
        resolution: evaluate at this fixed resolution (the same down-then-up step as training),
            or None for the native resolution.
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        normalize: Normalize,
        resolution: int | None = None,
    ) -> None:
        check_sizes(resize_size, crop_size)
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution={resolution} must be >= 1")
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.normalize = normalize
        self.resolution = resolution

    def __call__(self, img: Image.Image, epoch: int = 0, index: int = 0) -> torch.Tensor:
        """Transform one image; ``epoch`` and ``index`` are accepted for a uniform signature."""
        if self.resolution:
            img = degrade(img, self.resolution)
        img = resize(img, *shorter_side_size(img.height, img.width, self.resize_size))
        tensor = TF.center_crop(to_uint8_tensor(img), [self.crop_size, self.crop_size])
        return self.normalize(tensor)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resolution={self.resolution}, resize={self.resize_size}, "
            f"crop={self.crop_size}, {self.normalize!r})"
        )
