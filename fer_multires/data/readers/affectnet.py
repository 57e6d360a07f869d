"""AffectNet reader: the manually annotated release, or the later ``train_set/``/``val_set/`` one.

* CSV layout: ``training.csv`` -> train and ``validation.csv`` -> val, columns
  ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,
  valence,arousal``; images under ``Manually_Annotated_Images/<subDirectory_filePath>``. With
  ``data.affectnet.crop=box`` (default) the annotated face box is cropped (clipped to the image)
  when an image is read; ``none`` keeps the whole image. An image on disk listed twice, in one
  file or in both (a train/val leak), is an error naming the file(s) and line(s).
* npy layout: ``train_set/`` and ``val_set/``, each ``images/<id>.jpg`` with
  ``annotations/<id>_exp.npy`` (already cropped faces, so no box).

Expression codes 0..7 = Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt; 8 None,
9 Uncertain and 10 Non-Face are counted as skips (``none``, ``uncertain``, ``non_face``), as are
``missing_image`` (annotated, not on disk), ``unannotated_image`` (npy layout: an image without
its ``_exp.npy``) and ``contempt`` when ``data.num_classes=7``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers.fer2013 import csv_rows
from fer_multires.data.readers.index import (
    IMAGE_EXTENSIONS,
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    SplitIndex,
    image_split,
    require_root,
)

CSV_SPLITS = {"train": "training.csv", "val": "validation.csv"}
CSV_IMAGES = "Manually_Annotated_Images"
NPY_SPLITS = {"train": "train_set", "val": "val_set"}
#: Expression codes 0..7, as canonical names.
AFFECTNET_LABELS: tuple[str, ...] = (
    "Neutral",
    "Happiness",
    "Sadness",
    "Surprise",
    "Fear",
    "Disgust",
    "Anger",
    "Contempt",
)
#: Codes 8..10: not an expression; each counted under its name.
NON_EXPRESSION_CODES = {8: "none", 9: "uncertain", 10: "non_face"}
SKIP_NAMES: tuple[str, ...] = (
    "none",
    "uncertain",
    "non_face",
    "missing_image",
    "unannotated_image",
    "contempt",
)
CROPS: tuple[str, ...] = ("box", "none")
NPY_V1 = b"\x93NUMPY\x01\x00"  # the magic string and version of a .npy file's header
BOX_COLUMNS: tuple[str, ...] = ("face_x", "face_y", "face_width", "face_height")
#: The values a face box may hold (it is stored as int32).
BOX_RANGE: tuple[int, int] = (-(2**31), 2**31 - 1)


class Labeller:
    """Turns expression codes into class indices, counting the codes that are left out."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = classes

    def __call__(self, code: int, skipped: SkipCounts) -> int | None:
        """Return the class index of ``code``, or None after counting why it is left out."""
        if code in NON_EXPRESSION_CODES:
            skipped.count(NON_EXPRESSION_CODES[code])
            return None
        name = AFFECTNET_LABELS[code]
        if name not in self.classes:
            skipped.count("contempt")
            return None
        return self.classes.index(name)


class FolderListing:
    """The files of each sub-folder, listed once (no ``stat`` per image)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names: dict[str, set[str]] = {}

    def __contains__(self, relpath: str) -> bool:
        folder, _, name = relpath.rpartition("/")
        if folder not in self._names:
            path = self.root / folder
            self._names[folder] = set(os.listdir(path)) if path.is_dir() else set()
        return name in self._names[folder]


def parse_code(text: str, path: Path, line: int) -> int:
    """Parse an expression code 0..10.

    Raises:
        DatasetFormatError: naming the file and line.
    """
    value = text.strip()
    if not value.lstrip("-").isdigit() or not 0 <= int(value) <= 10:
        raise DatasetFormatError(f"{path}:{line}: expression {value!r} is not a code 0..10")
    return int(value)


def parse_box(row: list[str], columns: dict[str, int], path: Path, line: int) -> list[int]:
    """Parse the face box ``(x, y, w, h)`` of one row, as annotated (clipped when cropped).

    Raises:
        DatasetFormatError: for a value that is not a number, or one outside the int32 range
            the index stores boxes in.
    """
    try:
        box = [int(float(row[columns[name]])) for name in BOX_COLUMNS]
    except (ValueError, OverflowError):
        box = None
    if box is None or not all(BOX_RANGE[0] <= v <= BOX_RANGE[1] for v in box):
        raise DatasetFormatError(
            f"{path}:{line}: face box {[row[columns[n]] for n in BOX_COLUMNS]} is not 4 numbers "
            f"{BOX_RANGE[0]}..{BOX_RANGE[1]} ({', '.join(BOX_COLUMNS)})"
        )
    return box


def check_box(box: list[int], path: Path, line: int) -> None:
    """Check that a face box to crop has a positive size and reaches into the image.

    The corner may lie outside the image (a face at its edge): the box is stored as annotated and
    clipped to the image when it is cropped. A box that ends left of or above the image
    (``x + w <= 0`` or ``y + h <= 0``) holds no pixel of it. (Whether a box starts past the
    right or bottom edge needs the image's size, which the index does not read.)

    Raises:
        DatasetFormatError: naming the file and line.
    """
    described = f"{path}:{line}: face box x={box[0]}, y={box[1]}, w={box[2]}, h={box[3]}"
    if box[2] < 1 or box[3] < 1:
        raise DatasetFormatError(f"{described}; expected face_width and face_height >= 1")
    if box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise DatasetFormatError(
            f"{described} lies entirely outside the image (left of or above it); expected "
            "face_x + face_width > 0 and face_y + face_height > 0"
        )


#: Where each image was first listed: its CSV file and 1-based line.
FirstListed = dict[str, tuple[Path, int]]


def check_listed_once(relpath: str, first: FirstListed, path: Path, line: int) -> None:
    """Record where an image is listed, and check that no row (of either CSV file) listed it.

    Raises:
        DatasetFormatError: naming the file and line and where the image was first listed;
            for an image in both files, naming both files (a train/val leak).
    """
    where = first.setdefault(relpath, (path, line))
    if where == (path, line):
        return
    if where[0] == path:
        raise DatasetFormatError(
            f"{path}:{line}: {relpath} is listed again (first on line {where[1]})"
        )
    raise DatasetFormatError(
        f"{path}:{line}: {relpath} is also listed in {where[0]}:{where[1]}; an image in both "
        f"{where[0].name} and {path.name} would leak training images into validation"
    )


def read_csv_split(
    path: Path, listing: FolderListing, label: Labeller, crop: str, first: FirstListed
) -> SplitIndex:
    """Read one CSV split of the manually annotated release.

    ``first`` records the images listed so far (shared by both splits' files), so that an
    image listed twice is an error (see :func:`check_listed_once`).
    """
    required = ("subDirectory_filePath", *BOX_COLUMNS, "expression")
    labels, paths, boxes = [], [], []
    skipped = SkipCounts(SKIP_NAMES)
    columns, rows = csv_rows(path, required)
    for line, row in rows:
        relpath = row[columns["subDirectory_filePath"]].strip()
        on_disk = relpath in listing
        if on_disk:
            check_listed_once(relpath, first, path, line)
        index = label(parse_code(row[columns["expression"]], path, line), skipped)
        box = parse_box(row, columns, path, line)
        if index is None:
            continue
        if crop == "box":
            check_box(box, path, line)
        if not on_disk:
            skipped.count("missing_image")
            continue
        labels.append(index)
        paths.append(relpath)
        boxes.append(box)
    box_array = np.array(boxes, dtype=np.int32).reshape(-1, 4) if crop == "box" else None
    return image_split(labels, paths, skipped, boxes=box_array)


class ExpressionCodes:
    """Reads ``<id>_exp.npy`` files, each a 0-d array of one expression code.

    The release stores the code as a string. ``np.load`` parses each file's header anew (~100 us
    a file, half a minute for AffectNet); files whose header bytes were seen before are decoded
    straight from their bytes (~25 us).
    """

    def __init__(self) -> None:
        self._dtypes: dict[bytes, np.dtype] = {}

    def __call__(self, path: Path) -> int:
        """Return the code in ``path``.

        Raises:
            DatasetFormatError: for a file that is not a .npy array of one integer 0..10.
        """
        try:
            code = self._read(path.read_bytes())
        except (ValueError, TypeError, OSError, EOFError) as err:
            raise DatasetFormatError(
                f"{path}: not an expression code (a .npy array of one integer 0..10): {err}"
            ) from None
        if not 0 <= code <= 10:
            raise DatasetFormatError(f"{path}: expression {code} is not a code 0..10")
        return code

    def _read(self, data: bytes) -> int:
        size = 10 + int.from_bytes(data[8:10], "little") if data[:8] == NPY_V1 else 0
        dtype = self._dtypes.get(data[:size]) if size else None
        if dtype is not None:
            return integer_code(np.frombuffer(data, dtype, count=1, offset=size)[0])
        array = np.load(io.BytesIO(data))
        if size and array.shape == () and array.dtype.kind in "Uiuf":
            self._dtypes[data[:size]] = array.dtype
        return integer_code(array)


def integer_code(value: np.ndarray | np.generic) -> int:
    """Return a stored code as an int: a string or integer, or a float with no fraction.

    Raises:
        ValueError: for a float with a fraction (2.7 is not the code 2), or a string that is not
            an integer.
        TypeError: for a boolean (True is not the code 1).
    """
    array = np.asarray(value)
    if array.dtype.kind == "b":
        raise TypeError(f"{array!r} is a boolean, not an integer")
    if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise ValueError(f"{array!r} is not a whole number")
    return int(array)


def read_npy_split(folder: Path, label: Labeller) -> SplitIndex:
    """Read one split of the later release: ``images/<id>.jpg`` + ``annotations/<id>_exp.npy``."""
    images_dir, annotations = folder / "images", folder / "annotations"
    for needed in (images_dir, annotations):
        if not needed.is_dir():
            raise FileNotFoundError(f"data.root: {needed} does not exist")
    images = {
        os.path.splitext(n)[0]: n
        for n in os.listdir(images_dir)
        if n.lower().endswith(IMAGE_EXTENSIONS)
    }
    labels, paths = [], []
    skipped = SkipCounts(SKIP_NAMES)
    annotated = set()
    read_code = ExpressionCodes()
    for name in sorted(n for n in os.listdir(annotations) if n.endswith("_exp.npy")):
        sample = name[: -len("_exp.npy")]
        annotated.add(sample)
        index = label(read_code(annotations / name), skipped)
        if index is None:
            continue
        if sample not in images:
            skipped.count("missing_image")
            continue
        labels.append(index)
        paths.append(f"{folder.name}/images/{images[sample]}")
    skipped.count("unannotated_image", len(set(images) - annotated))
    return image_split(labels, paths, skipped)


def read_affectnet(root: str | Path, num_classes: int = 8, crop: str = "box") -> DatasetIndex:
    """Read AffectNet's train and val splits, in whichever release layout ``root`` holds.

    Args:
        root: the dataset folder (``data.root``).
        num_classes: 8 (with Contempt) or 7 (Contempt skipped and counted).
        crop: ``box`` (crop the annotated face) or ``none`` (CSV layout only).

    Raises:
        FileNotFoundError: for a missing root, or a root holding neither layout.
        ValueError: for an invalid option, naming its key.
        DatasetFormatError: for a malformed row, naming the file and line.
    """
    if num_classes not in (7, 8):
        raise ValueError(f"data.num_classes={num_classes} must be 7 or 8 for AffectNet")
    if crop not in CROPS:
        raise ValueError(f"data.affectnet.crop={crop!r} is not one of {', '.join(CROPS)}")
    folder = require_root(root)
    label = Labeller(EXPRESSIONS_CONTEMPT if num_classes == 8 else EXPRESSIONS_7)
    if all((folder / name).is_file() for name in CSV_SPLITS.values()):
        images_dir = folder / CSV_IMAGES
        if not images_dir.is_dir():
            raise FileNotFoundError(f"data.root: {images_dir} does not exist")
        listing, first = FolderListing(images_dir), {}
        splits = {
            split: read_csv_split(folder / name, listing, label, crop, first)
            for split, name in CSV_SPLITS.items()
        }
        return DatasetIndex("affectnet", label.classes, f"csv (crop={crop})", images_dir, splits)
    if all((folder / name).is_dir() for name in NPY_SPLITS.values()):
        splits = {split: read_npy_split(folder / name, label) for split, name in NPY_SPLITS.items()}
        return DatasetIndex("affectnet", label.classes, "npy", folder, splits)
    present = [name for name in CSV_SPLITS.values() if (folder / name).is_file()]
    found = f"; it has only {present[0]}" if present else ""
    raise FileNotFoundError(
        f"data.root: {folder} holds neither AffectNet layout ({' and '.join(CSV_SPLITS.values())} "
        f"with {CSV_IMAGES}/, or {' and '.join(NPY_SPLITS.values())}/){found}"
    )
