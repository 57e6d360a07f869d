"""FERPlus reader: FER2013's images with the FERPlus relabelling (``fer2013new.csv``).

``fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
contempt,unknown,NF``) holds ten annotators' votes per FER2013 image, its rows aligned one to one
with ``fer2013.csv``'s. The label is the FERPlus authors' majority rule: votes of 1 are set to 0
(outliers); the class with the most remaining votes wins if it holds more than half of them;
otherwise the image is ``unknown``. Splits as FER2013.

Counted skips: ``not_face`` (an empty image name, or NF wins), ``unknown`` (no majority, or the
unknown column wins), and ``contempt`` when ``data.num_classes=7``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers.fer2013 import (
    USAGE_SPLITS,
    drop_empty_test,
    header_columns,
    read_pixel_rows,
)
from fer_multires.data.readers.index import (
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    image_split,
    require_root,
)

LABELS_CSV = "fer2013new.csv"
IMAGES_CSV = "fer2013.csv"
#: The vote columns, in file order, and the canonical class each stands for (None: no class).
VOTE_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("neutral", "Neutral"),
    ("happiness", "Happiness"),
    ("surprise", "Surprise"),
    ("sadness", "Sadness"),
    ("anger", "Anger"),
    ("disgust", "Disgust"),
    ("fear", "Fear"),
    ("contempt", "Contempt"),
    ("unknown", None),
    ("NF", None),
)
UNKNOWN, NOT_FACE = 8, 9
SKIP_NAMES: tuple[str, ...] = ("not_face", "unknown", "contempt")


def majority_vote(votes: np.ndarray) -> int:
    """Return the winning column of one image's votes by the FERPlus majority rule, or UNKNOWN.

    Votes of 1 are set to 0; the column with the most remaining votes wins if it holds more
    than half of them.
    """
    kept = np.where(votes <= 1, 0, votes)
    top = int(np.argmax(kept))
    return top if kept[top] > 0.5 * kept.sum() else UNKNOWN


def read_votes(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Read ``fer2013new.csv``: per row its Usage, image name, votes and line number.

    Raises:
        DatasetFormatError: for a missing column or a vote that is not a non-negative
            integer, naming the file and line.
    """
    required = ("Usage", "Image name", *(name for name, _ in VOTE_COLUMNS))
    usage, names, votes, lines = [], [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path}:1: empty file (expected a header line)")
        columns = header_columns(header, path, required)
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) < len(header):
                raise DatasetFormatError(
                    f"{path}:{line}: {len(row)} fields, expected {len(header)}"
                )
            fields = [row[columns[name]].strip() for name, _ in VOTE_COLUMNS]
            if not all(v.isdigit() for v in fields):
                raise DatasetFormatError(
                    f"{path}:{line}: votes {','.join(fields)} are not 10 non-negative integers"
                )
            usage.append(row[columns["Usage"]].strip())
            names.append(row[columns["Image name"]].strip())
            votes.append([int(v) for v in fields])
            lines.append(line)
    return usage, names, np.array(votes, dtype=np.int64).reshape(-1, 10), np.array(lines)


def read_ferplus(root: str | Path, num_classes: int = 8) -> DatasetIndex:
    """Read FERPlus: FER2013's images and splits, labelled by majority vote.

    Args:
        root: the folder holding ``fer2013.csv`` and ``fer2013new.csv`` (``data.root``).
        num_classes: 8 (with Contempt) or 7 (Contempt skipped and counted).

    Raises:
        FileNotFoundError: for a missing root or file.
        ValueError: for another ``num_classes``.
        DatasetFormatError: for a malformed row, or files whose rows do not align (count or
            Usage), naming the file and line.
    """
    if num_classes not in (7, 8):
        raise ValueError(f"data.num_classes={num_classes} must be 7 or 8 for FERPlus")
    folder = require_root(root)
    for name in (IMAGES_CSV, LABELS_CSV):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"data.root: {folder} has no {name} (FERPlus needs both)")
    images = read_pixel_rows(folder / IMAGES_CSV, with_emotion=False)
    usage, names, votes, lines = read_votes(folder / LABELS_CSV)
    check_alignment(images.usage, usage, images.path, folder / LABELS_CSV, lines)
    classes = EXPRESSIONS_CONTEMPT if num_classes == 8 else EXPRESSIONS_7
    parts = {split: ([], [], [], SkipCounts(SKIP_NAMES)) for split in USAGE_SPLITS.values()}
    for row, winner in enumerate(majority_vote(v) for v in votes):
        labels, paths, rows, skipped = parts[USAGE_SPLITS[usage[row]]]
        target = VOTE_COLUMNS[winner][1]
        if not names[row] or winner == NOT_FACE:
            skipped.count("not_face")
        elif winner == UNKNOWN:
            skipped.count("unknown")
        elif target not in classes:
            skipped.count("contempt")
        else:
            labels.append(classes.index(target))
            paths.append(names[row])
            rows.append(row)
    splits = {
        split: image_split(labels, paths, skipped, pixels=images.pixels[np.array(rows, int)])
        for split, (labels, paths, rows, skipped) in parts.items()
    }
    return DatasetIndex("ferplus", classes, "fer2013new", folder, drop_empty_test(splits))


def check_alignment(
    image_usage: list[str], label_usage: list[str], images: Path, labels: Path, lines: np.ndarray
) -> None:
    """Check that the two files' rows align: the same count and the same Usage row by row.

    Raises:
        DatasetFormatError: naming the files, and the first line whose Usage differs.
    """
    if len(image_usage) != len(label_usage):
        raise DatasetFormatError(
            f"{labels}: {len(label_usage)} rows, but {images} has {len(image_usage)}; the "
            "FERPlus labels must align row by row with the FER2013 file they relabel"
        )
    for row, (a, b) in enumerate(zip(image_usage, label_usage, strict=True)):
        if a != b:
            raise DatasetFormatError(
                f"{labels}:{int(lines[row])}: Usage {b!r}, but row {row + 1} of {images} is {a!r}; "
                "the two files are not aligned"
            )
