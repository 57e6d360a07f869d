"""Small generated datasets in the real layouts of RAF-DB, FER2013, FERPlus, AffectNet and folders.

The faces come from the synthetic face renderer (:mod:`fer_multires.data.synthetic.faces`),
several identities per class and split, so that the readers, the data module and cross-dataset
evaluation can be tested and demonstrated offline. Each writer also plants the quirks its reader
must count (missing and unlisted images, FERPlus votes without a majority, AffectNet's codes
8-10, ...) and returns what it wrote, including the skip counts a reader must report.

``python -m fer_multires.data.synthetic.image_sets LAYOUT OUT_DIR [--per-class N] [--seed S]``
writes one (LAYOUT: rafdb, fer2013, ferplus, affectnet, affectnet_npy, folder).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers.affectnet import AFFECTNET_LABELS
from fer_multires.data.readers.fer2013 import FER2013_LABELS
from fer_multires.data.readers.ferplus import VOTE_COLUMNS
from fer_multires.data.readers.rafdb import LABEL_FILE, RAFDB_LABELS
from fer_multires.data.synthetic.faces import render_face

Counts = dict[str, dict[str, int]]


def face(name: str, identity: int, size: int, seed: int) -> Image.Image:
    """Render one face of canonical class ``name`` (Contempt: a faint, mirrored Disgust)."""
    if name == "Contempt":
        image = render_face(identity, EXPRESSIONS_7.index("Disgust"), 0.4,
                            condition_seed=seed, image_size=size)  # fmt: skip
        return ImageOps.mirror(image)
    return render_face(identity, EXPRESSIONS_7.index(name), condition_seed=seed, image_size=size)


def samples(classes: Sequence[str], per_class: int, split: str, seed: int):
    """Yield ``(position, class name, identity, condition seed)`` for one split."""
    offset = {"train": 0, "val": 1, "test": 2}[split]
    position = 0
    for c, name in enumerate(classes):
        for k in range(per_class):
            identity = seed * 100_000 + offset * 10_000 + k * 16 + c
            yield position, name, identity, identity * 7 + 1
            position += 1


def jpeg(image: Image.Image) -> bytes:
    """Encode an image as a JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def pixels_text(image: Image.Image) -> str:
    """Return the FER2013 ``pixels`` field of an image: 2304 grey levels."""
    grey = np.asarray(image.convert("L").resize((48, 48), Image.Resampling.BILINEAR))
    return " ".join(str(int(v)) for v in grey.reshape(-1))


def empty_counts(splits: Sequence[str], classes: Sequence[str]) -> Counts:
    """Return zero counts per split and class."""
    return {split: dict.fromkeys(classes, 0) for split in splits}


# --------------------------------------------------------------------------- RAF-DB


def write_rafdb(
    root: str | Path, per_class: int = 3, seed: int = 0, image_size: int = 100,
    nested_basic: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write RAF-DB basic: the label file, aligned and original images.

    Plants one listed image missing from both image folders and one unlisted image in each.

    Returns:
        ``{"root", "counts": {split: {class: n}}, "skipped": {...}}``.
    """
    basic = Path(root) / "basic" if nested_basic else Path(root)
    aligned, original = basic / "Image" / "aligned", basic / "Image" / "original"
    for folder in (aligned, original, basic / LABEL_FILE.parent):
        folder.mkdir(parents=True, exist_ok=True)
    counts, lines = empty_counts(("train", "val"), EXPRESSIONS_7), []
    for split, prefix, digits in (("train", "train", 5), ("val", "test", 4)):
        for position, name, identity, condition in samples(EXPRESSIONS_7, per_class, split, seed):
            stem = f"{prefix}_{position + 1:0{digits}d}"
            lines.append(f"{stem}.jpg {RAFDB_LABELS.index(name) + 1}")
            image = face(name, identity, image_size, condition)
            (aligned / f"{stem}_aligned.jpg").write_bytes(jpeg(image))
            big = image.resize((image_size * 2, image_size * 3 // 2))
            (original / f"{stem}.jpg").write_bytes(jpeg(big))
            counts[split][name] += 1
    lines.append("train_99999.jpg 1")  # listed, on disk in neither folder
    (aligned / "train_88888_aligned.jpg").write_bytes(jpeg(face("Neutral", 1, image_size, 1)))
    (original / "train_88888.jpg").write_bytes(jpeg(face("Neutral", 1, image_size, 1)))
    (basic / LABEL_FILE).write_text("\n".join(lines) + "\n")
    skipped = {"train": {"missing_image": 1, "unlisted_image": 1},
               "val": {"missing_image": 0, "unlisted_image": 0}}  # fmt: skip
    return {"root": str(root), "counts": counts, "skipped": skipped}


# --------------------------------------------------------------------------- FER2013, FERPlus

USAGES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def fer2013_rows(per_class: int, seed: int, classes: Sequence[str]) -> list[tuple[str, str, str]]:
    """Return ``(usage, class name, pixels)`` rows for every split."""
    rows = []
    for split, usage in USAGES.items():
        for _, name, identity, condition in samples(classes, per_class, split, seed):
            rows.append((usage, name, pixels_text(face(name, identity, 48, condition))))
    return rows


def write_fer2013_csv(path: Path, rows: Sequence[tuple[str, str, str]], variant: str) -> None:
    """Write a FER2013 CSV file (``fer2013`` or Kaggle's ``icml`` column order and spaces)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = (
            ["emotion", "pixels", "Usage"]
            if variant == "fer2013"
            else ["emotion", " Usage", " pixels"]
        )
        writer.writerow(header)
        for usage, name, pixels in rows:
            label = FER2013_LABELS.index(name if name != "Contempt" else "Disgust")
            fields = [label, pixels, usage] if variant == "fer2013" else [label, usage, pixels]
            writer.writerow(fields)


def write_fer2013(
    root: str | Path, per_class: int = 2, seed: int = 0, variant: str = "fer2013"
) -> dict[str, Any]:
    """Write ``fer2013.csv`` (or ``icml_face_data.csv``): 48x48 grey rows, three splits.

    Returns:
        ``{"root", "counts": {split: {class: n}}}``.
    """
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    rows = fer2013_rows(per_class, seed, EXPRESSIONS_7)
    name = "fer2013.csv" if variant == "fer2013" else "icml_face_data.csv"
    write_fer2013_csv(folder / name, rows, variant)
    counts = {split: dict.fromkeys(EXPRESSIONS_7, per_class) for split in USAGES}
    return {"root": str(folder), "counts": counts, "file": name}


def majority_votes(name: str) -> list[int]:
    """Return ten-annotator votes whose majority is ``name``: 7 for it, 2 and a lone outlier."""
    votes = [0] * len(VOTE_COLUMNS)
    column = next(i for i, (_, c) in enumerate(VOTE_COLUMNS) if c == name)
    votes[column] = 7
    votes[(column + 1) % 8] = 2
    votes[(column + 2) % 8] = 1  # a single vote: an outlier, set to 0 by the rule
    return votes


#: Rows the majority rule leaves out: (skip name, image name, votes).
FERPLUS_SKIPS: tuple[tuple[str, str, list[int]], ...] = (
    ("unknown", "x", [4, 4, 2, 0, 0, 0, 0, 0, 0, 0]),  # no class holds more than half
    ("unknown", "x", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),  # a tie: exactly half is not a majority
    ("unknown", "x", [1, 0, 0, 0, 0, 0, 0, 0, 9, 0]),  # the unknown column wins
    ("not_face", "x", [0, 2, 0, 0, 0, 0, 0, 0, 0, 8]),  # NF wins
    ("not_face", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # an empty image name
)


def write_ferplus(root: str | Path, per_class: int = 2, seed: int = 0) -> dict[str, Any]:
    """Write ``fer2013.csv`` and ``fer2013new.csv``: 8 classes by majority vote, plus skips.

    Each split also holds the rows of :data:`FERPLUS_SKIPS`, and one row whose majority is
    Neutral only after the lone votes are dropped.

    Returns:
        ``{"root", "counts": {split: {class: n}}, "skipped": {split: {name: n}}}``.
    """
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    rows = fer2013_rows(per_class, seed, EXPRESSIONS_CONTEMPT)
    extra = [(usage, "Neutral", rows[0][2]) for usage in USAGES.values()]
    extra_skips = [(usage, skip) for usage in USAGES.values() for skip in FERPLUS_SKIPS]
    all_rows = rows + extra + [(usage, "Neutral", rows[0][2]) for usage, _ in extra_skips]
    write_fer2013_csv(folder / "fer2013.csv", all_rows, "fer2013")
    counts = empty_counts(USAGES, EXPRESSIONS_CONTEMPT)
    skipped = {split: {"not_face": 0, "unknown": 0, "contempt": 0} for split in USAGES}
    split_of = {usage: split for split, usage in USAGES.items()}
    with open(folder / "fer2013new.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Usage", "Image name", *(name for name, _ in VOTE_COLUMNS)])
        for i, (usage, name, _) in enumerate(rows):
            writer.writerow([usage, f"fer{i:07d}.png", *majority_votes(name)])
            counts[split_of[usage]][name] += 1
        for j, (usage, _, _) in enumerate(extra):  # 5 of 8 votes once the two 1s are dropped
            writer.writerow([usage, f"fer{len(rows) + j:07d}.png", 5, 1, 1, 0, 0, 3, 0, 0, 0, 0])
            counts[split_of[usage]]["Neutral"] += 1
        for k, (usage, (skip, image, votes)) in enumerate(extra_skips):
            name = f"fer{len(rows) + len(extra) + k:07d}.png" if image else ""
            writer.writerow([usage, name, *votes])
            skipped[split_of[usage]][skip] += 1
    return {"root": str(folder), "counts": counts, "skipped": skipped}


# --------------------------------------------------------------------------- AffectNet

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]  # fmt: skip


def write_affectnet(
    root: str | Path, per_class: int = 2, seed: int = 0, layout: str = "csv"
) -> dict[str, Any]:
    """Write AffectNet in its CSV layout (faces inside larger images, with boxes) or npy layout.

    Plants one row of each code 8, 9 and 10 per split and one annotated image missing from disk
    (npy layout: also an image without annotation).

    Returns:
        ``{"root", "counts": {split: {class: n}}, "skipped": {split: {name: n}}, "boxes"}``.
    """
    folder = Path(root)
    counts = empty_counts(("train", "val"), EXPRESSIONS_CONTEMPT)
    skip_names = ("none", "uncertain", "non_face", "missing_image", "unannotated_image", "contempt")
    skipped = {split: dict.fromkeys(skip_names, 0) for split in counts}
    writer = write_affectnet_csv if layout == "csv" else write_affectnet_npy
    boxes = writer(folder, per_class, seed, counts, skipped)
    return {"root": str(folder), "counts": counts, "skipped": skipped, "boxes": boxes}


def affectnet_items(split: str, per_class: int, seed: int):
    """Yield ``(id, code, class name or None, identity, condition)``, codes 8-10 included."""
    for position, name, identity, condition in samples(
        EXPRESSIONS_CONTEMPT, per_class, split, seed
    ):
        yield f"{split}{position:05d}", AFFECTNET_LABELS.index(name), name, identity, condition
    for code in (8, 9, 10):
        yield f"{split}_code{code}", code, None, 7 + code, code


def write_affectnet_csv(folder: Path, per_class: int, seed: int, counts: Counts,
                        skipped: Counts) -> dict[str, list[int]]:  # fmt: skip
    """Write ``training.csv``, ``validation.csv`` and ``Manually_Annotated_Images/``."""
    boxes: dict[str, list[int]] = {}
    landmarks = ";".join(["50.0"] * 136)
    for split, file in (("train", "training.csv"), ("val", "validation.csv")):
        rows = []
        for item, code, name, identity, condition in affectnet_items(split, per_class, seed):
            relpath = f"{len(rows) % 3 + 1}/{item}.jpg"
            x, y, size = 20 + len(rows) % 7, 10 + len(rows) % 5, 96
            canvas = Image.new("RGB", (160, 140), (40 + 5 * (len(rows) % 9), 90, 120))
            canvas.paste(face(name or "Neutral", identity, size, condition), (x, y))
            (folder / CSV_IMAGE_DIR / relpath).parent.mkdir(parents=True, exist_ok=True)
            (folder / CSV_IMAGE_DIR / relpath).write_bytes(jpeg(canvas))
            rows.append([relpath, x, y, size, size, landmarks, code, 0.1, -0.2])
            boxes[relpath] = [x, y, size, size]
            if name is None:
                skipped[split][{8: "none", 9: "uncertain", 10: "non_face"}[code]] += 1
            else:
                counts[split][name] += 1
        rows.append(["9/absent.jpg", 0, 0, 50, 50, landmarks, 1, 0.5, 0.5])
        skipped[split]["missing_image"] += 1
        with open(folder / file, "w", newline="") as f:
            csv.writer(f).writerows([AFFECTNET_HEADER, *rows])
    return boxes


CSV_IMAGE_DIR = "Manually_Annotated_Images"


def write_affectnet_npy(folder: Path, per_class: int, seed: int, counts: Counts,
                        skipped: Counts) -> dict[str, list[int]]:  # fmt: skip
    """Write ``train_set/`` and ``val_set/``: ``images/<id>.jpg``, ``annotations/<id>_exp.npy``."""
    for split, name_of_set in (("train", "train_set"), ("val", "val_set")):
        images, annotations = folder / name_of_set / "images", folder / name_of_set / "annotations"
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        for number, (_, code, name, identity, condition) in enumerate(
            affectnet_items(split, per_class, seed)
        ):
            (images / f"{number}.jpg").write_bytes(
                jpeg(face(name or "Neutral", identity, 112, condition))
            )
            np.save(annotations / f"{number}_exp.npy", np.array(str(code)))
            if name is None:
                skipped[split][{8: "none", 9: "uncertain", 10: "non_face"}[code]] += 1
            else:
                counts[split][name] += 1
        np.save(annotations / "99999_exp.npy", np.array("1"))  # annotated, no image
        skipped[split]["missing_image"] += 1
        (images / "88888.jpg").write_bytes(jpeg(face("Neutral", 3, 112, 3)))  # no annotation
        skipped[split]["unannotated_image"] += 1
    return {}


# --------------------------------------------------------------------------- image folders

#: Folder names as users write them: aliases in mixed case.
FOLDER_NAMES = {"Neutral": "neutral", "Anger": "Angry", "Disgust": "disgusted", "Fear": "FEARFUL",
                "Happiness": "happy", "Sadness": "sad", "Surprise": "surprised"}  # fmt: skip
#: How :func:`write_folder` names the class folders.
FOLDER_NAMINGS: dict[str, Callable[[str], str]] = {
    "alias": FOLDER_NAMES.__getitem__,  # angry, happy, FEARFUL, ...: aliases in mixed case
    "lower": str.lower,  # anger, happiness, ...
    "canonical": str,  # Anger, Happiness, ...
}


def write_folder(
    root: str | Path, per_class: int = 2, seed: int = 0, image_size: int = 64,
    splits: Sequence[str] = ("train", "val"), names: str = "alias",
) -> dict[str, Any]:  # fmt: skip
    """Write ``root/<split>/<class>/*.jpg|PNG`` with a stray text file in each split.

    Args:
        root: the folder to write into.
        per_class: images per class and split.
        seed: makes the faces (identities and conditions) differ between datasets.
        image_size: side of the square images.
        splits: the splits to write (``train``, ``val``, optionally ``test``).
        names: ``alias`` (mixed-case aliases such as ``Angry``, ``FEARFUL``), ``lower``
            (``anger``) or ``canonical`` (``Anger``).

    Returns:
        ``{"root", "counts": {split: {class: n}}, "skipped": {split: {name: n}}, "folders":
        {class: folder name}}``.
    """
    if names not in FOLDER_NAMINGS:
        raise ValueError(f"names={names!r} is not one of {', '.join(FOLDER_NAMINGS)}")
    folder = Path(root)
    folders = {name: FOLDER_NAMINGS[names](name) for name in EXPRESSIONS_7}
    counts = empty_counts(splits, EXPRESSIONS_7)
    skipped = {split: {"not_image": 1, "unlisted_class": 0} for split in splits}
    for split in splits:
        for position, name, identity, condition in samples(EXPRESSIONS_7, per_class, split, seed):
            target = folder / split / folders[name]
            target.mkdir(parents=True, exist_ok=True)
            image = face(name, identity, image_size, condition)
            if position % 2:
                image.save(target / f"img{position:04d}.PNG")
            else:
                (target / f"img{position:04d}.jpg").write_bytes(jpeg(image))
            counts[split][name] += 1
        (folder / split / folders["Neutral"] / "notes.txt").write_text("not an image\n")
    return {"root": str(folder), "counts": counts, "skipped": skipped, "folders": folders}


WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    "rafdb": write_rafdb,
    "fer2013": write_fer2013,
    "ferplus": write_ferplus,
    "affectnet": write_affectnet,
    "affectnet_npy": lambda root, **kw: write_affectnet(root, layout="npy", **kw),
    "folder": write_folder,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: write one generated dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=sorted(WRITERS))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        parser.error(f"{args.out_dir} is not empty")
    written = WRITERS[args.layout](args.out_dir, per_class=args.per_class, seed=args.seed)
    totals = {split: sum(per.values()) for split, per in written["counts"].items()}
    print(
        f"wrote {args.layout} into {args.out_dir}: "
        + ", ".join(f"{s} {n}" for s, n in totals.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
