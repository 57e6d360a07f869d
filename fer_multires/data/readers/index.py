"""The compact index that every dataset reader produces.

A :class:`DatasetIndex` holds a dataset's class names (canonical names, see
:mod:`fer_multires.data.labels`) and one :class:`SplitIndex` per split. A split is parallel numpy
arrays, never one Python object per sample, so millions of samples fit in tens of MB and
DataLoader workers do not copy it page by page as they read it.

Two kinds of split:

* video frames (Aff-Wild2): per sample its video (``video_id`` into ``video_names``) and frame
  number; the image is ``<images_dir>/<video>/<frame:05d>.jpg``;
* images (RAF-DB, FER2013, FERPlus, AffectNet, image folders): per sample its name in ``paths``
  (a path relative to ``images_dir``, or for images stored in a CSV file ``<file>:<line>``), and
  optionally the decoded pixels (``pixels``, CSV datasets) or a face box to crop (``boxes``).

Besides the expression label, a split may carry the targets of ABAW's other tracks (see
:mod:`fer_multires.tasks`): ``va``, valence and arousal (float32, NaN where not annotated) and
``au``, twelve action units (int8, -1 where not annotated). The annotation files' own markers
(-5, -1) are translated by the reader; NaN keeps a missing valence out of any sum loudly.

What a reader leaves out is counted by name in :class:`SkipCounts`, never dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASKS, VA_NAMES

#: The splits a dataset may have, in order; ``train`` and ``val`` are required.
DATASET_SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The image file extensions that still-image readers accept (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")


class DatasetFormatError(ValueError):
    """A dataset file or folder that does not follow its dataset's format."""


def require_root(root: str | Path) -> Path:
    """Return ``root`` as a path.

    Raises:
        FileNotFoundError: naming ``data.root`` if it does not exist.
        NotADirectoryError: naming ``data.root`` if it is a file.
    """
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"data.root: {path} is a file, not the dataset's folder")
    if not path.is_dir():
        raise FileNotFoundError(f"data.root: dataset folder {path} does not exist")
    return path


def not_utf8(path: Path, line: int, byte: int, column: int) -> DatasetFormatError:
    """The error for a byte that is not UTF-8, naming the file, line, byte and column."""
    return DatasetFormatError(
        f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x} at column {column}); expected a "
        "UTF-8 (or ASCII) text file"
    )


def text_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a UTF-8 text file (a leading byte-order mark removed), decoded one by one.

    Decoding line by line lets an encoding error name its line, which ``open(encoding=...)``
    cannot; the lines can feed :func:`csv.reader` directly.

    Raises:
        DatasetFormatError: for a line that is not UTF-8, naming the file, line and byte.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise not_utf8(path, number, raw[err.start], err.start + 1) from None
            yield line


def read_text(path: Path) -> str:
    """Read a whole UTF-8 text file (a leading byte-order mark removed) in one decode.

    The fast path for large files read whole (Aff-Wild2's label files); an encoding error still
    names its line, as :func:`text_lines` does.

    Raises:
        DatasetFormatError: for a file that is not UTF-8, naming the file, line and byte.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        number = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise not_utf8(path, number, data[err.start], column) from None


def image_split(
    labels: list[int] | np.ndarray,
    paths: list[str],
    skipped: SkipCounts,
    boxes: np.ndarray | None = None,
    pixels: np.ndarray | None = None,
) -> SplitIndex:
    """Build a still-image split from per-image labels and names.

    Names are stored as the file system's bytes (:func:`os.fsencode`), so any name the OS
    lists (non-ASCII, or bytes that are not UTF-8) round-trips through
    :meth:`SplitIndex.image_relpath`.
    """
    encoded = [os.fsencode(path) for path in paths]
    return SplitIndex(
        label=np.asarray(labels, dtype=np.int8).reshape(-1),
        paths=np.array(encoded, dtype="S") if encoded else np.zeros(0, dtype="S1"),
        boxes=boxes,
        pixels=pixels,
        skipped=skipped,
    )


class SkipCounts:
    """Named counts of what a reader left out; each dataset has its own fixed names.

    Reading a count as an attribute (``skipped.missing_image``) works as well as
    ``skipped["missing_image"]``.

    Args:
        names: the count names, in the order they are reported.
        counts: initial counts (names not listed start at 0).

    Raises:
        KeyError: for a count whose name is not in ``names``.
    """

    def __init__(self, names: Iterable[str], counts: Mapping[str, int] | None = None) -> None:
        self._counts = dict.fromkeys(names, 0)
        for name, value in (counts or {}).items():
            self.count(name, int(value))

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the count ``name``.

        Raises:
            KeyError: if ``name`` is not one of this dataset's count names.
        """
        if name not in self._counts:
            expected = ", ".join(self._counts)
            raise KeyError(f"unknown skip count {name!r}; expected one of {expected}")
        self._counts[name] += int(n)

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("_counts", {})
        if name in counts:
            return counts[name]
        raise AttributeError(name)

    def add(self, other: SkipCounts) -> None:
        """Add another set of counts (with the same or fewer names) to this one in place."""
        for name, value in other.as_dict().items():
            self.count(name, value)

    def names(self) -> tuple[str, ...]:
        """Return the count names, in order."""
        return tuple(self._counts)

    def total(self) -> int:
        """Return the sum of all counts."""
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict, in order."""
        return dict(self._counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SkipCounts) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"SkipCounts({self._counts})"


#: The per-sample array fields of :class:`SplitIndex` (all indexed by sample).
SAMPLE_FIELDS: tuple[str, ...] = (
    "label", "video_id", "frame", "paths", "boxes", "pixels", "va", "au",
)  # fmt: skip
#: The per-sample targets of the valence-arousal and action-unit tracks: their columns.
TARGET_COLUMNS: dict[str, tuple[str, ...]] = {"va": VA_NAMES, "au": AU_NAMES}


@dataclass
class SplitIndex:
    """The samples of one split as parallel numpy arrays.

    Attributes:
        label: per sample, its class index into the dataset's classes (int8); -1 where the
            sample has no expression label (every sample of a ``va`` or ``au`` index; the frames
            of an ``mtl`` index that only other tracks annotate).
        video_names: video names (video datasets); ``video_id`` holds indices into this list.
        video_id: per frame, the index of its video in ``video_names`` (int32); None for image
            datasets.
        frame: per frame, its 1-based frame number (int32), the image ``{frame:05d}.jpg``; None
            for image datasets.
        paths: per image, its name (numpy bytes, :func:`os.fsencode`): a path relative to the
            images folder, or ``<file>:<line>`` for an image stored in a CSV file; None for video
            datasets.
        boxes: per image, the face box ``(x, y, w, h)`` to crop after decoding (int32, ``(N,
            4)``), or None to keep whole images.
        pixels: per image, its decoded grayscale pixels (uint8, ``(N, H, W)``), for datasets
            that store images in a CSV file; None where images are files.
        skipped: what was left out of this split.
        missing_videos: names of annotation files without a frame folder (video datasets).
        packed: for samples packed into tar shards (see :mod:`fer_multires.data.readers.packed`),
            per sample its shard number, byte offset and size (three int64 arrays); None
            otherwise.
        va: per sample, valence and arousal in [-1, 1] (float32, ``(N, 2)``, columns in
            :data:`~fer_multires.tasks.VA_NAMES` order); both NaN where the frame has no
            valence-arousal annotation. None where the index holds no such targets (``expr``,
            ``au``).
        au: per sample, each action unit 0 or 1 (int8, ``(N, 12)``, columns in
            :data:`~fer_multires.tasks.AU_NAMES` order); -1 where that unit is not annotated.
            None where the index holds no such targets (``expr``, ``va``).
    """

    label: np.ndarray
    video_names: list[str] = field(default_factory=list)
    video_id: np.ndarray | None = None
    frame: np.ndarray | None = None
    paths: np.ndarray | None = None
    boxes: np.ndarray | None = None
    pixels: np.ndarray | None = None
    skipped: SkipCounts = field(default_factory=lambda: SkipCounts(()))
    missing_videos: list[str] = field(default_factory=list)
    packed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    va: np.ndarray | None = None
    au: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.video_id is None) == (self.paths is None):
            raise ValueError("a split has either video frames (video_id, frame) or image paths")
        for name in SAMPLE_FIELDS[1:]:
            values = getattr(self, name)
            if values is not None and len(values) != len(self.label):
                raise ValueError(f"{name} has {len(values)} entries for {len(self.label)} labels")
        for name, columns in TARGET_COLUMNS.items():
            values = getattr(self, name)
            if values is not None and (values.ndim != 2 or values.shape[1] != len(columns)):
                raise ValueError(
                    f"{name} has shape {values.shape}; expected (samples, {len(columns)}): "
                    f"{', '.join(columns)}"
                )

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def has_videos(self) -> bool:
        """True for video frames (temporal smoothing applies), False for still images."""
        return self.video_id is not None

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Return the number of samples of each class (int64, length ``num_classes``).

        Samples without an expression label (-1) are not counted.
        """
        labels = self.label[self.label >= 0].astype(np.int64)
        return np.bincount(labels, minlength=num_classes)[:num_classes]

    def num_videos_with_frames(self) -> int:
        """Return how many videos contributed at least one frame (0 for image datasets)."""
        return 0 if self.video_id is None else int(np.unique(self.video_id).size)

    def image_relpath(self, i: int) -> str:
        """Return sample ``i``'s name: its image path relative to the images folder.

        The name is decoded as the file system decodes names (:func:`os.fsdecode`), so a name
        whose bytes are not UTF-8 opens the same file it was listed as.
        """
        if self.paths is not None:
            return os.fsdecode(self.paths[i])
        return f"{self.video_names[self.video_id[i]]}/{int(self.frame[i]):05d}.jpg"

    def take(self, rows: np.ndarray) -> SplitIndex:
        """Return the samples at ``rows`` (in that order); video names are kept as they are.

        Skip counts are not carried over: they describe the split as read from disk.
        """
        rows = np.asarray(rows, dtype=np.int64)
        arrays = {
            name: None if getattr(self, name) is None else getattr(self, name)[rows]
            for name in SAMPLE_FIELDS
        }
        packed = None if self.packed is None else tuple(a[rows] for a in self.packed)
        return SplitIndex(**arrays, video_names=list(self.video_names), packed=packed)

    def subset(self, video_names: list[str]) -> SplitIndex:
        """Return the frames of the given videos, with video indices renumbered."""
        wanted = sorted(set(video_names))
        old_ids = np.array([self.video_names.index(name) for name in wanted], dtype=np.int64)
        remap = np.full(len(self.video_names), -1, dtype=np.int32)
        remap[old_ids] = np.arange(len(wanted), dtype=np.int32)
        part = self.take(np.flatnonzero(remap[self.video_id] >= 0))
        part.video_names = wanted
        part.video_id = remap[part.video_id]
        return part

    def annotated_videos(self) -> list[str]:
        """Return every video with an annotation file, with or without frames."""
        return self.video_names + self.missing_videos

    def nbytes(self) -> int:
        """Return the memory held by the per-sample arrays, in bytes."""
        return int(
            sum(getattr(self, f).nbytes for f in SAMPLE_FIELDS if getattr(self, f) is not None)
        )


@dataclass
class DatasetIndex:
    """Every split of one dataset.

    Attributes:
        name: the dataset (``affwild2``, ``rafdb``, ``fer2013``, ``ferplus``, ``affectnet``,
            ``folder``).
        classes: class names in label order (canonical names); empty for a ``va`` or ``au``
            index, which has no expression labels.
        layout: which of the dataset's layouts was read, in words (e.g. ``EXPR_Set``).
        images_dir: the folder that image paths are relative to.
        splits: ``train``, ``val`` and optionally ``test``.
        task: the task whose targets the splits carry (one of :data:`~fer_multires.tasks.TASKS`):
            ``expr`` labels only, ``va`` or ``au`` targets, or all three (``mtl``).
    """

    name: str
    classes: tuple[str, ...]
    layout: str
    images_dir: Path
    splits: dict[str, SplitIndex]
    task: str = DEFAULT_TASK

    def __post_init__(self) -> None:
        missing = [s for s in DATASET_SPLITS[:2] if s not in self.splits]
        if missing:
            raise ValueError(f"{self.name}: no {', '.join(missing)} split")
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task {self.task!r} is not one of {', '.join(TASKS)}")

    @property
    def num_classes(self) -> int:
        """Number of expression classes."""
        return len(self.classes)

    def skipped(self) -> SkipCounts:
        """Return the skip counts summed over every split."""
        names: list[str] = []
        for split in self.splits.values():
            names += [n for n in split.skipped.names() if n not in names]
        total = SkipCounts(names)
        for split in self.splits.values():
            total.add(split.skipped)
        return total
