"""Image-folder reader: ``root/<split>/<class>/*.{jpg,jpeg,png}``.

Splits ``train`` and ``val`` are required, ``test`` optional. Class folder names map to the
canonical names case-insensitively, with the usual aliases (angry, happy, sad, surprised,
fearful, disgusted, ...); a folder whose name is none of them is an error, unless
``data.classes`` lists the class folder names (in label order): then those are the classes,
canonicalised where they are known names (folders match them case-insensitively). Entries
that are not images (other files, sub-folders of a class folder, files beside the class
folders) are counted (``not_image``), and so are the images of class folders that
``data.classes`` does not list (``unlisted_class``). A class without training images (its folder
only in ``val/``, or a name in ``data.classes`` that no ``train/`` folder has) is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from fer_multires.data.labels import CANONICAL_CLASSES, CLASS_ALIASES, canonical_name
from fer_multires.data.readers.index import (
    DATASET_SPLITS,
    IMAGE_EXTENSIONS,
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    SplitIndex,
    image_split,
    require_root,
)

SKIP_NAMES: tuple[str, ...] = ("not_image", "unlisted_class")


def is_folder(entry: os.DirEntry) -> bool:
    """Whether a listed entry is a folder (or a link to one).

    Raises:
        DatasetFormatError: naming the entry, for a symbolic link that loops or cannot be
            followed (the OS's own error does not name it).
    """
    return followed(entry, entry.is_dir)


def is_image_file(entry: os.DirEntry) -> bool:
    """Whether a listed entry is a file (or a link to one); see :func:`is_folder`."""
    return followed(entry, entry.is_file)


def followed(entry: os.DirEntry, test: Callable[[], bool]) -> bool:
    """Run ``entry.is_dir``/``is_file``, turning a link that cannot be followed into an error."""
    try:
        return test()
    except OSError as err:
        raise DatasetFormatError(
            f"data.root: {entry.path} is a symbolic link that cannot be followed "
            f"({err.strerror}: it loops, or points through one that does); remove it or point "
            "it at a real file or folder"
        ) from err


def split_entries(root: Path, splits: Sequence[str]) -> dict[str, tuple[list[str], int]]:
    """Return each split's class folder names (sorted) and how many other entries it holds.

    Hidden folders (``.ipynb_checkpoints``, ...) are not class folders: they count as other
    entries.
    """
    entries = {}
    for split in splits:
        listed = list(os.scandir(root / split))
        folders = sorted(e.name for e in listed if is_folder(e) and not e.name.startswith("."))
        entries[split] = (folders, len(listed) - len(folders))
    return entries


def folder_classes(folders: dict[str, list[str]], root: Path) -> dict[str, str]:
    """Map every class folder name (lower case) to its canonical class name.

    Raises:
        DatasetFormatError: for a folder that names no known class, naming it and the
            accepted names.
    """
    mapping = {}
    for split, names in folders.items():
        for name in names:
            canonical = canonical_name(name)
            if canonical is None:
                raise DatasetFormatError(
                    f"{root / split / name}: folder name {name!r} is not a known class; "
                    f"accepted (any case): {', '.join(sorted(CLASS_ALIASES))}; or list the "
                    "class folders in data.classes"
                )
            mapping[name.lower()] = canonical
    return mapping


def explicit_classes(classes: Sequence[str]) -> dict[str, str]:
    """Map ``data.classes`` entries (lower case) to class names (canonical where known).

    Raises:
        ValueError: naming ``data.classes`` for an empty list or a repeated class.
    """
    if isinstance(classes, str) or not classes:
        raise ValueError(f"data.classes={classes!r} must be a non-empty list of class folder names")
    mapping = {str(name).lower(): canonical_name(str(name)) or str(name) for name in classes}
    names = list(mapping.values())
    if len(set(names)) != len(names) or len(mapping) != len(classes):
        raise ValueError(f"data.classes={list(classes)} names a class twice")
    return mapping


def read_split(
    root: Path, folders: list[str], strays: int, mapping: dict[str, str], classes: tuple
) -> SplitIndex:
    """Index one split's images (sorted by class folder, then file name)."""
    labels, paths = [], []
    skipped = SkipCounts(SKIP_NAMES)
    skipped.count("not_image", strays)
    for folder in folders:
        entries = list(os.scandir(root / folder))
        images = sorted(
            e.name
            for e in entries
            if is_image_file(e) and e.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        skipped.count("not_image", len(entries) - len(images))
        if folder.lower() not in mapping:
            skipped.count("unlisted_class", len(images))
            continue
        labels += [classes.index(mapping[folder.lower()])] * len(images)
        paths += [f"{root.name}/{folder}/{name}" for name in images]
    return image_split(labels, paths, skipped)


def read_folder(root: str | Path, classes: Sequence[str] | None = None) -> DatasetIndex:
    """Read an image-folder dataset.

    Args:
        root: the folder holding ``train/``, ``val/`` and optionally ``test/`` (``data.root``).
        classes: the class folder names in label order (``data.classes``), or None to map the
            folder names to the canonical names.

    Raises:
        FileNotFoundError: for a missing root, ``train/`` or ``val/``.
        DatasetFormatError: for an unknown class folder name.
    """
    folder = require_root(root)
    splits = [s for s in DATASET_SPLITS if (folder / s).is_dir()]
    for required in DATASET_SPLITS[:2]:
        if required not in splits:
            raise FileNotFoundError(f"data.root: {folder} has no {required}/ folder")
    entries = split_entries(folder, splits)
    if classes is None:
        mapping = folder_classes({s: names for s, (names, _) in entries.items()}, folder)
        names = tuple(c for c in CANONICAL_CLASSES if c in set(mapping.values()))
    else:
        mapping = explicit_classes(classes)
        names = tuple(mapping.values())
    index_splits = {s: read_split(folder / s, *entries[s], mapping, names) for s in splits}
    check_training_images(folder / "train", index_splits["train"], mapping, names, classes)
    return DatasetIndex("folder", names, "<split>/<class>/", folder, index_splits)


def check_training_images(
    train_dir: Path,
    train: SplitIndex,
    mapping: dict[str, str],
    names: tuple[str, ...],
    classes: Sequence[str] | None,
) -> None:
    """Check that every class has training images.

    A class folder only in ``val/``, or a typo in ``data.classes``, would otherwise make a class
    that the model never sees in training.

    Raises:
        DatasetFormatError: naming the class, the training folder it needs and ``data.classes``.
    """
    counts = train.class_counts(len(names)).tolist()
    empty = [name for name, count in zip(names, counts, strict=True) if count == 0]
    if not empty:
        return
    folders = [str(train_dir / key) for key, name in mapping.items() if name == empty[0]]
    listed = f"data.classes={list(classes)} lists it" if classes else "a class folder names it"
    raise DatasetFormatError(
        f"{' or '.join(folders)}: class {empty[0]!r} has no training images ({listed}; "
        f"{len(empty)} class(es) without any: {', '.join(empty)}); add training images, or "
        "list only the classes to train in data.classes"
    )
