"""Aff-Wild2 reader: annotation files and frame folders -> a compact index, for every ABAW task.

The expression track's official layouts are read:

* ABAW 2020-21, 7 classes: ``<annotations>/EXPR_Set/{Training_Set,Validation_Set}/<video>.txt``;
* ABAW 2022 onward, 8 classes (adds ``Other``):
  ``<annotations>/EXPR_Classification_Challenge/{Train_Set,Validation_Set}`` (later renamed
  ``EXPR_Recognition_Challenge``).

Each annotation file has a header line with the class names, then one integer per video frame:
the class index, or -1 for a frame that is not annotated. Label line ``i`` (1-based, after the
header) belongs to the image ``<frames>/<video>/{i:05d}.jpg``. Frames where no face was detected
are absent, so the reader walks the frames on disk and indexes into the labels.

The other tracks (``task=va``, ``au``; ABAW 2023 onward) follow the same rules, line for frame:

* ``<annotations>/VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt``: header
  ``valence,arousal``, two numbers in [-1, 1] per line; -5 in either column marks a frame that is
  not annotated;
* ``<annotations>/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt``: header
  ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26``, twelve values 0 or 1 per line; -1
  marks a unit that is not annotated (a frame with every unit -1 is not annotated).

The header names the columns (any order of the expected names; each maps to its column by name).
``task=mtl`` reads the three sets and keeps every frame that at least one of them annotates, with
the others' targets marked missing (see :func:`index_split`). A video may have any subset of
the three files.

What is left out is counted, never dropped silently (see :data:`SKIP_COUNT_NAMES`). The index
holds numpy arrays, not one Python object per frame (see
:mod:`fer_multires.data.readers.index`), so 2.6M frames fit in a few tens of MB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
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
from fer_multires.tasks import (
    AU_MISSING,
    AU_NAMES,
    DEFAULT_TASK,
    TASK_HEADS,
    VA_MISSING,
    VA_NAMES,
    check_task,
)

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val")
#: Default folder of the annotations under the dataset root (``data.annotations_dir``).
ANNOTATIONS_DIR = "annotations"
#: Default folder of the cropped-aligned frames under the dataset root (``data.frames_dir``).
FRAMES_DIR = "cropped_aligned"


@dataclass(frozen=True)
class Layout:
    """One official annotation layout of a track (expressions, valence-arousal, action units).

    Attributes:
        task_dir: folder name under the annotations root.
        split_dirs: folder name of each split (``train``, ``val``) under ``task_dir``.
        classes: the header line's names: the expression classes in label order, or the
            valence-arousal or action-unit columns (in the order the index stores them).
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
#: The valence-arousal track (ABAW 2023 onward).
VA_LAYOUT = Layout(
    "VA_Estimation_Challenge", {"train": "Train_Set", "val": "Validation_Set"}, VA_NAMES
)
#: The action-unit track (ABAW 2023 onward).
AU_LAYOUT = Layout(
    "AU_Detection_Challenge", {"train": "Train_Set", "val": "Validation_Set"}, AU_NAMES
)
#: Each annotation set (a head of :data:`~fer_multires.tasks.TASK_HEADS`): its layouts, and the
#: track's name in errors.
SET_LAYOUTS: dict[str, tuple[tuple[Layout, ...], str]] = {
    "expr": (LAYOUTS, "expression-track"),
    "va": ((VA_LAYOUT,), "valence-arousal"),
    "au": ((AU_LAYOUT,), "action-unit"),
}


class AnnotationError(DatasetFormatError):
    """An annotation file or folder that does not follow the Aff-Wild2 format."""


#: What the reader leaves out, by name (see :class:`~fer_multires.data.readers.index.SkipCounts`):
#:
#: * ``invalid_label``: frames on disk whose label is -1 (not annotated; for ``va``, -5 in a
#:   column; for ``au``, every unit -1);
#: * ``missing_frame``: labelled frames (0..C-1) whose image is absent (no face detected);
#: * ``beyond_labels``: images whose frame number is past the last label line;
#: * ``videos_without_frames``: annotation files whose frame folder does not exist;
#: * ``unrecognised_name``: ``.jpg`` files whose name is not a frame number >= 1.
#:
#: ``task=mtl`` counts these for the union of the three sets (a frame is annotated if any set
#: annotates it; ``videos_without_frames`` counts videos), plus :data:`SET_SKIP_NAMES` per set.
SKIP_COUNT_NAMES: tuple[str, ...] = (
    "invalid_label",
    "missing_frame",
    "beyond_labels",
    "videos_without_frames",
    "unrecognised_name",
)
#: What :func:`index_frames` counts: one video's frames on disk against its annotation lines.
FRAME_SKIP_NAMES: tuple[str, ...] = SKIP_COUNT_NAMES[:3]
#: ``task=mtl``: per annotation set, ``<set>.<name>`` counts what that set's own reading would
#: count (``va.invalid_label`` equals ``invalid_label`` of ``task=va``), over the videos with
#: frames. These frames are not all left out: another set may annotate them; their ``<set>``
#: target is marked missing.
SET_SKIP_NAMES: tuple[str, ...] = SKIP_COUNT_NAMES[:4]


def skip_count_names(task: str = DEFAULT_TASK) -> tuple[str, ...]:
    """Return the skip-count names of a task's index, in the order they are reported."""
    heads = TASK_HEADS[check_task(task)]
    if len(heads) == 1:
        return SKIP_COUNT_NAMES
    return SKIP_COUNT_NAMES + tuple(f"{head}.{name}" for head in heads for name in SET_SKIP_NAMES)


def new_skip_counts(task: str = DEFAULT_TASK) -> SkipCounts:
    """Return zero counts of every Aff-Wild2 skip reason of ``task``."""
    return SkipCounts(skip_count_names(task))


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


def detect_layout(annotations_dir: Path, annotation_set: str = "expr") -> tuple[Layout, Path]:
    """Find which official layout of an annotation set ``annotations_dir`` holds.

    ``annotations_dir`` is the folder holding the task folder (``EXPR_Set``,
    ``VA_Estimation_Challenge`` etc.), or the task folder itself.

    Args:
        annotations_dir: the annotations folder (``data.annotations_dir``).
        annotation_set: ``expr``, ``va`` or ``au`` (see :data:`SET_LAYOUTS`).

    Returns:
        The layout and the task folder.

    Raises:
        AnnotationError: if no task folder, or more than one, is found.
    """
    layouts, track = SET_LAYOUTS[annotation_set]
    for layout in layouts:
        if annotations_dir.name == layout.task_dir:
            return layout, annotations_dir
    found = [layout for layout in layouts if (annotations_dir / layout.task_dir).is_dir()]
    if not found:
        names = ", ".join(layout.task_dir for layout in layouts)
        raise AnnotationError(
            f"data.annotations_dir: {annotations_dir} holds none of the {track} folders ({names})"
        )
    if len(found) > 1:
        names = ", ".join(str(annotations_dir / layout.task_dir) for layout in found)
        raise AnnotationError(
            f"data.annotations_dir: {annotations_dir} holds several {track} folders "
            f"({names}); set data.annotations_dir to the one to read"
        )
    return found[0], annotations_dir / found[0].task_dir


def annotation_lines(text: str, path: Path) -> list[str]:
    """Return an annotation file's lines, the header first, without trailing blank lines.

    Accepts CRLF line endings (a byte-order mark is removed when the file is read).

    Raises:
        AnnotationError: for a file without a header line, naming the file and line 1.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(f"{path}:1: empty annotation file (expected a header line)")
    return lines


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
    lines = annotation_lines(text, path)
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


def column_order(header: str, path: Path, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Map a header line's names onto the expected columns; the header decides the order.

    Args:
        header: the header line (``valence,arousal``, ``AU1,AU2,...``).
        path: the file, named in errors.
        columns: the expected names, in the order the index stores them.

    Returns:
        The file column of each expected column (``values[:, order]`` reorders a file's values),
        and the header's names in file order.

    Raises:
        AnnotationError: naming the file and line 1, for a header that is not a permutation of
            ``columns`` (an unknown, missing or repeated name).
    """
    names = [name.strip() for name in header.split(",")]
    if sorted(names) != sorted(columns):
        problems = [
            f"{what}: {', '.join(found)}"
            for what, found in (
                ("unknown", [n for n in names if n not in columns]),
                ("missing", [c for c in columns if c not in names]),
                ("repeated", sorted({n for n in names if names.count(n) > 1})),
            )
            if found
        ]
        raise AnnotationError(
            f"{path}:1: header {header.strip()!r} is not the expected columns "
            f"{','.join(columns)!r} (in any order); {'; '.join(problems)}"
        )
    return np.array([names.index(c) for c in columns], dtype=np.int64), names


def parse_table(
    body: list[str],
    path: Path,
    names: list[str],
    dtype: type[np.floating | np.integer],
    allowed: str,
) -> np.ndarray:
    """Parse the value lines of a valence-arousal or action-unit file, in file column order.

    Args:
        body: the lines after the header (line 2 is the first).
        path: the file, named in errors.
        names: the header's names, in file order.
        dtype: ``np.float64`` (valence-arousal) or ``np.int64`` (action units).
        allowed: the values allowed, in words, for an integer too large for ``dtype``.

    Returns:
        A ``(lines, columns)`` array.

    Raises:
        AnnotationError: for a line with another number of values than the header, or a value
            that is not a number (an integer, for ``np.int64``), naming the file and line.
    """
    width = len(names)
    commas = np.fromiter((line.count(",") for line in body), dtype=np.int64, count=len(body))
    wrong = np.flatnonzero(commas != width - 1)
    if wrong.size:
        i = int(wrong[0])
        raise AnnotationError(
            f"{path}:{i + 2}: {body[i].strip()!r} has {commas[i] + 1} values; expected {width} "
            f"({','.join(names)})"
        )
    if not body:
        return np.zeros((0, width), dtype=dtype)
    try:
        values = np.array(",".join(body).split(","), dtype=dtype)
    except (ValueError, OverflowError):
        raise first_bad_value(body, path, names, dtype, allowed) from None
    return values.reshape(len(body), width)


def first_bad_value(
    body: list[str],
    path: Path,
    names: list[str],
    dtype: type[np.floating | np.integer],
    allowed: str,
) -> AnnotationError:
    """The error for the first value that is not a number (or an integer), naming file and line."""
    convert, kind = (int, "an integer") if np.issubdtype(dtype, np.integer) else (float, "a number")
    for number, line in enumerate(body, start=2):
        for name, token in zip(names, line.split(","), strict=True):
            try:
                value = convert(token)
            except ValueError:
                return AnnotationError(f"{path}:{number}: {token.strip()!r} is not {kind} ({name})")
            try:
                dtype(value)
            except OverflowError:
                return AnnotationError(f"{path}:{number}: {name} {value} is outside {allowed}")
    return AnnotationError(f"{path}: the values are not {kind}s")


def value_outside(
    body: list[str],
    path: Path,
    bad: np.ndarray,
    order: np.ndarray,
    columns: tuple[str, ...],
    allowed: str,
) -> AnnotationError | None:
    """The error for the first value flagged in ``bad`` (lines x expected columns), or None."""
    rows = np.flatnonzero(bad.any(axis=1))
    if not rows.size:
        return None
    row = int(rows[0])
    column = int(np.flatnonzero(bad[row])[0])
    token = body[row].split(",")[order[column]].strip()
    return AnnotationError(f"{path}:{row + 2}: {columns[column]} {token} is outside {allowed}")


def parse_va_text(text: str, path: Path, columns: tuple[str, ...] = VA_NAMES) -> np.ndarray:
    """Parse a valence-arousal file: header ``valence,arousal`` (any order), two numbers a line.

    Args:
        text: the file's contents.
        path: the file, named in errors.
        columns: the expected names (:data:`~fer_multires.tasks.VA_NAMES`).

    Returns:
        float32 array ``(lines, 2)``, columns in ``columns`` order, row ``i`` for frame
        ``i + 1``; both values NaN where either column holds the marker -5 (not annotated).

    Raises:
        AnnotationError: for a wrong header (line 1), a line without two numbers, or a value
            outside [-1, 1] other than -5, naming the file and line.
    """
    lines = annotation_lines(text, path)
    order, names = column_order(lines[0], path, columns)
    body = lines[1:]
    allowed = f"[-1, 1] ({VA_MISSING:g} marks a frame that is not annotated)"
    values = parse_table(body, path, names, np.float64, allowed)[:, order]
    missing = (values == VA_MISSING).any(axis=1)
    bad = ~missing[:, None] & ~(np.abs(values) <= 1.0)  # NaN and infinities too
    error = value_outside(body, path, bad, order, columns, allowed)
    if error is not None:
        raise error
    out = values.astype(np.float32)
    out[missing] = np.nan
    return out


def parse_au_text(text: str, path: Path, columns: tuple[str, ...] = AU_NAMES) -> np.ndarray:
    """Parse an action-unit file: header ``AU1,...,AU26`` (any order), twelve 0/1 values a line.

    Args:
        text: the file's contents.
        path: the file, named in errors.
        columns: the expected names (:data:`~fer_multires.tasks.AU_NAMES`).

    Returns:
        int8 array ``(lines, 12)``, columns in ``columns`` order, row ``i`` for frame ``i + 1``;
        -1 where a unit is not annotated.

    Raises:
        AnnotationError: for a wrong header (line 1), a line without twelve integers, or a value
            other than 0, 1 or -1, naming the file and line.
    """
    lines = annotation_lines(text, path)
    order, names = column_order(lines[0], path, columns)
    body = lines[1:]
    allowed = f"0, 1 and {AU_MISSING} (not annotated)"
    values = parse_table(body, path, names, np.int64, allowed)[:, order]
    bad = (values != 0) & (values != 1) & (values != AU_MISSING)
    error = value_outside(body, path, bad, order, columns, allowed)
    if error is not None:
        raise error
    return values.astype(np.int8)


#: Each annotation set's parser: ``parse(text, path, header names) -> values`` (row i: frame i+1).
PARSERS: dict[str, Callable[[str, Path, tuple[str, ...]], np.ndarray]] = {
    "expr": parse_annotation_text,
    "va": parse_va_text,
    "au": parse_au_text,
}


def annotated_lines(annotation_set: str, values: np.ndarray) -> np.ndarray:
    """Return which lines of a parsed file annotate their frame (bool, one per line).

    An expression line with a class; a valence-arousal line without the marker; an action-unit
    line with at least one unit annotated.
    """
    if annotation_set == "expr":
        return values != UNLABELLED
    if annotation_set == "va":
        return ~np.isnan(values[:, 0])
    return (values != AU_MISSING).any(axis=1)


def missing_targets(annotation_set: str, count: int) -> np.ndarray:
    """Return ``count`` targets of an annotation set, every one marked missing.

    The in-memory markers: -1 for an expression label, NaN for valence-arousal, -1 for an
    action unit.
    """
    if annotation_set == "expr":
        return np.full(count, UNLABELLED, dtype=np.int8)
    if annotation_set == "va":
        return np.full((count, len(VA_NAMES)), np.nan, dtype=np.float32)
    return np.full((count, len(AU_NAMES)), AU_MISSING, dtype=np.int8)


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
    """Match one video's frames on disk with its expression labels.

    Args:
        labels: the video's labels, element ``i`` for frame ``i + 1``.
        frame_numbers: the frame numbers of the images on disk.

    Returns:
        The frame numbers to keep (labelled, on disk) and what was skipped.
    """
    return index_frames(labels != UNLABELLED, frame_numbers)


def index_frames(annotated: np.ndarray, frame_numbers: np.ndarray) -> tuple[np.ndarray, SkipCounts]:
    """Match one video's frames on disk with its annotation lines.

    Args:
        annotated: per line, whether it annotates its frame (element ``i`` for frame ``i + 1``).
        frame_numbers: the frame numbers of the images on disk.

    Returns:
        The frame numbers to keep (annotated, on disk) and what was skipped
        (``beyond_labels``, ``invalid_label``, ``missing_frame``).
    """
    skipped = SkipCounts(FRAME_SKIP_NAMES)
    within = frame_numbers <= annotated.shape[0]
    skipped.count("beyond_labels", np.count_nonzero(~within))
    frames = frame_numbers[within]
    on_disk_annotated = annotated[frames - 1]
    skipped.count("invalid_label", np.count_nonzero(~on_disk_annotated))
    kept = frames[on_disk_annotated]
    skipped.count("missing_frame", np.count_nonzero(annotated) - kept.size)
    return kept, skipped


def read_annotation_files(
    split_dir: Path, annotation_set: str, columns: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Parse every ``<video>.txt`` of one split folder of an annotation set.

    Returns:
        Per video, in file-name order, its parsed values (see :data:`PARSERS`).

    Raises:
        AnnotationError: for a malformed file, two files of one video, or a folder with no files.
    """
    # any case of the suffix: a copy through some file systems upper-cases it (<video>.TXT)
    files = sorted(p for p in split_dir.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise AnnotationError(f"{split_dir}: no annotation files (<video>.txt)")
    parse = PARSERS[annotation_set]
    videos: dict[str, np.ndarray] = {}
    for path in files:
        if path.stem in videos:
            raise AnnotationError(f"{path}: a second annotation file of video {path.stem!r}")
        videos[path.stem] = parse(read_text(path), path, columns)
    return videos


def index_split(
    sets: Mapping[str, Mapping[str, np.ndarray]],
    frames_dir: Path,
    manifest: FrameListing | None = None,
    task: str = DEFAULT_TASK,
) -> SplitIndex:
    """Index one split: each video's annotation files against its frames.

    With one annotation set (``expr``, ``va``, ``au``) a frame is kept where its line annotates
    it. With several (``mtl``) a frame is kept where at least one set annotates it; each set's
    target is marked missing where that set does not (a missing marker, a line past the end of
    its file, or no file for the video). The plain skip counts describe the frames left out;
    ``<set>.<name>`` counts describe each set on its own (see :data:`SET_SKIP_NAMES`).

    Args:
        sets: per annotation set of ``task``, per video its parsed values
            (:func:`read_annotation_files`).
        frames_dir: the frames folder.
        manifest: the frames listed in a file (:func:`read_frame_manifest`), used instead of
            listing the frame folders.
        task: the task (:data:`~fer_multires.tasks.TASKS`); its heads are the keys of ``sets``.

    Returns:
        The split: ``label`` (-1 where not annotated), ``va`` and ``au`` where the task has them.
    """
    heads = TASK_HEADS[task]
    single = len(heads) == 1
    # one set: the files' order; several: every video any set annotates, by name
    names = list(sets[heads[0]]) if single else sorted(set().union(*(sets[h] for h in heads)))
    skipped = new_skip_counts(task)
    columns: dict[str, list[np.ndarray]] = {head: [] for head in ("video_id", "frame", *heads)}
    videos: list[str] = []
    missing_videos: list[str] = []
    for video in names:
        files = {head: sets[head][video] for head in heads if video in sets[head]}
        listing = video_frames(frames_dir, video, manifest)
        if listing is None:
            missing_videos.append(video)
            if not single:
                for head in files:
                    skipped.count(f"{head}.videos_without_frames")
            continue
        frame_numbers, unrecognised = listing
        skipped.count("unrecognised_name", unrecognised)
        annotated = {head: annotated_lines(head, values) for head, values in files.items()}
        if not single:
            for head, lines in annotated.items():
                for name, n in index_frames(lines, frame_numbers)[1].as_dict().items():
                    skipped.count(f"{head}.{name}", n)
        kept, video_skipped = index_frames(any_annotated(list(annotated.values())), frame_numbers)
        skipped.add(video_skipped)
        for head in heads:
            columns[head].append(targets_at(head, files.get(head), kept - 1))
        columns["video_id"].append(np.full(kept.size, len(videos), dtype=np.int32))
        columns["frame"].append(kept.astype(np.int32))
        videos.append(video)
    skipped.count("videos_without_frames", len(missing_videos))
    empty = {"video_id": np.zeros(0, np.int32), "frame": np.zeros(0, np.int32)}
    arrays = {
        name: np.concatenate(parts) if parts else empty.get(name, missing_targets(name, 0))
        for name, parts in columns.items()
    }
    return SplitIndex(
        video_names=videos,
        video_id=arrays["video_id"],
        frame=arrays["frame"],
        label=arrays["expr"] if "expr" in arrays else missing_targets("expr", len(arrays["frame"])),
        va=arrays.get("va"),
        au=arrays.get("au"),
        skipped=skipped,
        missing_videos=missing_videos,
    )


def any_annotated(annotated: list[np.ndarray]) -> np.ndarray:
    """Return per line whether any of a video's files annotates it (as long as the longest)."""
    union = np.zeros(max(len(lines) for lines in annotated), dtype=bool)
    for lines in annotated:
        union[: len(lines)] |= lines
    return union


def targets_at(annotation_set: str, values: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """Return a file's values at ``rows`` (0-based lines); missing past its end, or no file."""
    if values is not None and (rows.size == 0 or rows[-1] < len(values)):
        return values[rows]  # the one-set case: every kept row is a line of the file
    targets = missing_targets(annotation_set, rows.size)
    if values is not None:
        within = rows < len(values)
        targets[within] = values[rows[within]]
    return targets


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
    *,
    task: str = DEFAULT_TASK,
) -> DatasetIndex:
    """Read the train and validation splits of Aff-Wild2's annotation sets for one task.

    Args:
        root: the dataset root (``data.root``).
        annotations_dir: the annotations folder (``data.annotations_dir``), relative to the
            root or absolute: the folder holding the task folders (or, for one set, that set's
            task folder itself).
        frames_dir: the cropped-aligned frames folder (``data.frames_dir``), relative to the
            root or absolute.
        frames_manifest: a file listing the frames (``data.frames_manifest``, see
            :func:`read_frame_manifest`), used instead of listing the frame folders.
        task: ``expr`` (the expression track), ``va`` (valence-arousal), ``au`` (action units)
            or ``mtl`` (the three, a frame kept where any annotates it).

    Returns:
        The index of both splits, with ``task`` and its targets.

    Raises:
        ValueError: for a task that is not one of :data:`~fer_multires.tasks.TASKS` (naming
            ``task``).
        FileNotFoundError: if the root or one of its folders does not exist.
        AnnotationError: for a malformed annotation file or layout, or a video in both splits.
    """
    check_task(task)
    require_root(root)
    annotations_path = resolve_subdir(root, annotations_dir, "data.annotations_dir")
    frames_path = resolve_frames_dir(root, frames_dir, frames_manifest)
    manifest = None
    if frames_manifest is not None:
        if not Path(frames_manifest).is_file():
            raise FileNotFoundError(f"data.frames_manifest: {frames_manifest} does not exist")
        manifest = read_frame_manifest(Path(frames_manifest))
    found = {head: detect_layout(annotations_path, head) for head in TASK_HEADS[task]}
    splits = {}
    split_folders: dict[str, dict[str, tuple[Path, list[str]]]] = {}
    for split in SPLITS:
        sets = {}
        split_folders[split] = {}
        for head, (layout, task_dir) in found.items():
            split_dir = task_dir / layout.split_dirs[split]
            if not split_dir.is_dir():
                raise AnnotationError(
                    f"{task_dir}: split folder {layout.split_dirs[split]} is missing"
                )
            sets[head] = read_annotation_files(split_dir, head, layout.classes)
            split_folders[split][head] = (split_dir, list(sets[head]))
        splits[split] = index_split(sets, frames_path, manifest, task)
        if splits[split].missing_videos:
            log.warning(
                "%s: %d annotated videos have no frame folder in %s: %s",
                split,
                len(splits[split].missing_videos),
                frames_path,
                ", ".join(splits[split].missing_videos),
            )
    check_splits_disjoint(split_folders)
    expr = found.get("expr")
    return DatasetIndex(
        name="affwild2",
        classes=expr[0].classes if expr else (),
        layout=", ".join(layout.task_dir for layout, _ in found.values()),
        images_dir=frames_path,
        splits=splits,
        task=task,
    )


def check_splits_disjoint(
    split_folders: Mapping[str, Mapping[str, tuple[Path, list[str]]]],
) -> None:
    """Refuse a video annotated in both splits, by one annotation set or across sets.

    Args:
        split_folders: per split, per annotation set, its split folder and video names.

    Raises:
        AnnotationError: naming the videos and folders.
    """
    train, val = split_folders["train"], split_folders["val"]
    for head, (train_dir, train_videos) in train.items():
        val_dir, val_videos = val[head]
        shared = set(train_videos) & set(val_videos)
        if shared:
            raise AnnotationError(
                f"{train_dir.parent}: videos in both {train_dir.name} and {val_dir.name}: "
                f"{', '.join(sorted(shared))}"
            )
    crossed = [
        f"{video} ({train_dir} and {val_dir})"
        for train_dir, train_videos in train.values()
        for val_dir, val_videos in val.values()
        for video in sorted(set(train_videos) & set(val_videos))
    ]
    if crossed:
        raise AnnotationError(
            "videos in the training split of one annotation set and the validation split of "
            f"another (a multi-task model would train on validation videos): {'; '.join(crossed)}"
        )
