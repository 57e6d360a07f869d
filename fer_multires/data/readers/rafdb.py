"""RAF-DB basic reader: ``EmoLabel/list_patition_label.txt`` and ``Image/aligned|original``.

The label file (its name is misspelt in the release) has one ``<name> <label>`` line per image,
e.g. ``train_00001.jpg 5``, labels 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger,
Neutral. Names starting ``train_`` form the training split and ``test_`` the validation split
(RAF-DB has no other held-out split). Aligned images are ``Image/aligned/<stem>_aligned.jpg``
(100x100), originals ``Image/original/<name>``. The official archive nests everything in a
``basic/`` folder; ``data.root`` may be that folder or the one holding it.

Counted skips: ``missing_image`` (listed, not on disk) and ``unlisted_image`` (on disk, not
listed).
"""

from __future__ import annotations

import os
from pathlib import Path

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.index import (
    IMAGE_EXTENSIONS,
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    image_split,
    require_root,
    text_lines,
)

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
#: RAF-DB's labels 1..7, as canonical names.
RAFDB_LABELS: tuple[str, ...] = (
    "Surprise",
    "Fear",
    "Disgust",
    "Happiness",
    "Sadness",
    "Anger",
    "Neutral",
)
IMAGE_FOLDERS = {"aligned": Path("Image") / "aligned", "original": Path("Image") / "original"}
SPLIT_PREFIXES = {"train_": "train", "test_": "val"}
SKIP_NAMES: tuple[str, ...] = ("missing_image", "unlisted_image")


def find_basic(root: Path) -> Path:
    """Return the folder holding ``EmoLabel/``: ``root`` itself or its ``basic/``.

    Raises:
        DatasetFormatError: naming both places looked in.
    """
    for candidate in (root, root / "basic"):
        if (candidate / LABEL_FILE).is_file():
            return candidate
    raise DatasetFormatError(
        f"data.root: {root} holds no RAF-DB label file (looked for {root / LABEL_FILE} and "
        f"{root / 'basic' / LABEL_FILE})"
    )


def image_name(listed: str, images: str) -> str:
    """Return the file name of a listed image in the chosen image folder."""
    if images == "aligned":
        stem, _ = os.path.splitext(listed)
        return f"{stem}_aligned.jpg"
    return listed


def parse_label_file(path: Path) -> list[tuple[str, str, int]]:
    """Parse the label file into ``(split, name, label index)`` rows, label in canonical order.

    Raises:
        DatasetFormatError: for a malformed line, an unknown label or name prefix, a name
            listed twice or text that is not UTF-8, naming the file and line.
    """
    rows, seen = [], {}
    for number, line in enumerate(text_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit()):
            raise DatasetFormatError(
                f"{path}:{number}: {line.strip()!r} is not '<image name> <label 1..7>'"
            )
        name, label = fields[0], int(fields[1])
        if not 1 <= label <= len(RAFDB_LABELS):
            raise DatasetFormatError(f"{path}:{number}: label {label} is outside 1..7")
        split = next((s for p, s in SPLIT_PREFIXES.items() if name.startswith(p)), None)
        if split is None:
            raise DatasetFormatError(
                f"{path}:{number}: {name!r} starts with neither train_ nor test_"
            )
        if name in seen:
            raise DatasetFormatError(
                f"{path}:{number}: {name} is listed again (first on line {seen[name]})"
            )
        seen[name] = number
        rows.append((split, name, EXPRESSIONS_7.index(RAFDB_LABELS[label - 1])))
    return rows


def read_rafdb(root: str | Path, images: str = "aligned") -> DatasetIndex:
    """Read RAF-DB basic: train (``train_*``) and val (``test_*``).

    Args:
        root: the folder holding ``basic/``, or ``basic/`` itself (``data.root``).
        images: ``aligned`` (default) or ``original`` (``data.rafdb.images``).

    Raises:
        FileNotFoundError: for a missing root or image folder.
        ValueError: for an unknown ``images`` value.
        DatasetFormatError: for a malformed label file.
    """
    if images not in IMAGE_FOLDERS:
        raise ValueError(f"data.rafdb.images={images!r} is not one of {', '.join(IMAGE_FOLDERS)}")
    basic = find_basic(require_root(root))
    images_dir = basic / IMAGE_FOLDERS[images]
    if not images_dir.is_dir():
        raise FileNotFoundError(f"data.rafdb.images={images}: folder {images_dir} does not exist")
    on_disk = {name for name in os.listdir(images_dir) if name.lower().endswith(IMAGE_EXTENSIONS)}
    listed: dict[str, tuple[list[int], list[str], SkipCounts]] = {
        split: ([], [], SkipCounts(SKIP_NAMES)) for split in SPLIT_PREFIXES.values()
    }
    expected = set()
    for split, name, label in parse_label_file(basic / LABEL_FILE):
        labels, paths, skipped = listed[split]
        file = image_name(name, images)
        expected.add(file)
        if file in on_disk:
            labels.append(label)
            paths.append(file)
        else:
            skipped.count("missing_image")
    for file in on_disk - expected:
        split = next((s for p, s in SPLIT_PREFIXES.items() if file.startswith(p)), "train")
        listed[split][2].count("unlisted_image")
    splits = {
        split: image_split(labels, paths, skipped)
        for split, (labels, paths, skipped) in listed.items()
    }
    return DatasetIndex("rafdb", EXPRESSIONS_7, f"basic/{images}", images_dir, splits)
