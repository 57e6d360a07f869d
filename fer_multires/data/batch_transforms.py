"""The fast path's augmentation: the train and eval pipelines on a whole batch, on the device.

With ``data.augment_on=device`` the DataLoader workers only decode JPEGs to uint8 at their native
size and attach each training sample's draws
(:class:`~fer_multires.data.transforms.DeviceWorkerTransform`); :class:`BatchTransform` then
degrades, resizes, crops, converts to grayscale and normalises the batch on the training
device, as three batched matrix products with no host synchronisation. The per-image reference
pipeline it reproduces is in :mod:`fer_multires.data.transforms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from fer_multires.data.transforms import (
    Normalize,
    check_sizes,
    image_size,
    resize,
    shorter_side_size,
)

#: ITU-R 601-2 luma weights, as PIL's ``convert("L")`` uses them.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

#: The training's degradation (bilinear down and up, :func:`axis_operators`).
TRAINING_KERNEL = "bilinear"
#: The ways of making a low-resolution image that the evaluation can apply (``eval.degradations``):
#:
#: * ``bilinear``: the training's: antialiased bilinear down, bilinear up;
#: * ``area``: area-averaging (box filter) down, bilinear up;
#: * ``bicubic``: antialiased bicubic down, bicubic up;
#: * ``jpeg``: bilinear down and up, then JPEG at ``eval.jpeg_quality``;
#: * ``blur``: a Gaussian blur whose sigma matches the resolution, no resampling.
#:
#: Every kernel but ``bilinear`` yields a uint8 image at the native size (rounded and clipped, as
#: a camera or codec would store it) before the usual resize, crop and normalisation;
#: ``bilinear`` is exactly the training's linear pipeline.
DEGRADATIONS: tuple[str, ...] = ("bilinear", "area", "bicubic", "jpeg", "blur")


def resize_matrix(length: int, new_length: int) -> torch.Tensor:
    """Return the ``(new_length, length)`` float64 matrix of :func:`resize` along one axis.

    Antialiased bilinear resizing is separable and linear: resizing an image to
    ``(new_h, new_w)`` is ``resize_matrix(h, new_h) @ image @ resize_matrix(w, new_w).T``.
    The matrix is obtained by resizing the identity, so it is exactly torch's own kernel.
    """
    identity = torch.eye(length, dtype=torch.float64)[None, None]
    return resize(identity, new_length, length)[0, 0]


def interpolation_matrix(length: int, new_length: int, mode: str) -> torch.Tensor:
    """Return the ``(new_length, length)`` float64 matrix of a 1-D resampling.

    Args:
        length: input length.
        new_length: output length.
        mode: ``bilinear`` or ``bicubic`` (antialiased when shrinking, as torchvision's resize),
            or ``area`` (area averaging).
    """
    identity = torch.eye(length, dtype=torch.float64)[None, None]
    if mode == "bilinear":
        return resize_matrix(length, new_length)
    if mode == "area":
        return F.interpolate(identity, size=(length, new_length), mode="area")[0, 0].T
    return F.interpolate(
        identity, size=(length, new_length), mode="bicubic", antialias=new_length < length,
        align_corners=False,
    )[0, 0].T  # fmt: skip


def gaussian_matrix(length: int, sigma: float) -> torch.Tensor:
    """Return the ``(length, length)`` float64 matrix of a Gaussian blur with reflected borders."""
    if sigma <= 0:
        return torch.eye(length, dtype=torch.float64)
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    matrix = torch.zeros(length, length, dtype=torch.float64)
    for i in range(length):
        for offset, tap in zip(offsets.long().tolist(), taps.tolist(), strict=True):
            j = reflect_index(i + offset, length)
            matrix[i, j] += tap
    return matrix


def reflect_index(i: int, length: int) -> int:
    """Reflect an index into ``0..length-1`` (``d c b | a b c d | c b a``)."""
    if length == 1:
        return 0
    period = 2 * (length - 1)
    i %= period
    return i if i < length else period - i


def blur_sigma(length: int, resolution: int) -> float:
    """Return the Gaussian sigma that matches ``resolution`` for an axis of ``length`` pixels.

    The anti-aliasing sigma of downscaling by ``s = length / resolution`` (as scikit-image's
    ``rescale`` uses): ``(s - 1) / 2``.
    """
    return max(0.0, (length / resolution - 1.0) / 2.0)


def degradation_matrix(length: int, small: int, kernel: str) -> torch.Tensor:
    """Return the ``(length, length)`` matrix of one axis's degradation to ``small`` pixels.

    Raises:
        ValueError: for an unknown kernel.
    """
    if kernel not in DEGRADATIONS:
        raise ValueError(
            f"unknown degradation {kernel!r}; expected one of {', '.join(DEGRADATIONS)}"
        )
    if kernel == "blur":
        return gaussian_matrix(length, blur_sigma(length, small))
    mode = "bilinear" if kernel == "jpeg" else kernel
    up_mode = "bilinear" if kernel in ("jpeg", "area") else mode
    return interpolation_matrix(small, length, up_mode) @ interpolation_matrix(length, small, mode)


def axis_operators(
    height: int, width: int, resize_size: int, resolution: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the row and column operators of "degrade to ``resolution``, then resize".

    Args:
        height: image height.
        width: image width.
        resize_size: shorter side after resizing.
        resolution: the multi-resolution target (see :func:`degrade`), or 0 for none.

    Returns:
        ``(rows, cols)`` of shapes ``(resized_h, height)`` and ``(resized_w, width)``: the
        processed image is ``rows @ image @ cols.T`` per channel.
    """
    resized_h, resized_w = shorter_side_size(height, width, resize_size)
    rows, cols = resize_matrix(height, resized_h), resize_matrix(width, resized_w)
    if 0 < resolution < min(height, width):
        small_h, small_w = shorter_side_size(height, width, resolution)
        rows = rows @ resize_matrix(small_h, height) @ resize_matrix(height, small_h)
        cols = cols @ resize_matrix(small_w, width) @ resize_matrix(width, small_w)
    return rows, cols


@dataclass(frozen=True)
class BatchOperators:
    """The precomputed operators of a :class:`BatchTransform` for one image size and device.

    Attributes:
        slot: for each resolution 0..max, the index of its operators in ``rows``/``cols``.
        rows: ``(K, resized_h, height)`` row operators, one per distinct degradation.
        cols: ``(K, resized_w, width)`` column operators.
        steps: ``0..crop_size - 1``, to gather the crop's rows and columns.
        channels: ``(2, 3, 3)`` channel maps: colour and grayscale, normalisation included.
        bias: ``(3, 1)`` the normalisation's offset.
    """

    slot: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    steps: torch.Tensor
    channels: torch.Tensor
    bias: torch.Tensor

    def to(self, device: torch.device | str) -> BatchOperators:
        """Return these operators on ``device``."""
        return BatchOperators(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class BatchTransform:
    """The train and eval pipelines on a whole batch of uint8 images, on any device.

    The device-side twin of :class:`TrainTransform` / :class:`EvalTransform` for
    ``data.augment_on=device``: DataLoader workers only decode JPEGs to uint8 at their native
    size (and draw each sample's :class:`AugmentDraws` from ``(seed, epoch, index)``); the
    degradation, resize, crop, grayscale and normalisation run here, batched, after the batch
    has moved to the training device.

    Every step is linear, so the whole pipeline is three batched matrix products per batch,
    with no host synchronisation: a per-image 3x3 channel map (grayscale and normalisation),
    then a column and a row operator (degrade, resize and crop along each axis; see
    :func:`axis_operators`), gathered per image from operators precomputed once per image size
    and device. The PIL reference rounds to uint8 after each step and this pipeline does not,
    so the two agree to within about a grey level (tested).

    Args:
        resize_size: length of the shorter side after resizing.
        crop_size: side of the square crop.
        normalize: the normalisation to apply last.
        resolutions: every multi-resolution target that training draws may hold (the
            :attr:`MultiResolution.choices`); 0 (no degradation) is always included.
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        normalize: Normalize,
        resolutions: tuple[int, ...] | list[int] | np.ndarray = (),
    ) -> None:
        check_sizes(resize_size, crop_size)
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.normalize = normalize
        self.resolutions = sorted({0, *(int(r) for r in resolutions)})
        self._operators: dict[tuple[int, int, int | None, str], BatchOperators] = {}
        self._degraders: dict[
            tuple[int, int, int, str, str], tuple[torch.Tensor, torch.Tensor]
        ] = {}

    def train(self, images: torch.Tensor, draws: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply per-sample draws to a uint8 batch ``(N, 3, H, W)``.

        Args:
            images: uint8 images at their native size.
            draws: ``resolution``, ``crop_top``, ``crop_left``, ``grayscale`` tensors of length N
                (see :class:`AugmentDraws`), on the images' device; every resolution must be one
                of :attr:`resolutions`.
        """
        ops = self.operators(images, None)
        slot = ops.slot[draws["resolution"]][:, None]
        rows = ops.rows[slot, draws["crop_top"][:, None] + ops.steps]
        cols = ops.cols[slot, draws["crop_left"][:, None] + ops.steps]
        return self._apply(images, rows, cols, ops.channels[draws["grayscale"].long()], ops.bias)

    def eval(
        self,
        images: torch.Tensor,
        resolution: int | None = None,
        kernel: str = TRAINING_KERNEL,
        jpeg_quality: int = 30,
    ) -> torch.Tensor:
        """[Degrade to a fixed resolution], resize, center-crop and normalise a uint8 batch.

        Args:
            images: uint8 ``(N, 3, H, W)`` images at their native size.
            resolution: the degraded resolution (shorter side), or None for the native one.
            kernel: how the low resolution is made, one of :data:`DEGRADATIONS`.
            jpeg_quality: the JPEG quality of the ``jpeg`` kernel.
        """
        if resolution and kernel != TRAINING_KERNEL:
            images, resolution = self.degrade(images, resolution, kernel, jpeg_quality), None
        ops = self.operators(images, resolution or 0)
        n = images.shape[0]
        rows, cols = ops.rows[0], ops.cols[0]
        top, left = (
            center_crop_offset(rows.shape[0], self.crop_size),
            center_crop_offset(cols.shape[0], self.crop_size),
        )
        rows = rows[top : top + self.crop_size].expand(n, -1, -1)
        cols = cols[left : left + self.crop_size].expand(n, -1, -1)
        return self._apply(images, rows, cols, ops.channels[:1].expand(n, -1, -1), ops.bias)

    def degrade(
        self, images: torch.Tensor, resolution: int, kernel: str, jpeg_quality: int = 30
    ) -> torch.Tensor:
        """Return a uint8 batch degraded to ``resolution`` by ``kernel``, at its native size.

        Images whose shorter side is not above ``resolution`` are returned unchanged.
        """
        height, width = image_size(images)
        if resolution >= min(height, width):
            return images
        key = (height, width, resolution, kernel, str(images.device))
        if key not in self._degraders:
            small_h, small_w = shorter_side_size(height, width, resolution)
            self._degraders[key] = (
                degradation_matrix(height, small_h, kernel).float().to(images.device),
                degradation_matrix(width, small_w, kernel).float().to(images.device),
            )
        rows, cols = self._degraders[key]
        with torch.autocast(images.device.type, enabled=False):
            x = torch.matmul(rows, torch.matmul(images.float(), cols.T))
        degraded = x.round_().clamp_(0, 255).to(torch.uint8)
        if kernel == "jpeg":
            degraded = jpeg_round_trip(degraded, jpeg_quality)
        return degraded

    def operators(self, images: torch.Tensor, resolution: int | None) -> BatchOperators:
        """Return (and cache) the operators for this batch's image size and device.

        Args:
            images: a ``(N, 3, H, W)`` batch.
            resolution: a fixed evaluation resolution, or None for the training operators
                (one per :attr:`resolutions`).
        """
        height, width = image_size(images)
        key = (height, width, resolution, str(images.device))
        if key not in self._operators:
            wanted = self.resolutions if resolution is None else [resolution]
            self._operators[key] = self._build(height, width, wanted).to(images.device)
        return self._operators[key]

    def _build(self, height: int, width: int, resolutions: list[int]) -> BatchOperators:
        # resolutions at or above the native size leave the image as it is: one operator for all
        effective = {r: r if r < min(height, width) else 0 for r in resolutions}
        distinct = sorted(set(effective.values()))
        slot = torch.full((max(resolutions) + 1,), len(distinct), dtype=torch.long)  # unknown
        for r, kept in effective.items():
            slot[r] = distinct.index(kept)
        pairs = [axis_operators(height, width, self.resize_size, r) for r in distinct]
        matrix, bias = self.normalize.affine()
        luma = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64)
        grayscale = luma.expand(3, 3)  # every output channel is the luma of the input
        return BatchOperators(
            slot=slot,
            rows=torch.stack([rows for rows, _ in pairs]).float(),
            cols=torch.stack([cols for _, cols in pairs]).float(),
            steps=torch.arange(self.crop_size),
            channels=torch.stack([matrix, matrix @ grayscale]).float(),
            bias=bias.view(3, 1).float(),
        )

    @staticmethod
    def _apply(
        images: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        channels: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        """``rows_n @ (channels_n x + bias) @ cols_n.T`` for every image n, in float32."""
        n, c, h, w = images.shape
        crop_h, crop_w = rows.shape[1], cols.shape[1]
        with torch.autocast(images.device.type, enabled=False):
            x = torch.baddbmm(bias, channels, images.reshape(n, c, h * w).float())
            x = torch.bmm(x.view(n, c * h, w), cols.transpose(1, 2))
            return torch.matmul(rows[:, None], x.view(n, c, h, crop_w)).view(n, c, crop_h, crop_w)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resize={self.resize_size}, crop={self.crop_size}, "
            f"{self.normalize!r}, resolutions={self.resolutions})"
        )


def jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode a uint8 batch as JPEG at ``quality`` and decode it, on the batch's device."""
    encoded = encode_jpeg(list(images.contiguous()), quality=quality)
    decoded = decode_jpeg(encoded, device=images.device)
    return torch.stack(decoded)


def center_crop_offset(length: int, crop: int) -> int:
    """Return the start of a centred crop, rounded as torchvision's ``center_crop`` does."""
    return round((length - crop) / 2.0)
