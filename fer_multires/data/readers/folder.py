"""Image-folder reader: ``root/<split>/<class>/*.{jpg,jpeg,png}``.

Splits ``train`` and ``val`` are required, ``test`` optional. Class folder names map to the
canonical names case-insensitively, with the usual aliases (angry, happy, sad, surprised,
fearful, disgusted, ...); a folder whose name is none of them is an error, unless
``data.classes`` lists the class folder names (in label order): then those are the classes,
canonicalised where they are known names. Files that are not images are counted
(``not_image``), and so are class folders of a split that ``data.classes`` does not list
(``unlisted_class``, their images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def class_folders(root: Path, splits: Sequence[str]) -> dict[str, list[str]]:
    """Return each split's class folder names, sorted."""
    return {
        split: sorted(e.name for e in os.scandir(root / split) if e.is_dir()) for split in splits
    }


def folder_classes(folders: dict[str, list[str]], root: Path) -> dict[str, str]:
    """Map every class folder name to its canonical class name.

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
            mapping[name] = canonical
    return mapping


def explicit_classes(classes: Sequence[str]) -> dict[str, str]:
    """Map ``data.classes`` entries to class names (canonical where known, else as written).

    Raises:
        ValueError: naming ``data.classes`` for an empty list or a repeated class.
    """
    if not classes:
        raise ValueError("data.classes must list at least one class folder name")
    mapping = {str(name): canonical_name(str(name)) or str(name) for name in classes}
    names = list(mapping.values())
    if len(set(names)) != len(names) or len(mapping) != len(classes):
        raise ValueError(f"data.classes={list(classes)} names a class twice")
    return mapping


def read_split(
    root: Path, folders: list[str], mapping: dict[str, str], classes: tuple
) -> SplitIndex:
    """Index one split's images (sorted by class folder, then file name)."""
    labels, paths = [], []
    skipped = SkipCounts(SKIP_NAMES)
    for folder in folders:
        files = sorted(e.name for e in os.scandir(root / folder) if e.is_file())
        images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        skipped.count("not_image", len(files) - len(images))
        if folder not in mapping:
            skipped.count("unlisted_class", len(images))
            continue
        labels += [classes.index(mapping[folder])] * len(images)
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
    folders = class_folders(folder, splits)
    if classes is None:
        mapping = folder_classes(folders, folder)
        names = tuple(c for c in CANONICAL_CLASSES if c in set(mapping.values()))
    else:
        mapping = explicit_classes(classes)
        names = tuple(mapping.values())
    index_splits = {s: read_split(folder / s, folders[s], mapping, names) for s in splits}
    return DatasetIndex("folder", names, "<split>/<class>/", folder, index_splits)
