"""Dataset readers (RAF-DB, FER2013, FERPlus, AffectNet, image folders) on generated trees.

Every tree is written in its real layout by :mod:`fer_multires.data.synthetic.image_sets`, with
its quirks planted; each reader must find every sample, count every skip by name, and name the
file and line (or the config key) of every error.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers import READERS
from fer_multires.data.readers.affectnet import read_affectnet
from fer_multires.data.readers.fer2013 import read_fer2013
from fer_multires.data.readers.ferplus import UNKNOWN, majority_vote, majority_votes, read_ferplus
from fer_multires.data.readers.folder import read_folder
from fer_multires.data.readers.index import DatasetFormatError, DatasetIndex
from fer_multires.data.readers.rafdb import LABEL_FILE, read_rafdb
from fer_multires.data.synthetic import image_sets


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One small generated tree per layout (read-only: tests that edit one copy it first)."""
    base = tmp_path_factory.mktemp("trees")
    return {
        layout: writer(base / layout, per_class=2) for layout, writer in image_sets.WRITERS.items()
    }


def copy_tree(written: dict, tmp_path: Path) -> Path:
    """Return a private copy of a generated tree, for a test that damages it."""
    return Path(shutil.copytree(written["root"], tmp_path / "copy"))


def per_class(index: DatasetIndex, split: str) -> dict[str, int]:
    """Return a split's sample count per class name."""
    counts = index.splits[split].class_counts(index.num_classes).tolist()
    return dict(zip(index.classes, counts, strict=True))


def assert_matches(index: DatasetIndex, written: dict, skips: bool = True) -> None:
    """Check a read index against what its generator says it wrote."""
    assert set(index.splits) == set(written["counts"])
    for split, part in index.splits.items():
        expected = {c: n for c, n in written["counts"][split].items() if c in index.classes}
        assert per_class(index, split) == expected, split
        if skips:
            assert part.skipped.as_dict() == written["skipped"][split], split
        assert part.paths.dtype.kind == "S" and part.label.dtype == np.int8
        assert not part.has_videos


def rewrite_line(path: Path, number: int, text: str) -> None:
    """Replace 1-based line ``number`` of a text file."""
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_registry_names_each_reader() -> None:
    assert {"rafdb", "fer2013", "ferplus", "affectnet", "folder"} <= set(READERS)
    assert READERS["rafdb"] is read_rafdb and READERS["folder"] is read_folder


@pytest.mark.parametrize(
    ("dataset", "option"),
    [("rafdb", {}), ("fer2013", {}), ("ferplus", {}), ("affectnet", {}), ("folder", {})],
)
def test_missing_root_names_data_root(tmp_path, dataset, option) -> None:
    with pytest.raises(FileNotFoundError, match="data.root"):
        READERS[dataset](tmp_path / "absent", **option)


def test_rafdb_aligned_counts_and_skips(trees) -> None:
    index = read_rafdb(trees["rafdb"]["root"])
    assert_matches(index, trees["rafdb"])
    assert index.name == "rafdb" and index.classes == EXPRESSIONS_7
    assert index.images_dir == Path(trees["rafdb"]["root"]) / "Image" / "aligned"
    assert index.splits["train"].image_relpath(0) == "train_00001_aligned.jpg"
    assert index.splits["val"].image_relpath(0).startswith("test_0001")
    assert all((index.images_dir / p.decode()).is_file() for p in index.splits["train"].paths)


def test_rafdb_labels_follow_its_own_numbering(tmp_path) -> None:
    root = tmp_path / "raf"
    image_sets.write_rafdb(root, per_class=1)
    # RAF-DB's label 1 is Surprise and 7 Neutral: check each listed image's class by name
    index = read_rafdb(root)
    listed = dict(line.split() for line in (root / LABEL_FILE).read_text().splitlines())
    raf = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
    part = index.splits["train"]
    for i in range(len(part)):
        name = part.image_relpath(i).replace("_aligned", "")
        assert index.classes[part.label[i]] == raf[int(listed[name]) - 1]


def test_rafdb_original_images_and_nested_basic(tmp_path) -> None:
    written = image_sets.write_rafdb(tmp_path / "release", per_class=1, nested_basic=True)
    for root in (tmp_path / "release", tmp_path / "release" / "basic"):
        index = read_rafdb(root, images="original")
        assert_matches(index, written)
        assert index.images_dir == tmp_path / "release" / "basic" / "Image" / "original"
        assert index.splits["train"].image_relpath(0) == "train_00001.jpg"
        assert index.layout == "basic/original"


def test_rafdb_option_and_missing_files_are_errors(trees, tmp_path) -> None:
    with pytest.raises(ValueError, match="data.rafdb.images"):
        read_rafdb(trees["rafdb"]["root"], images="cropped")
    with pytest.raises(DatasetFormatError, match="list_patition_label.txt"):
        read_rafdb(tmp_path)  # neither root/ nor root/basic/ holds the (misspelt) label file
    root = copy_tree(trees["rafdb"], tmp_path)
    shutil.rmtree(root / "Image" / "original")
    with pytest.raises(FileNotFoundError, match="data.rafdb.images=original"):
        read_rafdb(root, images="original")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train_00001.jpg", "is not '<image name> <label 1..7>'"),
        ("train_00001.jpg five", "is not '<image name> <label 1..7>'"),
        ("train_00001.jpg 8", "label 8 is outside 1..7"),
        ("val_00001.jpg 3", "starts with neither train_ nor test_"),
        ("train_00001.jpg 3", r"listed again \(first on line 1\)"),
    ],
)
def test_rafdb_bad_line_names_file_and_line(trees, tmp_path, line, message) -> None:
    root = copy_tree(trees["rafdb"], tmp_path)
    rewrite_line(root / LABEL_FILE, 2, line)
    with pytest.raises(DatasetFormatError, match=f"list_patition_label.txt:2: .*{message}"):
        read_rafdb(root)


@pytest.mark.parametrize("variant", ["fer2013", "icml"])
def test_fer2013_both_files_decode_every_row(tmp_path, variant) -> None:
    written = image_sets.write_fer2013(tmp_path / "fer", per_class=2, variant=variant)
    index = read_fer2013(written["root"])
    assert_matches(index, written, skips=False)
    assert index.name == "fer2013" and index.classes == EXPRESSIONS_7
    assert index.layout == written["file"] and set(index.splits) == {"train", "val", "test"}
    with open(Path(written["root"]) / written["file"], newline="") as f:
        rows = list(csv.reader(f))
    header = [name.strip() for name in rows[0]]
    fer_labels = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
    for split in index.splits.values():
        assert split.pixels.dtype == np.uint8 and split.pixels.shape[1:] == (48, 48)
        for i in (0, len(split) - 1):
            file, line = split.image_relpath(i).split(":")
            row = dict(zip(header, rows[int(line) - 1], strict=True))
            assert file == written["file"]
            expected = np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48)
            np.testing.assert_array_equal(split.pixels[i], expected)
            assert index.classes[split.label[i]] == fer_labels[int(row["emotion"])]


def test_fer2013_with_both_files_says_which_it_reads(tmp_path, caplog) -> None:
    written = image_sets.write_fer2013(tmp_path / "fer", per_class=2, variant="fer2013")
    shutil.copyfile(
        Path(written["root"]) / "fer2013.csv", Path(written["root"]) / "icml_face_data.csv"
    )
    with caplog.at_level("WARNING"):
        index = read_fer2013(written["root"])
    assert index.layout == "fer2013.csv"
    assert "holds both fer2013.csv and icml_face_data.csv: reading" in caplog.text


def test_fer2013_without_its_file_names_both(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="fer2013.csv nor icml_face_data.csv"):
        read_fer2013(tmp_path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("pixels", "1 2 3", "pixels has 3 values; expected 2304"),
        ("pixels", "x " * 2304, "not an integer"),
        ("pixels", "1 " * 2304 + "x", "not an integer"),
        ("pixels", "300 " * 2304, r"outside 0\.\.255"),
        ("emotion", "7", r"emotion '7' is not a label 0\.\.6"),
        ("Usage", "Validation", "Usage 'Validation' is not one of Training"),
    ],
)
def test_fer2013_bad_row_names_file_and_line(tmp_path, column, value, message) -> None:
    written = image_sets.write_fer2013(tmp_path / "fer", per_class=1)
    path = Path(written["root"]) / "fer2013.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[3][rows[0].index(column)] = value
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DatasetFormatError, match=f"fer2013.csv:4: .*{message}"):
        read_fer2013(written["root"])


def test_fer2013_missing_column_and_short_row(tmp_path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DatasetFormatError, match="fer2013.csv:1: missing column.*pixels"):
        read_fer2013(tmp_path)
    path.write_text("emotion,pixels,Usage\n0,1 2\n")
    with pytest.raises(DatasetFormatError, match="fer2013.csv:2: 2 fields, expected 3"):
        read_fer2013(tmp_path)


@pytest.mark.parametrize(
    ("votes", "winner"),
    [
        ([7, 2, 1, 0, 0, 0, 0, 0, 0, 0], 0),  # plain majority
        ([0, 0, 0, 0, 0, 0, 0, 6, 4, 0], 7),  # contempt
        ([5, 1, 1, 0, 0, 3, 0, 0, 0, 0], 0),  # 5 of 10 is not a majority, 5 of 8 is once 1s go
        ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], UNKNOWN),  # no class holds more than half
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], UNKNOWN),  # a tie: exactly half
        ([0, 3, 0, 3, 0, 0, 0, 0, 0, 0], UNKNOWN),  # a tie between the two
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], UNKNOWN),  # only lone votes: nothing left
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], UNKNOWN),  # no votes at all
        ([1, 0, 0, 0, 0, 0, 0, 0, 9, 0], 8),  # the unknown column wins
        ([0, 2, 0, 0, 0, 0, 0, 0, 0, 8], 9),  # NF wins
        ([0, 2, 0, 0, 0, 0, 0, 0, 0, 2], UNKNOWN),  # a tie with NF
    ],
)
def test_ferplus_majority_rule(votes, winner) -> None:
    assert majority_vote(np.array(votes)) == winner
    assert majority_votes(np.array([votes, [7, 2, 1, 0, 0, 0, 0, 0, 0, 0]])).tolist() == [winner, 0]


def test_ferplus_eight_classes_counts_and_skips(trees) -> None:
    written = trees["ferplus"]
    index = read_ferplus(written["root"])
    assert_matches(index, written)
    assert index.name == "ferplus" and index.classes == EXPRESSIONS_CONTEMPT
    assert per_class(index, "train")["Contempt"] == 2
    # the images are FER2013's rows, named as FER2013 names them
    fer = read_fer2013(written["root"])
    name = index.splits["val"].image_relpath(3)
    row = [p.decode() for p in fer.splits["val"].paths].index(name)
    np.testing.assert_array_equal(index.splits["val"].pixels[3], fer.splits["val"].pixels[row])


def test_ferplus_seven_classes_count_contempt(trees) -> None:
    written = trees["ferplus"]
    index = read_ferplus(written["root"], num_classes=7)
    assert index.classes == EXPRESSIONS_7
    for split, part in index.splits.items():
        expected = dict(written["skipped"][split], contempt=written["counts"][split]["Contempt"])
        assert part.skipped.as_dict() == expected
        assert per_class(index, split) == {c: written["counts"][split][c] for c in EXPRESSIONS_7}
    with pytest.raises(ValueError, match="data.num_classes=6"):
        read_ferplus(written["root"], num_classes=6)


def rewrite_csv(path: Path, edit) -> None:
    """Rewrite a CSV file through ``edit(rows) -> rows``."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(edit(rows))


def test_ferplus_files_that_do_not_align_are_errors(trees, tmp_path) -> None:
    root = copy_tree(trees["ferplus"], tmp_path)
    rewrite_csv(root / "fer2013new.csv", lambda rows: rows[:-1])
    with pytest.raises(DatasetFormatError, match="fer2013new.csv: .* rows, but .*fer2013.csv has"):
        read_ferplus(root)
    rewrite_csv(root / "fer2013new.csv", lambda rows: [*rows, rows[-1]])  # count restored

    def swap_usage(rows):
        rows[5][0] = "PrivateTest" if rows[5][0] != "PrivateTest" else "Training"
        return rows

    rewrite_csv(root / "fer2013new.csv", swap_usage)
    with pytest.raises(DatasetFormatError, match="fer2013new.csv:6: Usage .* not aligned"):
        read_ferplus(root)


def test_ferplus_bad_votes_and_missing_file(trees, tmp_path) -> None:
    root = copy_tree(trees["ferplus"], tmp_path)

    def bad_vote(rows):
        rows[2][4] = "two"
        return rows

    rewrite_csv(root / "fer2013new.csv", bad_vote)
    with pytest.raises(DatasetFormatError, match="fer2013new.csv:3: votes .* non-negative"):
        read_ferplus(root)
    rewrite_csv(root / "fer2013new.csv", lambda rows: [[c for c in r[:-1]] for r in rows])
    with pytest.raises(DatasetFormatError, match="fer2013new.csv:1: missing column.*NF"):
        read_ferplus(root)
    (root / "fer2013new.csv").unlink()
    with pytest.raises(FileNotFoundError, match="data.root: .* has no fer2013new.csv"):
        read_ferplus(root)


def test_ferplus_vote_too_large_for_the_index_names_file_and_line(trees, tmp_path) -> None:
    root = copy_tree(trees["ferplus"], tmp_path)

    def huge_vote(rows):
        rows[2][4] = "9" * 23
        return rows

    rewrite_csv(root / "fer2013new.csv", huge_vote)
    with pytest.raises(DatasetFormatError, match="fer2013new.csv:3: votes .* <= 2147483647"):
        read_ferplus(root)


def test_affectnet_csv_layout_boxes_and_skips(trees) -> None:
    written = trees["affectnet"]
    index = read_affectnet(written["root"])
    assert_matches(index, written)
    assert index.name == "affectnet" and index.classes == EXPRESSIONS_CONTEMPT
    assert index.images_dir == Path(written["root"]) / "Manually_Annotated_Images"
    assert index.layout.startswith("csv")
    for part in index.splits.values():
        assert part.boxes.dtype == np.int32 and part.boxes.shape == (len(part), 4)
        for i in range(len(part)):
            assert part.boxes[i].tolist() == written["boxes"][part.image_relpath(i)]
    # the generated faces lie inside larger images: the box is what a loader crops
    from PIL import Image

    part = index.splits["train"]
    with Image.open(index.images_dir / part.image_relpath(0)) as image:
        x, y, w, h = part.boxes[0].tolist()
        assert image.width > w and image.height > h
        assert x + w <= image.width and y + h <= image.height


def test_affectnet_crop_none_and_seven_classes(trees) -> None:
    written = trees["affectnet"]
    whole = read_affectnet(written["root"], crop="none")
    assert all(part.boxes is None for part in whole.splits.values())
    assert_matches(whole, written)
    seven = read_affectnet(written["root"], num_classes=7)
    assert seven.classes == EXPRESSIONS_7
    assert seven.splits["train"].skipped["contempt"] == written["counts"]["train"]["Contempt"]
    with pytest.raises(ValueError, match="data.affectnet.crop='face'"):
        read_affectnet(written["root"], crop="face")
    with pytest.raises(ValueError, match="data.num_classes=9"):
        read_affectnet(written["root"], num_classes=9)


def test_affectnet_npy_layout_is_detected(trees) -> None:
    written = trees["affectnet_npy"]
    index = read_affectnet(written["root"])
    assert_matches(index, written)
    assert index.layout == "npy" and index.images_dir == Path(written["root"])
    assert all(part.boxes is None for part in index.splits.values())
    assert index.splits["val"].image_relpath(0).startswith("val_set/images/")
    assert index.splits["train"].skipped["unannotated_image"] == 1


def test_affectnet_neither_layout_names_both(tmp_path) -> None:
    (tmp_path / "training.csv").write_text("")
    with pytest.raises(FileNotFoundError, match="neither AffectNet layout.*train_set"):
        read_affectnet(tmp_path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("expression", "11", r"expression '11' is not a code 0\.\.10"),
        ("expression", "", r"expression '' is not a code 0\.\.10"),
        ("face_width", "wide", "face box .* is not 4 numbers"),
        ("face_width", "0", r"face box x=.*w=0.*expected face_width and face_height >= 1"),
        ("face_height", "-2", r"face box x=.*h=-2.*expected face_width and face_height >= 1"),
        ("face_x", "inf", "face box .* is not 4 numbers"),
        ("face_x", "99999999999", r"face box .* is not 4 numbers -2147483648\.\.2147483647"),
        ("face_x", "-5000", r"face box x=-5000, .* lies entirely outside the image"),
        ("face_y", "-96", r"face box x=.*y=-96, .* lies entirely outside the image"),
    ],
)
def test_affectnet_bad_row_names_file_and_line(trees, tmp_path, column, value, message) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)

    def edit(rows):
        rows[2][rows[0].index(column)] = value
        return rows

    rewrite_csv(root / "validation.csv", edit)
    with pytest.raises(DatasetFormatError, match=f"validation.csv:3: {message}"):
        read_affectnet(root)


def test_affectnet_short_row_and_bad_npy(trees, tmp_path) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)
    rewrite_csv(root / "training.csv", lambda rows: [*rows[:4], rows[4][:3], *rows[5:]])
    with pytest.raises(DatasetFormatError, match="training.csv:5: 3 fields, expected 9"):
        read_affectnet(root)
    npy = Path(shutil.copytree(trees["affectnet_npy"]["root"], tmp_path / "npy"))
    np.save(npy / "val_set" / "annotations" / "0_exp.npy", np.array("12"))
    with pytest.raises(DatasetFormatError, match=r"0_exp.npy: expression 12 is not a code"):
        read_affectnet(npy)


@pytest.mark.parametrize("names", ["alias", "lower", "canonical"])
def test_folder_names_map_case_insensitively(tmp_path, names) -> None:
    written = image_sets.write_folder(tmp_path / "f", per_class=2, names=names)
    index = read_folder(written["root"])
    assert_matches(index, written)
    assert index.name == "folder" and index.classes == EXPRESSIONS_7
    paths = [p.decode() for p in index.splits["train"].paths]
    assert any(p.endswith(".PNG") for p in paths) and any(p.endswith(".jpg") for p in paths)
    assert all((Path(written["root"]) / p).is_file() for p in paths)


def test_folder_classes_are_the_canonical_order_of_those_present(tmp_path) -> None:
    root = tmp_path / "f"
    for split in ("train", "val", "test"):
        for name in ("Surprised", "joy", "ANGRY"):
            (root / split / name).mkdir(parents=True)
            (root / split / name / "a.jpeg").write_bytes(b"")
        (root / split / "stray.jpg").write_bytes(b"")  # beside the class folders
        (root / split / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    (root / "train" / "joy" / "nested").mkdir()
    index = read_folder(root)
    assert index.classes == ("Anger", "Happiness", "Surprise")
    assert set(index.splits) == {"train", "val", "test"}
    assert index.splits["train"].skipped.as_dict() == {"not_image": 3, "unlisted_class": 0}
    assert index.splits["test"].skipped.as_dict() == {"not_image": 2, "unlisted_class": 0}


def test_unknown_folder_name_lists_accepted_names(trees, tmp_path) -> None:
    root = copy_tree(trees["folder"], tmp_path)
    (root / "val" / "bored").mkdir()
    with pytest.raises(DatasetFormatError, match=r"val/bored: folder name 'bored'") as err:
        read_folder(root)
    assert "angry" in str(err.value) and "surprised" in str(err.value)
    assert "data.classes" in str(err.value)


def test_data_classes_override(trees, tmp_path) -> None:
    root = copy_tree(trees["folder"], tmp_path)
    for split in ("train", "val"):
        (root / split / "bored").mkdir()
        (root / split / "bored" / "x.png").write_bytes(b"")
    # aliases become canonical names, other names stay as written; folders match any case
    index = read_folder(root, classes=["bored", "HAPPY", "angry"])
    assert index.classes == ("bored", "Happiness", "Anger")
    counts = per_class(index, "val")
    assert counts == {"bored": 1, "Happiness": 2, "Anger": 2}
    assert index.splits["val"].skipped.as_dict() == {"not_image": 1, "unlisted_class": 10}
    with pytest.raises(ValueError, match="data.classes"):
        read_folder(root, classes=["happy", "joy"])
    with pytest.raises(ValueError, match="data.classes"):
        read_folder(root, classes=[])


def test_class_folder_only_in_val_is_an_error(trees, tmp_path) -> None:
    root = copy_tree(trees["folder"], tmp_path)
    (root / "val" / "contempt").mkdir()
    shutil.copyfile(next((root / "val").rglob("*.jpg")), root / "val" / "contempt" / "x.jpg")
    message = r"train/contempt: class 'Contempt' has no training images .*data.classes"
    with pytest.raises(DatasetFormatError, match=message):
        read_folder(root)


def test_data_classes_entry_without_training_images_is_an_error(trees, tmp_path) -> None:
    root = copy_tree(trees["folder"], tmp_path)
    message = r"train/hapy: class 'hapy' has no training images \(data.classes=\['hapy', 'sad'\]"
    with pytest.raises(DatasetFormatError, match=message):
        read_folder(root, classes=["hapy", "sad"])


def test_folder_without_val_is_an_error(tmp_path) -> None:
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="data.root: .* has no val/ folder"):
        read_folder(tmp_path)


def test_generators_are_deterministic(tmp_path) -> None:
    a = image_sets.write_ferplus(tmp_path / "a", per_class=1, seed=3)
    b = image_sets.write_ferplus(tmp_path / "b", per_class=1, seed=3)
    c = image_sets.write_ferplus(tmp_path / "c", per_class=1, seed=4)
    for name in ("fer2013.csv", "fer2013new.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "fer2013.csv").read_bytes() != (
        tmp_path / "c" / "fer2013.csv"
    ).read_bytes()
    assert a["counts"] == b["counts"] == c["counts"]


def test_cli_writes_a_dataset_and_refuses_a_full_folder(tmp_path, capsys) -> None:
    out = tmp_path / "raf"
    assert image_sets.main(["rafdb", str(out), "--per-class", "1", "--seed", "2"]) == 0
    assert "wrote rafdb" in capsys.readouterr().out
    assert len(read_rafdb(out).splits["val"]) == 7
    with pytest.raises(SystemExit):
        image_sets.main(["rafdb", str(out)])


#: (tree layout, reader, file to damage, 1-based line to damage)
TEXT_FILES = [
    ("rafdb", read_rafdb, "EmoLabel/list_patition_label.txt", 3),
    ("fer2013", read_fer2013, "fer2013.csv", 4),
    ("ferplus", read_ferplus, "fer2013new.csv", 5),
    ("affectnet", read_affectnet, "validation.csv", 2),
]


@pytest.mark.parametrize(("layout", "reader", "file", "line"), TEXT_FILES)
def test_non_utf8_byte_names_file_and_line(trees, tmp_path, layout, reader, file, line) -> None:
    root = copy_tree(trees[layout], tmp_path)
    lines = (root / file).read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1][:5] + b"\xff" + lines[line - 1][5:]
    (root / file).write_bytes(b"\n".join(lines))
    with pytest.raises(DatasetFormatError, match=rf"{file}:{line}: not UTF-8 text \(byte 0xff"):
        reader(root)


@pytest.mark.parametrize(("layout", "reader", "file", "line"), TEXT_FILES[1:])
def test_csv_row_with_an_extra_field_or_bad_quoting(trees, tmp_path, layout, reader, file, line):
    root = copy_tree(trees[layout], tmp_path)
    width = len(next(csv.reader((root / file).open())))
    lines = (root / file).read_text().splitlines()
    rewrite_line(root / file, line, lines[line - 1] + ",extra")
    with pytest.raises(DatasetFormatError, match=f"{file}:{line}: {width + 1} fields, expected"):
        reader(root)
    rewrite_line(root / file, line, "\0")
    with pytest.raises(DatasetFormatError, match=f"{file}:{line}: "):
        reader(root)


def test_a_header_only_or_empty_csv(trees, tmp_path) -> None:
    root = copy_tree(trees["fer2013"], tmp_path)
    (root / "fer2013.csv").write_text("")
    with pytest.raises(DatasetFormatError, match="fer2013.csv:1: empty file; expected a header"):
        read_fer2013(root)
    (root / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    index = read_fer2013(root)  # a header and no rows: empty splits, no test split
    assert set(index.splits) == {"train", "val"} and len(index.splits["train"]) == 0


def test_fer2013_kaggle_train_csv_alone_says_what_to_use(tmp_path) -> None:
    (tmp_path / "train.csv").write_text("emotion,pixels\n")
    with pytest.raises(FileNotFoundError, match="train.csv has no validation.*icml_face_data.csv"):
        read_fer2013(tmp_path)


def test_fer2013_decodes_a_generated_row_exactly(tmp_path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    pixels = " ".join(str(v) for v in image.reshape(-1))
    (tmp_path / "fer2013.csv").write_text(
        f"emotion,pixels,Usage\n6,{pixels},PrivateTest\n\n3,  {pixels}  ,Training\n"
    )
    index = read_fer2013(tmp_path)
    np.testing.assert_array_equal(index.splits["test"].pixels[0], image)
    np.testing.assert_array_equal(index.splits["train"].pixels[0], image)
    assert index.splits["train"].image_relpath(0) == "fer2013.csv:4"  # the blank line 3 counts
    assert index.classes[index.splits["test"].label[0]] == "Neutral"


def test_ferplus_reads_the_icml_file_too(trees, tmp_path) -> None:
    root = copy_tree(trees["ferplus"], tmp_path)
    with open(root / "fer2013.csv", newline="") as f:
        rows = list(csv.reader(f))
    with open(root / "icml_face_data.csv", "w", newline="") as f:
        csv.writer(f).writerows(
            [["emotion", " Usage", " pixels"], *([e, u, p] for e, p, u in rows[1:])]
        )
    (root / "fer2013.csv").unlink()
    index = read_ferplus(root)
    assert_matches(index, trees["ferplus"])
    assert index.splits["train"].image_relpath(0).startswith("icml_face_data.csv:")


def test_affectnet_box_outside_the_image_is_kept_as_annotated(trees, tmp_path) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)

    def edit(rows):
        rows[1][1:5] = ["-7", "-3", "40", "30"]  # a face at the top-left edge
        return rows

    rewrite_csv(root / "training.csv", edit)
    part = read_affectnet(root).splits["train"]
    assert part.boxes[0].tolist() == [-7, -3, 40, 30]  # clipped only when cropped


def test_affectnet_image_listed_twice_names_file_and_line(trees, tmp_path) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)
    rewrite_csv(root / "training.csv", lambda rows: [*rows, rows[1]])
    count = len((root / "training.csv").read_text().splitlines())
    with pytest.raises(
        DatasetFormatError, match=rf"training.csv:{count}: .* is listed again \(first on line 2\)"
    ):
        read_affectnet(root)


def test_affectnet_image_in_both_splits_names_both_files(trees, tmp_path) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)
    with open(root / "training.csv", newline="") as f:
        leaked = list(csv.reader(f))[3]
    rewrite_csv(root / "validation.csv", lambda rows: [rows[0], leaked, *rows[1:]])
    message = rf"validation.csv:2: {leaked[0]} is also listed in \S*training.csv:4; .*leak"
    with pytest.raises(DatasetFormatError, match=message):
        read_affectnet(root)


def test_affectnet_with_one_csv_says_which(tmp_path, trees) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)
    (root / "validation.csv").unlink()
    with pytest.raises(FileNotFoundError, match="neither AffectNet layout.*has only training.csv"):
        read_affectnet(root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a npy file", "not an expression code"),
        (None, r"expression 11 is not a code 0\.\.10"),
        ("1.5", "not an expression code"),
    ],
)
def test_affectnet_bad_npy_annotation(trees, tmp_path, content, message) -> None:
    root = copy_tree(trees["affectnet_npy"], tmp_path)
    path = root / "train_set" / "annotations" / "3_exp.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.array(content or "11"))
    with pytest.raises(DatasetFormatError, match=f"3_exp.npy: {message}"):
        read_affectnet(root)


@pytest.mark.parametrize(
    ("code", "before", "message"),
    [
        (2.7, None, r"array\(2\.7\) is not a whole number"),
        (2.7, 2.0, r"2\.7\) is not a whole number"),  # its header seen before: read from bytes
        (True, None, r"array\(True\) is a boolean, not an integer"),
    ],
)
def test_affectnet_npy_code_that_is_not_an_integer(trees, tmp_path, code, before, message):
    root = copy_tree(trees["affectnet_npy"], tmp_path)
    annotations = root / "train_set" / "annotations"
    if before is not None:
        np.save(annotations / "2_exp.npy", np.array(before))
    np.save(annotations / "3_exp.npy", np.array(code))
    with pytest.raises(DatasetFormatError, match=f"3_exp.npy: not an expression code.*{message}"):
        read_affectnet(root)


def test_affectnet_npy_codes_of_every_storage_type(tmp_path) -> None:
    written = image_sets.write_affectnet(tmp_path / "npy", per_class=1, layout="npy")
    annotations = Path(written["root"]) / "val_set" / "annotations"
    # each file's code stored as an int, a float and a longer string, beside the release's strings
    for number, kind in ((0, np.int64), (1, np.float32), (2, np.dtype("<U4"))):
        path = annotations / f"{number}_exp.npy"
        np.save(path, np.array(int(np.load(path))).astype(kind))
    assert_matches(read_affectnet(written["root"]), written)


@pytest.mark.parametrize("layout", ["rafdb", "fer2013", "ferplus", "affectnet", "folder"])
def test_stats_json_shape_for_every_image_dataset(trees, tmp_path, layout, capsys) -> None:
    from conftest import compose_entry

    from fer_multires.stats import run_stats

    written = trees[layout]
    out = tmp_path / "stats.json"
    cfg = compose_entry(
        "stats", [f"data={layout}", f"data.root={written['root']}", f"stats.json={out}"], tmp_path
    )
    run_stats(cfg)
    stats = json.loads(out.read_text())
    assert stats["dataset"] == layout and set(stats["splits"]) == set(written["counts"])
    classes = stats["classes"]
    for split, part in stats["splits"].items():
        expected = [written["counts"][split].get(c, 0) for c in classes]
        assert part["per_class"] == expected and part["frames"] == sum(expected)
        assert part["videos"] is None
        if "skipped" in written:
            assert part["skipped"] == written["skipped"][split]
    train = np.array(stats["splits"]["train"]["per_class"])
    np.testing.assert_allclose(stats["class_weights"], 1 - train / train.sum(), atol=1e-6)
    assert f"Samples per class ({layout}:" in capsys.readouterr().out


#: A non-ASCII UTF-8 name, and one whose bytes are not UTF-8 (as ``os.listdir`` returns it).
ODD_NAMES: tuple[str, ...] = ("été_visage.jpg", os.fsdecode(b"z_caf\xe9.jpg"))


def place_image(source: Path, target: Path) -> bool:
    """Copy an image to ``target``; False if the file system refuses the name."""
    try:
        shutil.copyfile(source, target)
    except (OSError, UnicodeEncodeError):
        return False
    return True


def read_sample(index: DatasetIndex, split: str, name: str, images_dir: Path | None = None):
    """Return the decoded image of the sample whose name ends with ``name``."""
    from fer_multires.data.datasets import FrameDataset

    part = index.splits[split]
    row = [part.image_relpath(i) for i in range(len(part))].index(name)
    dataset = FrameDataset(part, images_dir or index.images_dir, lambda image, *_: image,
                           packed_split=split if part.packed else None)  # fmt: skip
    return dataset.load_image(row)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_folder_image_with_an_odd_name_is_indexed_read_and_packed(trees, tmp_path, name) -> None:
    from fer_multires.data.readers.packed import pack_splits, read_packed

    root = copy_tree(trees["folder"], tmp_path)
    happy = next(p for p in (root / "train").iterdir() if p.name.lower() in ("happy", "happiness"))
    if not place_image(next(happy.glob("*.jpg")), happy / name):
        pytest.skip(f"the file system refuses the name {name!r}")
    index = read_folder(root)
    relpath = f"train/{happy.name}/{name}"
    assert read_sample(index, "train", relpath).size[0] > 0
    pack_splits(index, tmp_path / "packed", shard_size=4)
    packed = read_packed(tmp_path / "packed")
    assert packed.splits["train"].paths.tolist() == index.splits["train"].paths.tolist()
    assert read_sample(packed, "train", relpath).size[0] > 0


@pytest.mark.parametrize("name", ODD_NAMES[:1])
def test_affectnet_image_with_a_non_ascii_name_is_indexed_and_read(trees, tmp_path, name) -> None:
    root = copy_tree(trees["affectnet"], tmp_path)
    images = root / "Manually_Annotated_Images"

    def edit(rows):
        (images / rows[1][0]).rename(images / "1" / name)
        rows[1][0] = f"1/{name}"
        return rows

    rewrite_csv(root / "training.csv", edit)
    index = read_affectnet(root)
    assert_matches(index, trees["affectnet"])
    assert read_sample(index, "train", f"1/{name}").size[0] > 0


def truncate(path: Path, size: int) -> None:
    """Keep the first ``size`` bytes of a file."""
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: truncate(d / "packed.json", 100), r"packed.json:\d+: not JSON: "),
        (lambda d: (d / "packed.json").write_bytes(b'{"\xff": 1}'), r"packed.json:1: not UTF-8"),
        (lambda d: (d / "packed.json").write_text('{"classes": [], "layout": ""}'),
         r"packed.json: no key 'splits'"),
        (lambda d: truncate(d / "train.index.npz", 500), r"train.index.npz: not a readable .npz"),
    ],
)  # fmt: skip
def test_damaged_packed_set_names_the_file_and_data_packed_dir(trees, tmp_path, damage, message):
    from fer_multires.data.readers.packed import pack_splits, read_packed

    pack_splits(read_folder(trees["folder"]["root"]), tmp_path / "packed", shard_size=8)
    damage(tmp_path / "packed")
    with pytest.raises(DatasetFormatError, match=f"^data.packed_dir: .*{message}.*damaged"):
        read_packed(tmp_path / "packed")
