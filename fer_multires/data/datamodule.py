"""The Lightning data module: any supported dataset -> dataloaders.

``data.dataset`` names the reader (:data:`READERS`): Aff-Wild2 (or the synthetic set in its
layout), RAF-DB, FER2013, FERPlus, AffectNet or an image folder. Splits:

* ``train``: the official training split;
* ``val_select``: a seeded subsample of the validation split used only for model selection:
  whole videos (default 15% of them) for video datasets, images for still-image datasets;
* ``val_rest``: the validation samples not in ``val_select``: the honest estimate;
* ``val_full``: the whole official validation split (the number the paper reports);
* ``test``: the dataset's test split, where it has one (FER2013's PrivateTest);
  ``data.eval_split=test`` draws the three ``val_*`` splits from it instead, which is how
  ``evaluate`` reports a test split.

``val_dataloader`` returns ``[val_select, val_rest]`` in that order (:data:`VAL_LOADERS`).
``val_full`` is their disjoint union, so its metrics are computed exactly from the two without
reading the frames twice; :meth:`AffWild2DataModule.eval_dataloader` gives any split on its own.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader

from fer_multires.data.batch_transforms import BatchTransform
from fer_multires.data.datasets import (
    BadImageError,
    FrameDataset,
    PartitionSampler,
    check_on_bad_image,
    collate_samples,
    count_unreadable,
    ignore_interrupts,
)
from fer_multires.data.labels import class_weights
from fer_multires.data.loaders import ResumableLoader
from fer_multires.data.readers import READERS
from fer_multires.data.readers.affwild2 import read_affwild2
from fer_multires.data.readers.index import DatasetIndex, SplitIndex, require_root
from fer_multires.data.readers.packed import read_packed
from fer_multires.data.synthetic import SyntheticSpec, ensure_synthetic_affwild2
from fer_multires.data.synthetic.writer import require_synthetic_targets
from fer_multires.data.transforms import MultiResolution
from fer_multires.data.transforms import image_size as measure_size
from fer_multires.data.transforms_factory import Transforms, create_transforms
from fer_multires.results import VAL_LOADERS
from fer_multires.runs import ModelInput
from fer_multires.task_losses import au_pos_weights, au_positive_rates
from fer_multires.tasks import DEFAULT_TASK, check_task
from fer_multires.utils.config import config_node

log = logging.getLogger(__name__)

AUGMENT_ON: tuple[str, ...] = ("device", "cpu")
#: The dataset splits that ``val_select``/``val_rest``/``val_full`` may be drawn from
#: (``data.eval_split``): ``test`` evaluates e.g. FER2013's PrivateTest.
EVAL_SOURCES: tuple[str, ...] = ("val", "test")


def split_val_videos(videos: list[str], fraction: float, seed: int) -> list[str]:
    """Choose the ``val_select`` videos: a seeded sample of whole validation videos.

    The choice depends only on the set of video names, the fraction and the seed (not on the
    order the files were listed in). At least one video is chosen and at least one is left out.

    Args:
        videos: the validation videos.
        fraction: share of the videos to choose, in (0, 1).
        seed: seed of the choice.

    Raises:
        ValueError: if there are fewer than two videos.
    """
    names = sorted(videos)
    if len(names) < 2:
        raise ValueError(
            f"the validation split has {len(names)} video(s) with frames; val_select and "
            "val_rest need at least two"
        )
    count = select_count(len(names), fraction)
    chosen = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return sorted(names[i] for i in chosen)


def select_count(total: int, fraction: float) -> int:
    """Return how many of ``total`` go to ``val_select``: the share, at least 1, not all."""
    return min(total - 1, max(1, round(fraction * total)))


def split_val_images(num_images: int, fraction: float, seed: int) -> np.ndarray:
    """Choose the ``val_select`` images of a still-image dataset: a seeded sample of positions.

    At least one image is chosen and at least one is left out.

    Returns:
        The chosen positions in the validation split, sorted.

    Raises:
        ValueError: if there are fewer than two images.
    """
    if num_images < 2:
        raise ValueError(
            f"the validation split has {num_images} image(s); val_select and val_rest need at "
            "least two"
        )
    count = select_count(num_images, fraction)
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False))


class FERDataModule(LightningDataModule):
    """Expression images of any supported dataset, or a synthetic set in Aff-Wild2's layout.

    Args:
        root: dataset root (``data.root``).
        dataset: the reader (``data.dataset``): one of :data:`READERS`.
        annotations_dir: Aff-Wild2: annotations folder, relative to the root or absolute.
        frames_dir: Aff-Wild2: cropped-aligned frames folder, relative to the root or absolute.
        frames_manifest: Aff-Wild2: optional file listing ``<video>/<frame>.jpg`` paths, read
            instead of listing the frame folders (e.g. on network storage).
        rafdb: RAF-DB's options (``data.rafdb``), e.g. ``{images: aligned}``.
        affectnet: AffectNet's options (``data.affectnet``), e.g. ``{crop: box}``.
        num_classes: FERPlus and AffectNet: 8 (with Contempt, the default) or 7 (Contempt
            skipped and counted); for other datasets, if set, checked against the dataset's.
        classes: image folders: the class folder names in label order, instead of mapping
            the folder names to the canonical names.
        image_size: resize every image (after any face-box crop) to this square size when it
            is read, or None to keep the images' own size (the fast path then needs every image
            at one size).
        packed_dir: read the frames and the index from tar shards written by
            ``python -m fer_multires.pack`` instead of the annotation and frame folders.
        synthetic: if set, a :class:`SyntheticSpec` (a ``_target_`` node in the config; a plain
            dict, as in older runs' ``config.yaml``, is accepted too): the set is generated into
            ``root`` when that folder holds no dataset yet.
        batch_size: training batch size per process.
        eval_batch_size: evaluation batch size per process (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: pin batches in page-locked memory (for GPU training).
        resize_size: shorter side after resizing.
        crop_size: side of the square crop fed to the model.
        grayscale_p: probability of random grayscale in training.
        normalization: ``imagenet`` or ``vggface2``.
        multires: the multi-resolution augmentation (a ``_target_`` node in the config), or
            None for none. The deprecated dict ``{enabled, p, min_res, max_res, sampling}`` is
            accepted too, with a warning (see :func:`resolve_multires`).
        val_select_fraction: share of validation videos in ``val_select``.
        val_select_seed: seed of the ``val_select`` choice.
        seed: seed of the training order and the augmentation draws.
        on_bad_image: ``error`` or ``skip`` (counted and reported) for unreadable frames.
        augment_on: ``device`` (workers only decode; the augmentation runs batched on the
            training device in :meth:`on_after_batch_transfer`) or ``cpu`` (the per-image PIL
            reference pipeline in the workers). The draws are the same either way.
        eval_split: the dataset split that ``val_select``, ``val_rest`` and ``val_full`` are
            drawn from: ``val``, or ``test`` to evaluate a dataset's test split (FER2013's
            PrivateTest) with ``evaluate data.eval_split=test``.
        task: the annotations read (:mod:`fer_multires.tasks`): ``expr``, or on Aff-Wild2
            ``va``, ``au`` or ``mtl`` (the union of the frames of the three); the run's top-level
            ``task``, passed by the entry points (not a ``data`` key).

    Raises:
        ValueError: for an invalid setting, naming its config key, before any data is read.
    """

    def __init__(
        self,
        root: str,
        dataset: str = "affwild2",
        annotations_dir: str = "annotations",
        frames_dir: str = "cropped_aligned",
        frames_manifest: str | None = None,
        rafdb: Mapping[str, Any] | None = None,
        affectnet: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
        classes: list[str] | None = None,
        image_size: int | None = ModelInput.image_size,
        packed_dir: str | None = None,
        synthetic: SyntheticSpec | Mapping[str, Any] | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 8,
        pin_memory: bool = True,
        resize_size: int = ModelInput.resize_size,
        crop_size: int = ModelInput.crop_size,
        grayscale_p: float = 0.2,
        normalization: str = ModelInput.normalization,
        multires: MultiResolution | Mapping[str, Any] | None = None,
        val_select_fraction: float = 0.15,
        val_select_seed: int = 0,
        seed: int = 0,
        on_bad_image: str = "error",
        augment_on: str = "device",
        eval_split: str = "val",
        task: str = DEFAULT_TASK,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        if dataset not in READERS:
            raise ValueError(f"data.dataset={dataset!r} is not one of {', '.join(READERS)}")
        self.task = check_task(task)
        if task != DEFAULT_TASK and dataset != "affwild2" and packed_dir is None:
            raise ValueError(
                f"task={task}: data.dataset={dataset} has expression labels only; valence-arousal "
                "and action units are read from Aff-Wild2's annotations (data=affwild2)"
            )
        self.dataset_name = dataset
        if num_classes is not None and num_classes not in (7, 8):
            raise ValueError(f"data.num_classes={num_classes} must be 7 or 8")
        self.requested_num_classes = num_classes
        self.reader_settings = {"rafdb": dict(rafdb or {}), "affectnet": dict(affectnet or {})}
        self.class_folders = None if classes is None else [str(c) for c in classes]
        if image_size is not None and image_size < 1:
            raise ValueError(f"data.image_size={image_size} must be >= 1 (or null)")
        self.image_size = image_size
        self.annotations_dir = annotations_dir
        self.frames_dir = frames_dir
        self.frames_manifest = frames_manifest
        self.packed_dir = packed_dir
        self.synthetic = resolve_synthetic(synthetic)
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers} must be >= 0")
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.multires = resolve_multires(multires)
        with config_node("data"):  # names the keys in the errors of the parts
            check_on_bad_image(on_bad_image)
            self.transforms: Transforms = create_transforms(
                resize_size, crop_size, grayscale_p, normalization, self.multires, seed
            )
        if not 0.0 < val_select_fraction < 1.0:
            raise ValueError(f"data.val_select_fraction={val_select_fraction} must be in (0, 1)")
        self.val_select_fraction = val_select_fraction
        self.val_select_seed = val_select_seed
        if seed < 0:
            raise ValueError(f"data.seed={seed} must be >= 0")
        self.seed = seed
        self.on_bad_image = on_bad_image
        if augment_on not in AUGMENT_ON:
            raise ValueError(
                f"data.augment_on={augment_on!r} is not one of {', '.join(AUGMENT_ON)}"
            )
        self.augment_on = augment_on
        if eval_split not in EVAL_SOURCES:
            raise ValueError(
                f"data.eval_split={eval_split!r} is not one of {', '.join(EVAL_SOURCES)}"
            )
        self.eval_split = eval_split
        self.native_size: tuple[int, int] = (112, 112)
        self.index: DatasetIndex | None = None
        self.splits: dict[str, SplitIndex] = {}

    @property
    def batch_transform(self) -> BatchTransform:
        """The batched pipeline that finishes uint8 batches on the device (``augment_on``)."""
        return self.transforms.batch

    def prepare_data(self) -> None:
        """Generate the synthetic set into ``root`` if this is a synthetic config and it is absent.

        Lightning calls this on one process per node.
        """
        if self.synthetic is not None:
            ensure_synthetic_affwild2(self.root, self.synthetic)
            if self.task != DEFAULT_TASK:
                require_synthetic_targets(self.root)
        elif not self.packed_dir:
            require_root(self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read the index and build the splits (once; later calls are no-ops)."""
        if self.index is not None:
            return
        index = self.read_index()
        for name, split in index.splits.items():
            if len(split) == 0:
                raise ValueError(
                    f"data.root: the {name} split of {self.root} has no usable samples "
                    f"(skipped: {split.skipped.as_dict()})"
                )
        if stage in ("fit", None) and len(index.splits["train"]) < self.batch_size:
            raise ValueError(
                f"data.batch_size={self.batch_size} is larger than the training split of "
                f"{self.root} ({len(index.splits['train'])} samples): the last partial batch is "
                "dropped, so no training step would run"
            )
        if self.eval_split not in index.splits:
            raise ValueError(
                f"data.eval_split={self.eval_split}: {index.name} at {self.root} has no "
                f"{self.eval_split} split (it has {', '.join(index.splits)})"
            )
        evaluated = index.splits[self.eval_split]
        select, rest = self.split_validation(evaluated)
        self.index = index
        self.splits = {
            "train": index.splits["train"],
            "val_select": select,
            "val_rest": rest,
            "val_full": evaluated,
        }
        if "test" in index.splits:
            self.splits["test"] = index.splits["test"]
        self.native_size = probe_native_size(self.dataset("train"))
        log.info(
            "data: %s %s; %s",
            index.name,
            self.root,
            ", ".join(f"{name} {len(split)} samples" for name, split in self.splits.items()),
        )

    def split_validation(self, val: SplitIndex) -> tuple[SplitIndex, SplitIndex]:
        """Return ``(val_select, val_rest)``: whole videos, or images, chosen by seed."""
        if not val.has_videos:
            chosen = split_val_images(len(val), self.val_select_fraction, self.val_select_seed)
            rest = np.setdiff1d(np.arange(len(val)), chosen)
            return val.take(chosen), val.take(rest)
        select_videos = split_val_videos(
            [val.video_names[v] for v in np.unique(val.video_id)],
            self.val_select_fraction,
            self.val_select_seed,
        )
        rest_videos = sorted(set(val.video_names) - set(select_videos))
        return val.subset(select_videos), val.subset(rest_videos)

    def read_index(self) -> DatasetIndex:
        """Read the dataset's index (its splits as on disk), without building the splits."""
        if self.synthetic is not None and not self.root.is_dir():
            self.prepare_data()
        if self.packed_dir:
            index = read_packed(self.packed_dir)
            if index.task != self.task:
                raise ValueError(
                    f"task={self.task}: data.packed_dir={self.packed_dir} holds the targets of "
                    f"task={index.task}; pack the set with task={self.task}"
                )
        elif self.dataset_name == "affwild2":
            index = read_affwild2(
                self.root, self.annotations_dir, self.frames_dir, self.frames_manifest,
                task=self.task,
            )  # fmt: skip
        else:
            options = self.reader_options()
            try:
                index = READERS[self.dataset_name](self.root, **options)
            except TypeError as err:  # an option the reader does not take
                raise ValueError(
                    f"data.{self.dataset_name}: {err} (given: {', '.join(options) or 'none'})"
                ) from None
        if self.requested_num_classes not in (None, index.num_classes):
            raise ValueError(
                f"data.num_classes={self.requested_num_classes}, but {index.name} at {self.root} "
                f"has {index.num_classes} classes ({', '.join(index.classes)})"
            )
        return index

    def reader_options(self) -> dict[str, Any]:
        """Return the keyword options of this dataset's reader, from the ``data`` config."""
        name = self.dataset_name
        options: dict[str, Any] = dict(self.reader_settings.get(name, {}))
        if name in ("ferplus", "affectnet"):
            options["num_classes"] = self.requested_num_classes or 8
        if name == "folder":
            options["classes"] = self.class_folders
        return options

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order (after :meth:`setup`)."""
        return self._index().classes

    @property
    def num_classes(self) -> int:
        """Number of classes (after :meth:`setup`)."""
        return self._index().num_classes

    @property
    def train_class_counts(self) -> np.ndarray:
        """Frames of each class in the training split (after :meth:`setup`)."""
        return self.splits["train"].class_counts(self.num_classes)

    def class_weights(self) -> np.ndarray:
        """The paper's loss weights: 1 - training frequency of each class."""
        return class_weights(self.train_class_counts)

    def au_pos_weights(self) -> torch.Tensor:
        """The AU loss's weight of each AU's positives, from its training positive rate."""
        return au_pos_weights(au_positive_rates(self.splits["train"].au))

    def _index(self) -> DatasetIndex:
        if self.index is None:
            raise RuntimeError("call setup() before using the data module's splits")
        return self.index

    def dataset(self, split: str, augment_on: str | None = None) -> FrameDataset:
        """Return the dataset of a split.

        Args:
            split: ``train``, ``val_select``, ``val_rest``, ``val_full`` or ``test``.
            augment_on: override ``data.augment_on``; with ``device`` the items are uint8
                images (plus the training draws), to be finished by :attr:`batch_transform`.
        """
        self._index()
        on_device = (augment_on or self.augment_on) == "device"
        train = split == "train"
        if split not in self.splits:
            raise ValueError(f"{self._index().name} at {self.root} has no {split} split")
        return FrameDataset(
            self.splits[split],
            self._index().images_dir,
            self.transforms.worker(train, on_device),
            decode="tensor" if on_device else "pil",
            packed_split=self.source_split(split),
            native_size=self.native_size,
            on_bad_image=self.on_bad_image,
            image_size=self.image_size,
        )

    def source_split(self, split: str) -> str:
        """The split of the dataset's index that a data module split is drawn from.

        ``val_select``, ``val_rest`` and ``val_full`` come from ``data.eval_split``; ``train``
        and ``test`` from the splits of those names.
        """
        return self.eval_split if split.startswith("val_") else split

    def _loader(self, dataset: FrameDataset, shuffle: bool, batch_size: int) -> DataLoader:
        """Build a loader over this process's partition.

        Training drops the last partial batch: every step then has the same shape, so cuDNN's
        autotuner (and torch.compile) never re-plan mid-run (measured on an H200: a 4.7 s stall
        at each epoch's end otherwise). Workers persist across epochs (no start-up per epoch);
        the sampler, which sets the epoch of each key, lives in the main process. On the fast
        path the dataset makes each batch itself (:meth:`FrameDataset.__getitems__`).
        """
        rank, world = self._rank_and_world()
        sampler = PartitionSampler(len(dataset), shuffle, self.seed, num_replicas=world, rank=rank)
        dataset.fetch_batches = True  # made batches: collate_samples passes them through
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            pin_memory=self.pin_memory,
            drop_last=shuffle,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=ignore_interrupts,
        )

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; order and augmentation follow ``(seed, epoch)``.

        The loader is resumable (:class:`~fer_multires.data.loaders.ResumableLoader`): a
        checkpoint taken mid-epoch holds the sampler's ``(epoch, position)``, and the resumed
        run continues that epoch with the same remaining samples and draws.

        Raises:
            ValueError: if ``data.batch_size`` exceeds this process's share of the training
                split (the last partial batch is dropped, so no step would run).
        """
        loader = self._loader(self.dataset("train"), shuffle=True, batch_size=self.batch_size)
        if len(loader) == 0:
            _, world = self._rank_and_world()
            raise ValueError(
                f"data.batch_size={self.batch_size} is larger than the training split's "
                f"{len(loader.sampler)} samples per process ({len(self.splits['train'])} "
                f"samples over {world} process(es)): no training step would run"
            )
        loader = ResumableLoader.like(loader)
        # Lightning starts the first epoch's iterator (whose workers draw indices at once) before
        # it calls set_epoch, so a resumed run would replay epoch 0's order and augmentation.
        # Start at the epoch Lightning's own set_epoch will use (the restored one on resume).
        if self.trainer is not None:
            loader.sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return loader

    def val_dataloader(self) -> list[DataLoader]:
        """``[val_select, val_rest]`` (see :data:`VAL_LOADERS`).

        Each is partitioned across processes without padding.
        """
        return [self.eval_dataloader(name) for name in VAL_LOADERS]

    def test_dataloader(self) -> list[DataLoader]:
        """``[val_select, val_rest]`` as uint8 images at their native size, for the evaluation.

        The evaluation (:class:`~fer_multires.evaluation.module.EvalModule`) decodes each batch
        once and degrades it to every resolution on the device, whatever ``data.augment_on``.
        """
        return [self.eval_dataloader(name, augment_on="device") for name in VAL_LOADERS]

    def eval_dataloader(self, split: str, augment_on: str | None = None) -> DataLoader:
        """Batches of one evaluation split, partitioned across processes without padding."""
        return self._loader(
            self.dataset(split, augment_on), shuffle=False, batch_size=self.eval_batch_size
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the batch's unreadable samples on the host, before it moves to the device.

        The training and evaluation steps then use a fully readable batch as it is, with no
        host synchronisation (:func:`~fer_multires.data.datasets.readable_samples`).
        """
        return count_unreadable(batch)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """With ``augment_on=device``: augment (training) or prepare (validation) the batch.

        Runs on the training device after the uint8 batch was moved there. Batches of
        ``trainer.test``/``predict`` stay uint8: the evaluation applies its own resolutions.
        """
        images = batch["image"]
        if self.trainer is None or images.dtype != torch.uint8:
            return batch
        if self.trainer.training:
            batch["image"] = self.batch_transform.train(images, batch)
        elif self.trainer.validating or self.trainer.sanity_checking:
            batch["image"] = self.batch_transform.eval(images)
        return batch


def probe_native_size(dataset: FrameDataset) -> tuple[int, int]:
    """Return ``(height, width)`` of the first readable image (112x112 on Aff-Wild2).

    Only the image header is decoded, unless the image is cropped or resized when read. An
    image that cannot be read, or is over PIL's decompression-bomb limit, is passed over.
    """
    if dataset.image_size is not None:
        return dataset.image_size, dataset.image_size
    if dataset.split.pixels is not None:
        return tuple(int(n) for n in dataset.split.pixels.shape[1:3])
    for i in range(min(len(dataset), 16)):
        try:
            if dataset.split.boxes is not None:
                return measure_size(dataset.load_image(i))
            with Image.open(io.BytesIO(dataset.read_bytes(i))) as img:
                return img.height, img.width
        except (OSError, BadImageError, Image.DecompressionBombError):
            continue
    raise ValueError(f"data.root: none of the first images in {dataset.images_dir} reads")


#: The ``_target_`` of a ``data.multires`` node.
MULTIRES_TARGET = f"{MultiResolution.__module__}.{MultiResolution.__qualname__}"
#: The keys of the deprecated ``data.multires`` dict (without ``_target_``).
LEGACY_MULTIRES_KEYS: tuple[str, ...] = ("enabled", "p", "min_res", "max_res", "sampling")


def resolve_multires(
    multires: MultiResolution | Mapping[str, Any] | None,
) -> MultiResolution | None:
    """Return the multi-resolution augmentation of ``data.multires``, or None for none.

    ``data.multires`` is a ``_target_`` node, which Hydra has built already, or null. The dict
    of earlier releases (``{enabled, p, min_res, max_res, sampling}`` without ``_target_``, as in
    older runs' ``config.yaml``) is still accepted, with a deprecation warning, until the next
    release.

    Raises:
        ValueError: for an unknown or invalid key of the dict, naming it.
        TypeError: for anything else.
    """
    if multires is None or isinstance(multires, MultiResolution):
        return multires
    if not isinstance(multires, Mapping):
        raise TypeError(
            f"data.multires must be a {MULTIRES_TARGET} node or null, got {type(multires).__name__}"
        )
    return legacy_multires(multires)


def legacy_multires(cfg: Mapping[str, Any]) -> MultiResolution | None:
    """Build the multi-resolution augmentation from the deprecated ``data.multires`` dict.

    Validated whether enabled or not, as before.

    Raises:
        ValueError: for an unknown or invalid key, naming it.
    """
    unknown = set(cfg) - set(LEGACY_MULTIRES_KEYS)
    if unknown:
        raise ValueError(
            f"data.multires: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(LEGACY_MULTIRES_KEYS))}"
        )
    enabled = bool(cfg.get("enabled", True))
    given = f"data.multires.enabled={str(enabled).lower()}" if "enabled" in cfg else "it"
    log.warning(
        "data.multires as a dict without _target_ (%s) is deprecated and will be removed in the "
        "next release: data.multires.enabled=false is now data.multires=null, and "
        "multi-resolution is on wherever data.multires is a node with _target_: %s",
        given,
        MULTIRES_TARGET,
    )
    with config_node("data.multires"):
        multires = MultiResolution(**{k: v for k, v in cfg.items() if k != "enabled"})
    return multires if enabled else None


def resolve_synthetic(synthetic: SyntheticSpec | Mapping[str, Any] | None) -> SyntheticSpec | None:
    """Return the :class:`SyntheticSpec` of ``data.synthetic``, or None for real data.

    ``data.synthetic`` is a ``_target_`` node, which Hydra has built already, or null; a plain
    dict (as in older runs' ``config.yaml``) is accepted too.

    Raises:
        ValueError: for an invalid field, naming its key.
        TypeError: for anything else.
    """
    if synthetic is None or isinstance(synthetic, SyntheticSpec):
        return synthetic
    if not isinstance(synthetic, Mapping):
        raise TypeError(
            f"data.synthetic must be a SyntheticSpec node or null, got {type(synthetic).__name__}"
        )
    if not synthetic:
        return None
    with config_node("data.synthetic"):
        return SyntheticSpec(**{str(k): v for k, v in synthetic.items()})


#: The former name of :class:`FERDataModule`, kept for the ``_target_`` of older runs' configs.
AffWild2DataModule = FERDataModule
