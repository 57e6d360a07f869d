"""Image datasets (video frames or still images) and the samplers that feed them.

A sampler yields ``(index, epoch)`` keys, so each sample's augmentation draws depend on
``(seed, epoch, index)`` only, never on which worker process reads it. Partitioning across
processes is done here rather than by Lightning's ``DistributedSampler``: validation partitions
are disjoint and unpadded, so every sample is counted exactly once on any number of processes.
"""

from __future__ import annotations

import io
import logging
import math
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate, get_worker_info

from fer_multires.data.readers.index import SplitIndex
from fer_multires.data.readers.packed import PackedReader
from fer_multires.data.transforms import resize

log = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]
Decode = Literal["pil", "tensor"]
ON_BAD_IMAGE: tuple[str, ...] = ("error", "skip")
SampleKey = tuple[int, int]


def check_on_bad_image(value: str) -> None:
    """Check an ``on_bad_image`` setting.

    Raises:
        ValueError: for a value other than ``error`` or ``skip``.
    """
    if value not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image {value!r} is not one of {', '.join(ON_BAD_IMAGE)}")


class BadImageError(OSError):
    """A frame image that cannot be read or decoded."""


def rgb_image(img: Image.Image) -> Image.Image:
    """Convert a decoded PIL image to 8-bit RGB.

    A 16-bit grayscale image keeps its high byte, as OpenCV's decode on the fast path does
    (PIL's own conversion would clip every value above 255: an almost white image); 16-bit
    colour PNGs PIL already reads as 8-bit.
    """
    if img.mode.startswith("I;16"):
        img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8), "L")
    return img.convert("RGB")


def decode_pil(data: bytes, name: str) -> Image.Image:
    """Decode image bytes fully to a PIL RGB image (:func:`rgb_image`).

    Raises:
        BadImageError: naming the image, if it is truncated, not an image, or over PIL's
            decompression-bomb limit (:func:`check_pixel_count`).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return rgb_image(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImageError(f"{name}: cannot read image: {err}") from err


def check_pixel_count(height: int, width: int, name: str) -> None:
    """Refuse an image over PIL's decompression-bomb limit, as :func:`decode_pil` does.

    PIL refuses to open an image of more than twice ``Image.MAX_IMAGE_PIXELS`` pixels; OpenCV's
    own limit is higher (2**30), so the OpenCV path checks this too, and both paths read or
    refuse the same images.

    Raises:
        BadImageError: naming the image and its size, if it is over the limit.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and height * width > 2 * limit:
        raise BadImageError(
            f"{name}: cannot read image: {width}x{height} = {height * width} pixels is over the "
            f"limit of {2 * limit} (PIL's decompression-bomb limit, twice Image.MAX_IMAGE_PIXELS)"
        )


#: OpenCV's decode: 8-bit, three channels (BGR), EXIF orientation not applied (as with PIL).
_CV2_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def decode_bgr(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes with OpenCV to ``(H, W, 3)`` uint8 BGR pixels.

    libjpeg-turbo and libpng give the same pixels as PIL's :func:`decode_pil`; any image
    becomes 8-bit, three channels, alpha dropped, EXIF orientation ignored.

    Raises:
        BadImageError: naming the image, if it is truncated, not an image, or over PIL's
            decompression-bomb limit (:func:`check_pixel_count`).
    """
    if not data:
        raise BadImageError(f"{name}: cannot read image: the file is empty")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _CV2_COLOR)
    except cv2.error as err:
        raise BadImageError(f"{name}: cannot read image: {str(err).strip()}") from err
    if pixels is None:
        raise BadImageError(f"{name}: cannot read image: not a complete JPEG or PNG")
    check_pixel_count(*pixels.shape[:2], name)
    return pixels


def rgb_planes(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Split interleaved BGR pixels into ``(3, H, W)`` RGB planes, in one vectorised pass.

    Args:
        pixels: ``(H, W, 3)`` uint8 BGR pixels (:func:`decode_bgr`).
        out: where to write the planes (e.g. a sample's slot of a batch), or None for new ones.
    """
    if out is None:
        out = np.empty((3, *pixels.shape[:2]), dtype=np.uint8)
    cv2.split(pixels, [out[2], out[1], out[0]])  # B, G, R into R, G, B planes
    return out


def decode_tensor(data: bytes, name: str) -> torch.Tensor:
    """Decode image bytes to a contiguous ``(3, H, W)`` uint8 RGB tensor.

    OpenCV decodes (:func:`decode_bgr`), then its interleaved pixels are split into the
    tensor's RGB planes (:func:`rgb_planes`). Decoders that return a channels-last view
    (torchvision's) leave that transposition to the collate, where it cost more than the
    decode itself.

    Raises:
        BadImageError: naming the image, if it is truncated or not an image.
    """
    return torch.from_numpy(rgb_planes(decode_bgr(data, name)))


def crop_box(
    image: Image.Image | torch.Tensor, box: np.ndarray, name: str
) -> Image.Image | torch.Tensor:
    """Crop the face box ``(x, y, w, h)``, clipped to the image (AffectNet's annotated boxes).

    Raises:
        BadImageError: naming the image ``name``, for a box that lies wholly outside it (so
            ``data.on_bad_image`` stops on it or skips and counts it).
    """
    if isinstance(image, Image.Image):
        height, width = image.height, image.width
    else:
        height, width = int(image.shape[-2]), int(image.shape[-1])
    x, y, w, h = (int(v) for v in box)
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, x + w), min(height, y + h)
    if right <= left or bottom <= top:
        raise BadImageError(
            f"{name}: face box x={x}, y={y}, w={w}, h={h} lies outside the {width}x{height} image"
        )
    if isinstance(image, Image.Image):
        return image.crop((left, top, right, bottom))
    return image[..., top:bottom, left:right]


def pixels_image(pixels: np.ndarray, decode: Decode) -> Image.Image | torch.Tensor:
    """Turn a grayscale ``(H, W)`` uint8 array (FER2013's CSV pixels) into an RGB image."""
    if decode == "pil":
        return Image.fromarray(pixels, "L").convert("RGB")
    return torch.from_numpy(np.ascontiguousarray(pixels))[None].expand(3, -1, -1).contiguous()


class FrameDataset(Dataset):
    """The samples of one split: video frames or still images, from files, shards or pixels.

    Each item is a dict with ``image``, ``label``, ``index`` (the position in the split) and
    ``valid`` (False only for a bad image skipped under ``on_bad_image="skip"``: its image is a
    blank stand-in, and consumers must leave it out and count it). A transform that returns a
    dict (``data.augment_on=device``) adds its entries, e.g. the augmentation draws.

    An image is read from its file (``<images_dir>/<path>``), its tar shard (packed sets) or the
    split's pixels (CSV datasets); then its face box is cropped (``split.boxes``), and with
    ``image_size`` set it is resized to ``image_size`` x ``image_size`` (antialiased bilinear),
    so that datasets of mixed image sizes batch on the fast path.

    With :attr:`fetch_batches` set (the data module's loaders set it, with
    ``collate_fn=collate_samples``), the DataLoader's batched fetch on the fast path
    (:meth:`__getitems__`) makes the whole batch itself; otherwise any DataLoader and collate
    work as with a plain dataset.

    Args:
        split: the split's index.
        images_dir: the folder that the split's image paths are relative to.
        transform: called as ``transform(image, epoch, index)``.
        decode: ``"pil"`` (a PIL image goes to the transform) or ``"tensor"`` (a uint8 tensor).
        packed_split: for a split packed into shards (``split.packed`` set), the name of the
            split whose shards in ``images_dir`` hold its images (``train``, ``val``, ``test``).
        native_size: ``(height, width)`` of the images; the blank stand-in for a skipped image.
        on_bad_image: ``"error"`` (raise, naming the file) or ``"skip"``.
        image_size: resize every image to this square size after cropping, or None to keep
            the images' own size.
    """

    def __init__(
        self,
        split: SplitIndex,
        images_dir: Path,
        transform: Callable[[Any, int, int], Any],
        decode: Decode = "pil",
        packed_split: str | None = None,
        native_size: tuple[int, int] = (112, 112),
        on_bad_image: OnBadImage = "error",
        image_size: int | None = None,
    ) -> None:
        check_on_bad_image(on_bad_image)
        self.split = split
        self.images_dir = Path(images_dir)
        # file names are joined as strings: pathlib cost ~60 us per sample on the fast path
        self.images_prefix = os.path.join(str(self.images_dir), "")
        self._shard_prefixes: dict[int, str] = {}
        self.transform = transform
        self.decode = decode
        self.decode_bytes = decode_pil if decode == "pil" else decode_tensor
        self.packed = PackedReader(self.images_dir, packed_split) if split.packed else None
        self.native_size = native_size
        self.on_bad_image = on_bad_image
        self.image_size = image_size
        #: Let :meth:`__getitems__` return made batches (for a loader with ``collate_samples``).
        self.fetch_batches = False

    def __len__(self) -> int:
        return len(self.split)

    def image_path(self, index: int) -> Path:
        """Return the image file of sample ``index`` (for packed frames: shard and member)."""
        return Path(self.image_file(index))

    def image_file(self, index: int) -> str:
        """Return :meth:`image_path` as a string (cheap: no pathlib per sample)."""
        if self.packed is None:
            return self.images_prefix + self.split.image_relpath(index)
        shard = int(self.split.packed[0][index])
        prefix = self._shard_prefixes.get(shard)
        if prefix is None:
            prefix = self._shard_prefixes[shard] = os.path.join(self.packed.shard_path(shard), "")
        return prefix + self.split.image_relpath(index)

    def read_bytes(self, index: int, name: str | None = None) -> bytes:
        """Return the encoded image of sample ``index`` (not for pixel datasets).

        Args:
            index: the sample.
            name: its :meth:`image_file`, if already known.

        Raises:
            BadImageError: naming the file if it cannot be read.
        """
        try:
            if self.packed is None:
                with open(name or self.image_file(index), "rb") as f:
                    return f.read()
            shard, offset, size = (int(a[index]) for a in self.split.packed)
            return self.packed.read(shard, offset, size)
        except OSError as err:
            raise BadImageError(f"{self.image_file(index)}: cannot read image: {err}") from err

    def read_bgr(self, index: int) -> np.ndarray:
        """Return sample ``index``'s file decoded to ``(H, W, 3)`` BGR pixels (:func:`decode_bgr`).

        Raises:
            BadImageError: naming the file if it cannot be read or decoded.
        """
        name = self.image_file(index)
        return decode_bgr(self.read_bytes(index, name), name)

    def load_image(self, index: int) -> Image.Image | torch.Tensor:
        """Return sample ``index``'s RGB image: read, decoded, cropped and sized.

        Raises:
            BadImageError: naming the file if it cannot be read or decoded.
        """
        if self.split.pixels is not None and self.packed is None:
            image = pixels_image(self.split.pixels[index], self.decode)
        else:
            name = self.image_file(index)
            image = self.decode_bytes(self.read_bytes(index, name), name)
        if self.split.boxes is not None:
            image = crop_box(image, self.split.boxes[index], self.image_file(index))
        if self.image_size is not None:
            image = resize(image, self.image_size, self.image_size)
        return image

    def _blank(self) -> Image.Image | torch.Tensor:
        height, width = self.native_size
        if self.decode == "pil":
            return Image.new("RGB", (width, height))
        return torch.zeros(3, height, width, dtype=torch.uint8)

    def read_or_skip(self, index: int, read: Callable[[int], Any]) -> Any:
        """Return ``read(index)``, or None for an image skipped under ``on_bad_image="skip"``.

        A skipped image is logged; the caller puts a blank in its place and marks it invalid.

        Raises:
            BadImageError: under ``on_bad_image="error"``, naming the file.
        """
        try:
            return read(index)
        except BadImageError:
            if self.on_bad_image == "error":
                raise
            log.warning("skipping unreadable image %s", self.image_file(index))
            return None

    def check_size(self, index: int, height: int, width: int) -> None:
        """Check that sample ``index``'s image has the one size the fast path batches.

        Raises:
            BadImageError: naming the file, if ``(height, width)`` is not :attr:`native_size`.
        """
        if (height, width) != tuple(self.native_size):
            raise BadImageError(
                f"{self.image_file(index)}: image is {(height, width)}, the first "
                f"{tuple(self.native_size)}; data.augment_on=device batches images at one size, "
                "so set data.image_size=N to resize every image to N x N when it is read (or "
                "use data.augment_on=cpu)"
            )

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        index, epoch = split_key(key)
        image = self.read_or_skip(index, self.load_image)
        valid = image is not None
        if image is None:
            image = self._blank()
        if self.decode == "tensor":
            self.check_size(index, int(image.shape[-2]), int(image.shape[-1]))
        out = self.transform(image, epoch, index)
        sample = out if isinstance(out, dict) else {"image": out}
        return {**sample, **split_targets(self.split, index), "index": index, "valid": valid}

    def __getitems__(self, keys: list[int | SampleKey]) -> list[dict[str, Any]] | dict[str, Any]:
        """The DataLoader's batched fetch: on the fast path, the batch itself, made in place.

        With :attr:`fetch_batches` set, ``decode="tensor"`` and a transform that draws for whole
        batches
        (:class:`~fer_multires.data.transforms.DeviceWorkerTransform`), every image is decoded
        straight into its slot of one uint8 batch tensor, and the draws of all samples are
        made at once; inside a DataLoader worker the batch's tensors are allocated in shared
        memory, as ``default_collate`` would (:func:`batch_tensor`). The batch holds exactly what
        ``default_collate`` makes of the samples ``[self[k] for k in keys]``, and
        :func:`collate_samples` passes it through. Otherwise this returns those samples.
        """
        batch_draws = getattr(self.transform, "batch_draws", None)
        if not self.fetch_batches or self.decode != "tensor" or batch_draws is None:
            return [self[key] for key in keys]
        keyed = np.array([split_key(key) for key in keys], dtype=np.int64).reshape(-1, 2)
        indices, epochs = keyed[:, 0], keyed[:, 1]
        images = batch_tensor((len(keys), 3, *self.native_size), torch.uint8)
        valid = self.load_into(images.numpy(), indices)
        columns = {**split_targets(self.split, indices), "index": indices, "valid": valid,
                   **batch_draws(epochs, indices, *self.native_size)}  # fmt: skip
        return {"image": images, **numbers_tensors(columns)}

    def load_into(self, slots: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Read the images of ``indices`` into ``slots``, ``(N, 3, H, W)`` uint8 planes.

        A JPEG or PNG file used as it is (no face box, no resizing) is decoded straight into
        its slot; any other image is loaded as by :meth:`load_image` and copied.

        Returns:
            Per sample, whether its image was read (False only under ``on_bad_image="skip"``:
            its slot is blank).

        Raises:
            BadImageError: naming the file, if an image cannot be read (``on_bad_image="error"``)
                or is not :attr:`native_size`.
        """
        direct = self.split.pixels is None and self.split.boxes is None and self.image_size is None
        valid = np.ones(len(indices), dtype=bool)
        read = self.read_bgr if direct else (lambda index: self.load_image(index).numpy())
        for slot, index in enumerate(indices.tolist()):
            image = self.read_or_skip(index, read)  # direct: (H, W, 3) BGR; else (3, H, W) RGB
            if image is None:
                slots[slot], valid[slot] = 0, False
                continue
            self.check_size(index, *(image.shape[:2] if direct else image.shape[1:]))
            if direct:
                rgb_planes(image, slots[slot])
            else:
                slots[slot] = image
        return valid


def ignore_interrupts(worker_id: int) -> None:
    """A loader worker's start: leave Ctrl-C to the main process.

    Ctrl-C in a terminal signals every process of the command, workers included. A worker that
    stopped on it would end the epoch with "worker exited unexpectedly" before the main process
    saves ``last.ckpt`` at the step's end (:class:`~fer_multires.callbacks.LastCheckpoint`); the
    main process stops the workers when it exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def split_key(key: int | SampleKey) -> SampleKey:
    """Return ``(index, epoch)`` of a sampler key (a bare index is epoch 0)."""
    index, epoch = (key, 0) if isinstance(key, int | np.integer) else key
    return int(index), int(epoch)


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return a new tensor for a batch: in shared memory inside a DataLoader worker.

    That is where ``default_collate`` puts a worker's batch, so handing it to the main process
    copies nothing; in the main process it is ordinary memory.
    """
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    like = torch.empty(0, dtype=dtype)
    storage = like._typed_storage()._new_shared(math.prod(shape))
    return like.new(storage).view(shape)


#: The per-sample target columns a batch carries beyond the expression ``label``, when its split
#: has them (:class:`~fer_multires.data.readers.index.SplitIndex`): valence-arousal and AUs.
TARGET_KEYS: tuple[str, ...] = ("va", "au")


def split_targets(split: SplitIndex, index: Any) -> dict[str, Any]:
    """Return the targets of sample(s) ``index`` of a split, as a batch holds them.

    ``label`` (the expression, -1 where a multi-task frame has none), and where the split has
    them ``va`` (valence, arousal; NaN where missing) and ``au`` (0/1, -1 where missing).
    """
    targets: dict[str, Any] = {"label": split.label[index]}
    if np.ndim(index) == 0:
        targets["label"] = int(targets["label"])
    for key in TARGET_KEYS:
        values = getattr(split, key, None)
        if values is not None:
            targets[key] = values[index]
    return targets


def numbers_tensors(columns: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Turn per-sample number columns into tensors, as ``default_collate`` does.

    Integers become ``int64`` rows of one tensor and booleans ``bool`` rows of another (two
    allocations and two shared-memory handles per batch, instead of one per column). A column of
    vectors (the ``va`` and ``au`` targets) keeps its dtype and shape, in its own tensor.
    """
    groups: dict[torch.dtype, list[str]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, values in columns.items():
        if values.ndim > 1:
            tensors[name] = batch_tensor(values.shape, torch.from_numpy(values[:0]).dtype)
            tensors[name].numpy()[:] = values
            continue
        groups.setdefault(torch.bool if values.dtype == np.bool_ else torch.int64, []).append(name)
    for dtype, names in groups.items():
        block = batch_tensor((len(names), len(columns[names[0]])), dtype)
        block.numpy()[:] = np.stack([columns[name] for name in names])
        tensors |= {name: block[row] for row, name in enumerate(names)}
    return {name: tensors[name] for name in columns}


def collate_samples(data: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """The collate of the data module's loaders.

    A batch that :meth:`FrameDataset.__getitems__` already made goes through as it is; a list
    of samples goes to ``default_collate``.
    """
    return data if isinstance(data, dict) else default_collate(data)


def batch_targets(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a batch's targets by head (``expr``: the ``label``; ``va``, ``au``) and ``index``."""
    targets = {"expr": batch["label"], "index": batch["index"]}
    targets.update({key: batch[key] for key in TARGET_KEYS if key in batch})
    return targets


def readable_part(
    batch: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Split a collated batch into its readable samples and a count of the others.

    Samples whose image could not be read (``valid`` False, under ``data.on_bad_image=skip``)
    must be left out of losses and metrics and counted; this is the one place that does it.

    Returns:
        ``(images, targets, dropped)``: the readable samples' images, their targets
        (:func:`batch_targets`: per head, and the split ``index``), and the number of samples
        left out (a 0-d tensor, so no host sync is needed to count it).
    """
    valid = batch["valid"].bool()
    dropped = (~valid).sum()
    targets = batch_targets(batch)
    if bool(valid.all()):
        return batch["image"], targets, dropped
    return batch["image"][valid], {k: v[valid] for k, v in targets.items()}, dropped


#: Batch key set on the host before the transfer: how many samples could not be read.
UNREADABLE_KEY = "_unreadable"


def count_unreadable(batch: Any) -> Any:
    """Record in a collated batch, on the host, how many of its samples could not be read.

    Called before the batch moves to the device, where reading ``valid`` back would wait for
    every queued kernel. Batches without a ``valid`` entry are returned as they are.
    """
    if isinstance(batch, dict) and torch.is_tensor(batch.get("valid")):
        valid = batch["valid"]
        batch[UNREADABLE_KEY] = len(valid) - int(valid.bool().sum()) if valid.is_cpu else None
    return batch


def readable_samples(
    batch: dict[str, Any],
) -> tuple[torch.Tensor, dict[str, torch.Tensor], int | torch.Tensor]:
    """Return ``(images, targets, unreadable)`` of a batch's readable samples.

    With the host-side count of :func:`count_unreadable` a fully readable batch is used as it is,
    without a host sync; otherwise :func:`readable_part` selects.
    """
    unreadable = batch.get(UNREADABLE_KEY)
    if unreadable == 0:
        return batch["image"], batch_targets(batch), 0
    images, targets, dropped = readable_part(batch)
    return images, targets, dropped if unreadable is None else unreadable


class PartitionSampler(Sampler[SampleKey]):
    """Yields ``(index, epoch)`` keys for one process's share of a dataset.

    Training (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, cut to a multiple of
    ``num_replicas`` so every process runs the same number of steps, and dealt round-robin.
    Evaluation (``shuffle=False``): indices ``rank, rank + R, ...`` with no padding, so the
    partitions are disjoint and cover every sample exactly once; their lengths differ by at most
    one.

    Lightning calls :meth:`set_epoch` before each epoch (also after resuming from a checkpoint).

    Stateful: :attr:`position` counts this process's samples of the current epoch already
    delivered to training (the loader advances it, see
    :class:`~fer_multires.data.loaders.ResumableLoader`); :meth:`state_dict` and
    :meth:`load_state_dict` carry ``(epoch, position)`` through a checkpoint, and the next
    iteration starts at ``position``, so a run resumed mid-epoch sees the same remaining keys
    (order and augmentation draws) as one that never stopped. Every process runs the same number
    of steps, so rank 0's position holds for all ranks.

    Args:
        num_samples: size of the dataset.
        shuffle: permute per epoch (training) or keep order (evaluation).
        seed: seed of the permutation.
        num_replicas: number of processes.
        rank: this process's rank.
    """

    def __init__(
        self,
        num_samples: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.position = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose permutation and augmentation draws are used.

        A new epoch starts at its first sample; setting the current epoch again (as Lightning
        does after a mid-epoch resume) keeps the position.
        """
        if int(epoch) != self.epoch:
            self.position = 0
        self.epoch = int(epoch)

    def advance(self, count: int) -> None:
        """Record that ``count`` more samples of this epoch were delivered to training."""
        self.position = min(self.position + count, len(self))

    def state_dict(self) -> dict[str, int]:
        """Return ``{"epoch", "position"}``: where the next iteration starts."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: its epoch, from its position.

        Raises:
            ValueError: if the position is outside this epoch's samples (a checkpoint of a
                different dataset size, batch size or number of processes).
        """
        epoch, position = int(state["epoch"]), int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError(
                f"the checkpoint's training sampler stopped at sample {position} of epoch {epoch}, "
                f"but this process's epoch has {len(self)} samples: resume with the data, "
                "data.batch_size and number of processes the run was started with"
            )
        self.epoch, self.position = epoch, position

    def indices(self) -> np.ndarray:
        """Return this process's indices for the current epoch."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
            usable = self.num_samples - self.num_samples % self.num_replicas
            return order[:usable][self.rank :: self.num_replicas]
        return np.arange(self.rank, self.num_samples, self.num_replicas)

    def __iter__(self) -> Iterator[SampleKey]:
        epoch = self.epoch
        return iter([(int(i), epoch) for i in self.indices()[self.position :]])

    def __len__(self) -> int:
        if self.shuffle:
            return self.num_samples // self.num_replicas
        return len(range(self.rank, self.num_samples, self.num_replicas))
