"""One factory for every transform of a data config, like timm's ``create_transform``.

:func:`create_transforms` builds the per-image PIL pipelines (``data.augment_on=cpu``), the
batched device pipeline and the worker-side decoders (``data.augment_on=device``) from the same
settings, so the two paths share one normalisation, one multi-resolution augmentation and one
set of training draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fer_multires.data.batch_transforms import BatchTransform
from fer_multires.data.transforms import (
    DeviceWorkerTransform,
    EvalTransform,
    MultiResolution,
    Normalize,
    TrainTransform,
    check_sizes,
)


@dataclass(frozen=True)
class Transforms:
    """Every transform of one data config.

    Attributes:
        train: the per-image training pipeline; its draws are the device path's draws too.
        eval: the per-image evaluation pipeline (native resolution).
        batch: the batched pipeline that finishes uint8 batches on the training device.
        decoded_train: the workers' training transform on the device path: uint8 + draws.
        decoded_eval: the workers' evaluation transform on the device path: uint8 only.
    """

    train: TrainTransform
    eval: EvalTransform
    batch: BatchTransform
    decoded_train: DeviceWorkerTransform
    decoded_eval: DeviceWorkerTransform

    @property
    def normalize(self) -> Normalize:
        """The normalisation every pipeline ends with."""
        return self.train.normalize

    @property
    def multires(self) -> MultiResolution | None:
        """The multi-resolution augmentation of training, or None."""
        return self.train.multires

    def worker(self, train: bool, on_device: bool) -> Callable[[Any, int, int], Any]:
        """Return the transform the DataLoader workers apply to each image.

        Args:
            train: for the training split (augmented) or an evaluation split.
            on_device: ``data.augment_on=device`` (workers only decode) or ``cpu``.
        """
        if on_device:
            return self.decoded_train if train else self.decoded_eval
        return self.train if train else self.eval


def create_transforms(
    resize_size: int = 256,
    crop_size: int = 224,
    grayscale_p: float = 0.2,
    normalization: str = "imagenet",
    multires: MultiResolution | None = None,
    seed: int = 0,
) -> Transforms:
    """Build the train, eval and batch transforms of one data config.

    Args:
        resize_size: length of the shorter side after resizing.
        crop_size: side of the square crop fed to the model.
        grayscale_p: probability of random grayscale in training.
        normalization: ``imagenet`` or ``vggface2``.
        multires: the multi-resolution augmentation of training, or None for none.
        seed: seed of the augmentation draws.

    Raises:
        ValueError: for an invalid setting, its parameter's name first
            (``crop_size=300 must not exceed resize_size=256``).
    """
    check_sizes(resize_size, crop_size)
    normalize = Normalize(normalization)
    train = TrainTransform(resize_size, crop_size, grayscale_p, normalize, multires, seed)
    resolutions = multires.choices if multires is not None else ()
    return Transforms(
        train=train,
        eval=EvalTransform(resize_size, crop_size, normalize),
        batch=BatchTransform(resize_size, crop_size, normalize, resolutions),
        decoded_train=DeviceWorkerTransform(train),
        decoded_eval=DeviceWorkerTransform(None),
    )
