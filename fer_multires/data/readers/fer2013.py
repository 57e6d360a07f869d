"""FER2013 reader: ``fer2013.csv`` (or Kaggle's ``icml_face_data.csv``), images in the CSV.

Columns ``emotion,pixels,Usage`` (``icml_face_data.csv``: ``emotion, Usage, pixels``, with
leading spaces in the names). ``pixels`` is 2304 space-separated integers: a 48x48 grayscale
image, decoded here when the file is read (no image files are unpacked). Labels 0..6 = Angry,
Disgust, Fear, Happy, Sad, Surprise, Neutral. ``Usage``: Training -> train, PublicTest -> val,
PrivateTest -> test.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.index import (
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    image_split,
    require_root,
)

CSV_NAMES: tuple[str, ...] = ("fer2013.csv", "icml_face_data.csv")
#: FER2013's labels 0..6, as canonical names.
FER2013_LABELS: tuple[str, ...] = (
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
    "Neutral",
)
USAGE_SPLITS: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_SIDE = 48


@dataclass
class PixelRows:
    """The rows of a FER2013 CSV file.

    Attributes:
        path: the file.
        lines: per row, its 1-based line number in the file.
        usage: per row, its ``Usage`` value.
        emotion: per row, its ``emotion`` value (-1 where the column is absent).
        pixels: ``(N, 48, 48)`` uint8 images.
    """

    path: Path
    lines: np.ndarray
    usage: list[str]
    emotion: np.ndarray
    pixels: np.ndarray


def find_csv(root: Path) -> Path:
    """Return ``fer2013.csv`` or ``icml_face_data.csv`` in ``root``.

    Raises:
        FileNotFoundError: naming both.
    """
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"data.root: {root} holds neither {' nor '.join(CSV_NAMES)}")


def decode_pixels(text: str, path: Path, line: int) -> np.ndarray:
    """Decode one ``pixels`` field into a 48x48 uint8 image.

    Raises:
        DatasetFormatError: for a field that is not 2304 integers in 0..255.
    """
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        values = None
    if values is None or values.size != IMAGE_SIDE * IMAGE_SIDE:
        count = "non-integer values" if values is None else f"{values.size} values"
        raise DatasetFormatError(
            f"{path}:{line}: pixels has {count}; expected {IMAGE_SIDE * IMAGE_SIDE} integers "
            f"(a {IMAGE_SIDE}x{IMAGE_SIDE} image)"
        )
    if values.min() < 0 or values.max() > 255:
        raise DatasetFormatError(f"{path}:{line}: pixel values must be in 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


def header_columns(header: list[str], path: Path, required: tuple[str, ...]) -> dict[str, int]:
    """Return the position of each required column (names stripped of spaces).

    Raises:
        DatasetFormatError: naming the missing columns.
    """
    names = [name.strip() for name in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise DatasetFormatError(
            f"{path}:1: missing column(s) {', '.join(missing)} (header: {','.join(names)})"
        )
    return {name: names.index(name) for name in required}


def read_pixel_rows(path: Path, with_emotion: bool = True) -> PixelRows:
    """Read every row of a FER2013 CSV file, decoding its pixels.

    Raises:
        DatasetFormatError: for a missing column, a short row, an unknown Usage or emotion
            label, or bad pixels, naming the file and line.
    """
    required = ("emotion", "pixels", "Usage") if with_emotion else ("pixels", "Usage")
    lines, usage, emotion, pixels = [], [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path}:1: empty file (expected a header line)")
        columns = header_columns(header, path, required)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < len(header):
                raise DatasetFormatError(
                    f"{path}:{line}: {len(row)} fields, expected {len(header)}"
                )
            value = row[columns["Usage"]].strip()
            if value not in USAGE_SPLITS:
                raise DatasetFormatError(
                    f"{path}:{line}: Usage {value!r} is not one of {', '.join(USAGE_SPLITS)}"
                )
            lines.append(line)
            usage.append(value)
            emotion.append(
                parse_emotion(row[columns["emotion"]], path, line) if with_emotion else -1
            )
            pixels.append(decode_pixels(row[columns["pixels"]], path, line))
    return PixelRows(
        path=path,
        lines=np.array(lines, dtype=np.int64),
        usage=usage,
        emotion=np.array(emotion, dtype=np.int64),
        pixels=np.stack(pixels) if pixels else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8),
    )


def parse_emotion(text: str, path: Path, line: int) -> int:
    """Parse an ``emotion`` field: an integer 0..6.

    Raises:
        DatasetFormatError: naming the file and line.
    """
    value = text.strip()
    if not value.isdigit() or int(value) >= len(FER2013_LABELS):
        raise DatasetFormatError(f"{path}:{line}: emotion {value!r} is not a label 0..6")
    return int(value)


def read_fer2013(root: str | Path) -> DatasetIndex:
    """Read FER2013: train, val (PublicTest) and test (PrivateTest), images from the CSV.

    Raises:
        FileNotFoundError: for a missing root or CSV file.
        DatasetFormatError: for a malformed row, naming the file and line.
    """
    path = find_csv(require_root(root))
    rows = read_pixel_rows(path)
    canonical = np.array([EXPRESSIONS_7.index(name) for name in FER2013_LABELS], dtype=np.int64)
    splits = {}
    for usage, split in USAGE_SPLITS.items():
        picked = np.flatnonzero(np.array(rows.usage) == usage)
        splits[split] = image_split(
            canonical[rows.emotion[picked]],
            [f"{path.name}:{line}" for line in rows.lines[picked]],
            SkipCounts(()),
            pixels=rows.pixels[picked],
        )
    return DatasetIndex("fer2013", EXPRESSIONS_7, path.name, path.parent, drop_empty_test(splits))


def drop_empty_test(splits: dict) -> dict:
    """Leave out a ``test`` split with no rows (a file without PrivateTest)."""
    if "test" in splits and len(splits["test"]) == 0 and splits["test"].skipped.total() == 0:
        del splits["test"]
    return splits
