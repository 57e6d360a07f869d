"""FERPlus reader: FER2013's images with the FERPlus relabelling (``fer2013new.csv``).

``fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
contempt,unknown,NF``) holds ten annotators' votes per FER2013 image, its rows aligned one to one
with ``fer2013.csv``'s. The label is the FERPlus authors' majority rule: votes of 1 are set to 0
(outliers); the class with the most remaining votes wins if it holds more than half of them;
otherwise the image is ``unknown``. Splits as FER2013, and each image is named as in FER2013,
``fer2013.csv:<line>`` (the line its pixels are on).

Counted skips: ``not_face`` (an empty image name, or NF wins), ``unknown`` (no majority, or the
unknown column wins), and ``contempt`` when ``data.num_classes=7``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers.fer2013 import (
    USAGE_SPLITS,
    csv_rows,
    drop_empty_test,
    find_csv,
    parse_usage,
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
#: The largest vote accepted (FERPlus has 10 annotators; this bound keeps the sums exact).
MAX_VOTE = 2**31 - 1


def majority_votes(votes: np.ndarray) -> np.ndarray:
    """Return each image's winning column by the FERPlus majority rule, or UNKNOWN.

    The rule of the FERPlus authors' ``majority`` mode: votes of 1 are set to 0 (outliers); the
    column with the most remaining votes wins if it holds more than half of them (so a tie is
    never a majority); otherwise the image is unknown.

    Args:
        votes: ``(N, 10)`` vote counts in :data:`VOTE_COLUMNS` order.
    """
    kept = np.where(votes <= 1, 0, votes)
    top = np.argmax(kept, axis=1)
    wins = kept[np.arange(len(kept)), top] > 0.5 * kept.sum(axis=1)
    return np.where(wins, top, UNKNOWN)


def majority_vote(votes: np.ndarray) -> int:
    """Return the winning column of one image's votes (see :func:`majority_votes`)."""
    return int(majority_votes(np.asarray(votes).reshape(1, -1))[0])


def parse_votes(row: list[str], columns: dict[str, int], path: Path, line: int) -> list[int]:
    """Parse the ten vote columns of one row.

    Raises:
        DatasetFormatError: for a vote that is not an integer 0..:data:`MAX_VOTE`, naming the
            file and line.
    """
    fields = [row[columns[name]].strip() for name, _ in VOTE_COLUMNS]
    if not all(v.isascii() and v.isdigit() and int(v) <= MAX_VOTE for v in fields):
        raise DatasetFormatError(
            f"{path}:{line}: votes {','.join(fields)} are not 10 non-negative integers "
            f"<= {MAX_VOTE} ({','.join(name for name, _ in VOTE_COLUMNS)})"
        )
    return [int(v) for v in fields]


def read_votes(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Read ``fer2013new.csv``: per row its Usage, image name, votes and line number.

    Raises:
        DatasetFormatError: for a missing column, an unknown Usage or a vote that is not an
            integer 0..:data:`MAX_VOTE`, naming the file and line.
    """
    columns, rows = csv_rows(path, ("Usage", "Image name", *(name for name, _ in VOTE_COLUMNS)))
    usage, names, votes, lines = [], [], [], []
    for line, row in rows:
        usage.append(parse_usage(row[columns["Usage"]], path, line))
        names.append(row[columns["Image name"]].strip())
        votes.append(parse_votes(row, columns, path, line))
        lines.append(line)
    votes_array = np.array(votes, dtype=np.int64).reshape(-1, len(VOTE_COLUMNS))
    return usage, names, votes_array, np.array(lines, dtype=np.int64)


def read_ferplus(root: str | Path, num_classes: int = 8) -> DatasetIndex:
    """Read FERPlus: FER2013's images and splits, labelled by majority vote.

    Images are named as in FER2013 (``fer2013.csv:<line>``), so the same image has the same
    name in both datasets.

    Args:
        root: the folder holding ``fer2013.csv`` (or ``icml_face_data.csv``) and
            ``fer2013new.csv`` (``data.root``).
        num_classes: 8 (with Contempt) or 7 (Contempt skipped and counted), ``data.num_classes``.

    Raises:
        FileNotFoundError: for a missing root or file.
        ValueError: for another ``num_classes``.
        DatasetFormatError: for a malformed row, or files whose rows do not align (count or
            Usage), naming the file and line.
    """
    if num_classes not in (7, 8):
        raise ValueError(f"data.num_classes={num_classes} must be 7 or 8 for FERPlus")
    folder = require_root(root)
    if not (folder / LABELS_CSV).is_file():
        raise FileNotFoundError(
            f"data.root: {folder} has no {LABELS_CSV} (FERPlus needs it and {IMAGES_CSV})"
        )
    images = read_pixel_rows(find_csv(folder), with_emotion=False)
    usage, names, votes, lines = read_votes(folder / LABELS_CSV)
    check_alignment(images.usage, usage, images.path, folder / LABELS_CSV, lines)
    classes = EXPRESSIONS_CONTEMPT if num_classes == 8 else EXPRESSIONS_7
    winners = majority_votes(votes)
    parts = {split: ([], [], SkipCounts(SKIP_NAMES)) for split in USAGE_SPLITS.values()}
    for row, winner in enumerate(winners.tolist()):
        labels, rows, skipped = parts[USAGE_SPLITS[usage[row]]]
        target = VOTE_COLUMNS[winner][1]
        if not names[row] or winner == NOT_FACE:
            skipped.count("not_face")
        elif winner == UNKNOWN:
            skipped.count("unknown")
        elif target not in classes:
            skipped.count("contempt")
        else:
            labels.append(classes.index(target))
            rows.append(row)
    splits = {
        split: image_split(
            labels, images.names(rows), skipped, pixels=images.pixels[np.array(rows, np.int64)]
        )
        for split, (labels, rows, skipped) in parts.items()
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
