"""Aff-Wild2 expression-track reader: annotation files and frame folders -> a compact index.

Both official layouts are read:

* ABAW 2020-21, 7 classes: ``<annotations>/EXPR_Set/{Training_Set,Validation_Set}/<video>.txt``;
* ABAW 2022 onward, 8 classes (adds ``Other``):
  ``<annotations>/EXPR_Classification_Challenge/{Train_Set,Validation_Set}`` (later renamed
  ``EXPR_Recognition_Challenge``).

Each annotation file has a header line with the class names, then one integer per video frame:
the class index, or -1 for a frame that is not annotated. Label line ``i`` (1-based, after the
header) belongs to the image ``<frames>/<video>/{i:05d}.jpg``. Frames where no face was detected
are absent, so the reader walks the frames on disk and indexes into the labels.

What is left out is counted, never dropped silently (see :data:`SKIP_COUNT_NAMES`). The index
holds numpy arrays, not one Python object per frame (see
:mod:`fer_multires.data.readers.index`), so 2.6M frames fit in a few tens of MB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_8, UNLABELLED
from fer_multires.data.readers.index import (
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    SplitIndex,
    read_text,
    require_root,
)

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val")
#: Default folder of the annotations under the dataset root (``data.annotations_dir``).
ANNOTATIONS_DIR = "annotations"
#: Default folder of the cropped-aligned frames under the dataset root (``data.frames_dir``).
FRAMES_DIR = "cropped_aligned"


@dataclass(frozen=True)
class Layout:
    """One official annotation layout of the expression track.

    Attributes:
        task_dir: folder name under the annotations root.
        split_dirs: folder name of each split (``train``, ``val``) under ``task_dir``.
        classes: class names, in label order, as the header line lists them.
    """

    task_dir: str
    split_dirs: dict[str, str]
    classes: tuple[str, ...]


#: The ABAW 2020-21 layout, 7 classes.
EXPR_SET_LAYOUT = Layout(
    "EXPR_Set", {"train": "Training_Set", "val": "Validation_Set"}, EXPRESSIONS_7
)

LAYOUTS: tuple[Layout, ...] = (
    EXPR_SET_LAYOUT,
    Layout(
        "EXPR_Classification_Challenge",
        {"train": "Train_Set", "val": "Validation_Set"},
        EXPRESSIONS_8,
    ),
    Layout(
        "EXPR_Recognition_Challenge",
        {"train": "Train_Set", "val": "Validation_Set"},
        EXPRESSIONS_8,
    ),
)


class AnnotationError(DatasetFormatError):
    """An annotation file or folder that does not follow the Aff-Wild2 format."""


#: What the reader leaves out, by name (see :class:`~fer_multires.data.readers.index.SkipCounts`):
#:
#: * ``invalid_label``: frames on disk whose label is -1 (not annotated);
#: * ``missing_frame``: labelled frames (0..C-1) whose image is absent (no face detected);
#: * ``beyond_labels``: images whose frame number is past the last label line;
#: * ``videos_without_frames``: annotation files whose frame folder does not exist;
#: * ``unrecognised_name``: ``.jpg`` files whose name is not a frame number >= 1.
SKIP_COUNT_NAMES: tuple[str, ...] = (
    "invalid_label",
    "missing_frame",
    "beyond_labels",
    "videos_without_frames",
    "unrecognised_name",
)


def new_skip_counts() -> SkipCounts:
    """Return zero counts of every Aff-Wild2 skip reason."""
    return SkipCounts(SKIP_COUNT_NAMES)


def resolve_subdir(root: str | Path, subdir: str | Path, key: str) -> Path:
    """Resolve ``subdir`` against ``root`` (absolute paths are kept) and check it exists.

    Args:
        root: the dataset root (``data.root``).
        subdir: a path relative to the root, or absolute.
        key: the config key that set ``subdir``, named in the error.

    Raises:
        FileNotFoundError: if the folder does not exist.
    """
    path = Path(subdir)
    if not path.is_absolute():
        path = Path(root) / path
    if not path.is_dir():
        raise FileNotFoundError(f"{key}: folder {path} does not exist")
    return path


def resolve_frames_dir(
    root: str | Path, frames_dir: str | Path, frames_manifest: str | Path | None
) -> Path:
    """Resolve the frames folder; with a manifest it need not exist (yet) on this machine."""
    if frames_manifest is None:
        return resolve_subdir(root, frames_dir, "data.frames_dir")
    path = Path(frames_dir)
    return path if path.is_absolute() else Path(root) / path


def detect_layout(annotations_dir: Path) -> tuple[Layout, Path]:
    """Find which official layout ``annotations_dir`` holds.

    ``annotations_dir`` is the folder holding the task folder (``EXPR_Set`` etc.), or the task
    folder itself.

    Returns:
        The layout and the task folder.

    Raises:
        AnnotationError: if no task folder, or more than one, is found.
    """
    for layout in LAYOUTS:
        if annotations_dir.name == layout.task_dir:
            return layout, annotations_dir
    found = [layout for layout in LAYOUTS if (annotations_dir / layout.task_dir).is_dir()]
    if not found:
        names = ", ".join(layout.task_dir for layout in LAYOUTS)
        raise AnnotationError(
            f"data.annotations_dir: {annotations_dir} holds none of the expression-track "
            f"folders ({names})"
        )
    if len(found) > 1:
        names = ", ".join(str(annotations_dir / layout.task_dir) for layout in found)
        raise AnnotationError(
            f"data.annotations_dir: {annotations_dir} holds several expression-track folders "
            f"({names}); set data.annotations_dir to the one to read"
        )
    return found[0], annotations_dir / found[0].task_dir


def parse_annotation_text(text: str, path: Path, classes: tuple[str, ...]) -> np.ndarray:
    """Parse one annotation file's text into its labels, one per frame.

    Accepts CRLF line endings and trailing blank lines.

    Args:
        text: the file's contents.
        path: the file, named in errors.
        classes: the expected class names of the header line.

    Returns:
        int8 array of labels, element ``i`` for frame ``i + 1``.

    Raises:
        AnnotationError: for a wrong header, a line that is not an integer, or a label outside
            -1..C-1, naming the file and 1-based line number.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(f"{path}:1: empty annotation file (expected a header line)")
    header = tuple(name.strip() for name in lines[0].split(","))
    if header != classes:
        raise AnnotationError(
            f"{path}:1: header {lines[0].strip()!r} is not the expected class list "
            f"{','.join(classes)!r}"
        )
    body = lines[1:]
    try:
        labels = np.array(body, dtype=np.int64)
    except (ValueError, OverflowError):
        raise first_bad_label(body, path, len(classes)) from None
    bad = np.flatnonzero((labels < UNLABELLED) | (labels >= len(classes)))
    if bad.size:
        raise label_outside(path, int(bad[0]) + 2, int(labels[bad[0]]), len(classes))
    return labels.astype(np.int8)


def label_outside(path: Path, number: int, label: int, num_classes: int) -> AnnotationError:
    """The error for a label outside -1..C-1, naming the file and line."""
    return AnnotationError(f"{path}:{number}: label {label} is outside -1..{num_classes - 1}")


def first_bad_label(body: list[str], path: Path, num_classes: int) -> AnnotationError:
    """The error for the first label line that is not an integer -1..C-1 (line 2 is the first)."""
    for number, line in enumerate(body, start=2):
        try:
            label = int(line)
        except ValueError:
            return AnnotationError(f"{path}:{number}: {line.strip()!r} is not an integer label")
        if not UNLABELLED <= label < num_classes:
            return label_outside(path, number, label, num_classes)
    return AnnotationError(f"{path}: the labels are not integers -1..{num_classes - 1}")


def list_frame_numbers(video_dir: Path) -> tuple[np.ndarray, int]:
    """List the frame numbers of the ``.jpg`` images in one video folder.

    Files that are not ``.jpg`` are ignored.

    Returns:
        The sorted frame numbers (int64) and the number of ``.jpg`` files whose name is not a
        frame number >= 1.

    Raises:
        AnnotationError: for two images of one frame (``1.jpg`` and ``00001.jpg``), naming both.
    """
    with os.scandir(video_dir) as entries:
        names = [entry.name for entry in entries]
    return frame_numbers_from_names(names, lambda i: str(video_dir / names[i]))


FrameListing = dict[str, tuple[np.ndarray, int]]


def read_frame_manifest(path: Path) -> FrameListing:
    """Read a manifest of frame images instead of listing the frame folders.

    One path per line, relative to the frames folder: ``<video>/<frame>.jpg``. Useful where
    listing folders is slow (network file systems) or the frames live elsewhere. Blank lines and
    names that are not ``.jpg`` are ignored, like files in a folder.

    Returns:
        Per video, its sorted frame numbers and the number of ``.jpg`` names that are not a
        frame number >= 1.

    Raises:
        AnnotationError: for a line that is not ``<video>/<name>``, or a frame listed twice
            (``00001.jpg`` twice, or as ``1.jpg`` too), naming the line(s).
    """
    grouped: dict[str, tuple[list[str], list[int]]] = {}
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        entry = line.strip()
        if not entry:
            continue
        video, sep, name = entry.rpartition("/")
        if not sep or not video:
            raise AnnotationError(f"{path}:{number}: {entry!r} is not <video>/<frame>.jpg")
        names, lines = grouped.setdefault(video, ([], []))
        names.append(name)
        lines.append(number)
    return {
        video: frame_numbers_from_names(names, lambda i, lines=lines: f"{path}:{lines[i]}")
        for video, (names, lines) in grouped.items()
    }


def frame_numbers_from_names(
    names: list[str], where: Callable[[int], str]
) -> tuple[np.ndarray, int]:
    """Turn file names into sorted frame numbers; see :func:`list_frame_numbers`.

    Args:
        names: the file names of one video's frames.
        where: names the place of ``names[i]`` in an error (its file, or manifest line).

    Raises:
        AnnotationError: for two names of one frame number, naming both places.
    """
    first: dict[int, int] = {}
    unrecognised = 0
    for i, name in enumerate(names):
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".jpg":
            continue
        if not (stem.isdigit() and int(stem) >= 1):
            unrecognised += 1
        elif first.setdefault(int(stem), i) != i:
            raise AnnotationError(
                f"{where(i)}: a second image of frame {int(stem)} (the first: "
                f"{where(first[int(stem)])}); each frame must have one image"
            )
    return np.sort(np.array(list(first), dtype=np.int64)), unrecognised


def index_video(labels: np.ndarray, frame_numbers: np.ndarray) -> tuple[np.ndarray, SkipCounts]:
    """Match one video's frames on disk with its labels.

    Args:
        labels: the video's labels, element ``i`` for frame ``i + 1``.
        frame_numbers: the frame numbers of the images on disk.

    Returns:
        The frame numbers to keep (labelled, on disk) and what was skipped.
    """
    skipped = new_skip_counts()
    within = frame_numbers <= labels.shape[0]
    skipped.count("beyond_labels", np.count_nonzero(~within))
    frames = frame_numbers[within]
    frame_labels = labels[frames - 1]
    annotated = frame_labels != UNLABELLED
    skipped.count("invalid_label", np.count_nonzero(~annotated))
    kept = frames[annotated]
    skipped.count("missing_frame", np.count_nonzero(labels != UNLABELLED) - kept.size)
    return kept, skipped


def read_split(
    split_dir: Path,
    frames_dir: Path,
    classes: tuple[str, ...],
    manifest: FrameListing | None = None,
) -> SplitIndex:
    """Index one split: every ``<video>.txt`` in ``split_dir`` against its frame folder.

    With a ``manifest`` (see :func:`read_frame_manifest`) the frames are taken from it and the
    frame folders are not listed.

    Raises:
        AnnotationError: for a malformed annotation file, or a split folder with no files.
    """
    # any case of the suffix: a copy through some file systems upper-cases it (<video>.TXT)
    files = sorted(p for p in split_dir.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise AnnotationError(f"{split_dir}: no annotation files (<video>.txt)")
    videos: list[str] = []
    video_ids: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    skipped = new_skip_counts()
    missing_videos: list[str] = []
    for path in files:
        video_labels = parse_annotation_text(read_text(path), path, classes)
        listing = video_frames(frames_dir, path.stem, manifest)
        if listing is None:
            missing_videos.append(path.stem)
            continue
        frame_numbers, unrecognised = listing
        kept, video_skipped = index_video(video_labels, frame_numbers)
        video_skipped.count("unrecognised_name", unrecognised)
        skipped.add(video_skipped)
        video_ids.append(np.full(kept.size, len(videos), dtype=np.int32))
        frames.append(kept.astype(np.int32))
        labels.append(video_labels[kept - 1])
        videos.append(path.stem)
    skipped.count("videos_without_frames", len(missing_videos))
    return SplitIndex(
        video_names=videos,
        video_id=np.concatenate(video_ids) if video_ids else np.zeros(0, np.int32),
        frame=np.concatenate(frames) if frames else np.zeros(0, np.int32),
        label=np.concatenate(labels) if labels else np.zeros(0, np.int8),
        skipped=skipped,
        missing_videos=missing_videos,
    )


def video_frames(
    frames_dir: Path, video: str, manifest: FrameListing | None
) -> tuple[np.ndarray, int] | None:
    """Return a video's frame numbers and unrecognised-name count, or None if it has no folder."""
    if manifest is not None:
        return manifest.get(video)
    video_dir = frames_dir / video
    return list_frame_numbers(video_dir) if video_dir.is_dir() else None


def read_affwild2(
    root: str | Path,
    annotations_dir: str | Path = ANNOTATIONS_DIR,
    frames_dir: str | Path = FRAMES_DIR,
    frames_manifest: str | Path | None = None,
) -> DatasetIndex:
    """Read the train and validation splits of an Aff-Wild2 expression set.

    Args:
        root: the dataset root (``data.root``).
        annotations_dir: the annotations folder (``data.annotations_dir``), relative to the
            root or absolute.
        frames_dir: the cropped-aligned frames folder (``data.frames_dir``), relative to the
            root or absolute.
        frames_manifest: a file listing the frames (``data.frames_manifest``, see
            :func:`read_frame_manifest`), used instead of listing the frame folders.

    Returns:
        The index of both splits.

    Raises:
        FileNotFoundError: if the root or one of its folders does not exist.
        AnnotationError: for a malformed annotation file or layout, or a video in both splits.
    """
    require_root(root)
    annotations_path = resolve_subdir(root, annotations_dir, "data.annotations_dir")
    frames_path = resolve_frames_dir(root, frames_dir, frames_manifest)
    manifest = None
    if frames_manifest is not None:
        if not Path(frames_manifest).is_file():
            raise FileNotFoundError(f"data.frames_manifest: {frames_manifest} does not exist")
        manifest = read_frame_manifest(Path(frames_manifest))
    layout, task_dir = detect_layout(annotations_path)
    splits = {}
    for split in SPLITS:
        split_dir = task_dir / layout.split_dirs[split]
        if not split_dir.is_dir():
            raise AnnotationError(f"{task_dir}: split folder {layout.split_dirs[split]} is missing")
        splits[split] = read_split(split_dir, frames_path, layout.classes, manifest)
        if splits[split].missing_videos:
            log.warning(
                "%s: %d annotation files have no frame folder in %s: %s",
                split,
                len(splits[split].missing_videos),
                frames_path,
                ", ".join(splits[split].missing_videos),
            )
    shared = set(splits["train"].annotated_videos()) & set(splits["val"].annotated_videos())
    if shared:
        raise AnnotationError(
            f"{task_dir}: videos in both {layout.split_dirs['train']} and "
            f"{layout.split_dirs['val']}: {', '.join(sorted(shared))}"
        )
    return DatasetIndex(
        name="affwild2",
        classes=layout.classes,
        layout=layout.task_dir,
        images_dir=frames_path,
        splits=splits,
    )
