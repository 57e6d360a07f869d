"""RAF-DB, FER2013, FERPlus, AffectNet and image folders: readers and the data module.

Every dataset is generated in its real layout (fer_multires.data.synthetic.image_sets), quirks
included, and read back.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from fer_multires.data.datamodule import FERDataModule
from fer_multires.data.datasets import BadImageError, collate_samples
from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_CONTEMPT
from fer_multires.data.readers import READERS
from fer_multires.data.readers.ferplus import majority_vote
from fer_multires.data.readers.index import DatasetFormatError
from fer_multires.data.readers.packed import pack_splits
from fer_multires.data.synthetic import image_sets
from fer_multires.data.transforms import MultiResolution

#: (generator layout, data.dataset, reader options)
LAYOUTS = [
    ("rafdb", "rafdb", {}),
    ("fer2013", "fer2013", {}),
    ("ferplus", "ferplus", {}),
    ("affectnet", "affectnet", {}),
    ("affectnet_npy", "affectnet", {}),
    ("folder", "folder", {}),
]

SMALL = dict(batch_size=4, num_workers=0, resize_size=28, crop_size=24, multires=None,
             val_select_fraction=0.3)  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("image_sets")
    return {
        layout: image_sets.WRITERS[layout](base / layout, per_class=2) for layout, _, _ in LAYOUTS
    }


@pytest.mark.parametrize(("layout", "dataset", "options"), LAYOUTS)
def test_reader_counts_every_sample_and_every_skip(generated, layout, dataset, options) -> None:
    written = generated[layout]
    index = READERS[dataset](written["root"], **options)
    assert index.name == dataset and set(index.splits) == set(written["counts"])
    for split, part in index.splits.items():
        counts = dict(
            zip(index.classes, part.class_counts(index.num_classes).tolist(), strict=True)
        )
        assert counts == {c: n for c, n in written["counts"][split].items() if c in index.classes}
        if "skipped" in written:
            assert part.skipped.as_dict() == written["skipped"][split]
        assert not part.has_videos and part.paths.dtype.kind == "S"


def test_class_lists_are_the_canonical_order_restricted(generated) -> None:
    assert READERS["rafdb"](generated["rafdb"]["root"]).classes == EXPRESSIONS_7
    assert READERS["ferplus"](generated["ferplus"]["root"]).classes == EXPRESSIONS_CONTEMPT
    seven = READERS["ferplus"](generated["ferplus"]["root"], num_classes=7)
    assert seven.classes == EXPRESSIONS_7
    assert seven.splits["train"].skipped["contempt"] == 2  # counted, not dropped silently
    affectnet = READERS["affectnet"](generated["affectnet"]["root"], num_classes=7)
    assert affectnet.splits["val"].skipped["contempt"] == 2


def test_rafdb_nested_basic_and_original_images(tmp_path) -> None:
    written = image_sets.write_rafdb(tmp_path / "raf", per_class=1, nested_basic=True)
    aligned = READERS["rafdb"](tmp_path / "raf")  # the folder holding basic/
    assert aligned.images_dir == tmp_path / "raf" / "basic" / "Image" / "aligned"
    original = READERS["rafdb"](tmp_path / "raf" / "basic", images="original")
    assert original.splits["train"].image_relpath(0) == "train_00001.jpg"
    assert len(original.splits["val"]) == sum(written["counts"]["val"].values())
    assert aligned.splits["val"].image_relpath(0) == "test_0001_aligned.jpg"
    with pytest.raises(ValueError, match="data.rafdb.images='crop' is not one of aligned"):
        READERS["rafdb"](tmp_path / "raf", images="crop")


def test_rafdb_bad_label_line_names_file_and_line(tmp_path) -> None:
    image_sets.write_rafdb(tmp_path / "raf", per_class=1)
    labels = tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt"
    labels.write_text("train_00001.jpg 5\ntrain_00002.jpg 9\n")
    with pytest.raises(DatasetFormatError, match=r"list_patition_label.txt:2: label 9 is outside"):
        READERS["rafdb"](tmp_path / "raf")
    with pytest.raises(DatasetFormatError, match="holds no RAF-DB label file"):
        READERS["rafdb"](tmp_path)


def test_fer2013_icml_variant_and_bad_rows(tmp_path) -> None:
    written = image_sets.write_fer2013(tmp_path / "icml", per_class=1, variant="icml")
    index = READERS["fer2013"](tmp_path / "icml")
    assert index.layout == "icml_face_data.csv" and written["file"] == "icml_face_data.csv"
    part = index.splits["test"]
    assert part.pixels.shape == (7, 48, 48) and part.image_relpath(0).startswith(
        "icml_face_data.csv:"
    )
    path = tmp_path / "fer" / "fer2013.csv"
    path.parent.mkdir()
    path.write_text(
        "emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n3,1 2 3,Training\n"
    )
    with pytest.raises(
        DatasetFormatError, match=r"fer2013.csv:3: pixels has 3 values; expected 2304"
    ):
        READERS["fer2013"](path.parent)
    path.write_text("emotion,pixels,Usage\n7," + " ".join(["1"] * 2304) + ",Training\n")
    with pytest.raises(DatasetFormatError, match=r"fer2013.csv:2: emotion '7' is not a label 0..6"):
        READERS["fer2013"](path.parent)
    with pytest.raises(FileNotFoundError, match="neither fer2013.csv nor icml_face_data.csv"):
        READERS["fer2013"](tmp_path)


@pytest.mark.parametrize(
    ("votes", "winner"),
    [([7, 2, 1, 0, 0, 0, 0, 0, 0, 0], 0),  # lone votes dropped: 7 of 9
     ([5, 1, 1, 0, 0, 3, 0, 0, 0, 0], 0),  # 5 of 8 once the 1s go (5 of 10 would not win)
     ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], 8),  # a tie is no majority
     ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], 8),
     ([0, 0, 0, 0, 0, 0, 0, 6, 1, 0], 7),  # contempt
     ([0, 2, 0, 0, 0, 0, 0, 0, 0, 8], 9),  # NF
     ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8)],
)  # fmt: skip
def test_ferplus_majority_rule(votes, winner) -> None:
    assert majority_vote(np.array(votes)) == winner


def test_ferplus_files_must_align(tmp_path) -> None:
    root = Path(image_sets.write_ferplus(tmp_path / "fp", per_class=1)["root"])
    labels = root / "fer2013new.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(
        DatasetFormatError, match=r"fer2013new.csv: \d+ rows, but .*fer2013.csv has"
    ):
        READERS["ferplus"](root)
    swapped = lines[1].replace("Training", "PublicTest", 1)
    labels.write_text("\n".join([lines[0], swapped, *lines[2:]]) + "\n")
    with pytest.raises(DatasetFormatError, match="fer2013new.csv:2: Usage 'PublicTest', but row 1"):
        READERS["ferplus"](root)


def test_affectnet_crop_box_or_whole_image(generated) -> None:
    written = generated["affectnet"]
    boxed = READERS["affectnet"](written["root"])
    part = boxed.splits["train"]
    assert np.array_equal(part.boxes[0], written["boxes"][part.image_relpath(0)])
    assert READERS["affectnet"](written["root"], crop="none").splits["train"].boxes is None
    with pytest.raises(ValueError, match="data.affectnet.crop='face'"):
        READERS["affectnet"](written["root"], crop="face")
    # through the data module the crop is the annotated face: 96 x 96 of a 160 x 140 image
    dm = FERDataModule(root=written["root"], dataset="affectnet", **SMALL)
    dm.setup()
    assert dm.native_size == (96, 96)
    whole = FERDataModule(root=written["root"], dataset="affectnet", affectnet={"crop": "none"},
                          **SMALL)  # fmt: skip
    whole.setup()
    assert whole.native_size == (140, 160)


@pytest.mark.parametrize("on_bad_image", ["error", "skip"])
def test_affectnet_face_box_beyond_the_image_is_a_bad_image(tmp_path, generated, on_bad_image):
    # wholly right of the image: the reader cannot tell (it opens no image); reading it can
    root = tmp_path / "an"
    shutil.copytree(generated["affectnet"]["root"], root)
    rows = list(csv.reader((root / "training.csv").open()))
    rows[1][1] = "5000"  # face_x, beyond the 160 px wide image
    with (root / "training.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    dm = FERDataModule(root=str(root), dataset="affectnet", on_bad_image=on_bad_image, **SMALL)
    dm.setup()
    train = dm.dataset("train")
    index = next(i for i in range(len(train.split)) if train.split.image_relpath(i) == rows[1][0])
    if on_bad_image == "error":
        with pytest.raises(BadImageError, match=rf"{rows[1][0]}: face box x=5000, .* outside"):
            train[index]
    else:
        other = 1 if index == 0 else 0
        assert not train[index]["valid"] and train[other]["valid"]  # skipped, and counted


def test_affectnet_bad_code_names_file_and_line(tmp_path, generated) -> None:
    source = Path(generated["affectnet"]["root"]) / "training.csv"
    rows = list(csv.reader(source.open()))
    rows[3][6] = "12"
    target = tmp_path / "an"
    (target / "Manually_Annotated_Images").mkdir(parents=True)
    with (target / "training.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    (target / "validation.csv").write_text(",".join(rows[0]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"training.csv:4: expression '12' is not a code"):
        READERS["affectnet"](target)
    with pytest.raises(FileNotFoundError, match="holds neither AffectNet layout"):
        READERS["affectnet"](tmp_path)


def test_folder_names_are_matched_by_alias_or_listed(tmp_path) -> None:
    image_sets.write_folder(tmp_path / "f", per_class=1)
    (tmp_path / "f" / "train" / "bored").mkdir()
    with pytest.raises(
        DatasetFormatError,
        match=r"train/bored: folder name 'bored' is not a known class; accepted .*angry",
    ):
        READERS["folder"](tmp_path / "f")
    names = ["neutral", "happy", "bored"]
    with pytest.raises(DatasetFormatError, match=r"train/bored: class 'bored' has no training"):
        READERS["folder"](tmp_path / "f", classes=names)  # an empty folder
    train_images = (tmp_path / "f" / "train").rglob("img*")
    shutil.copyfile(next(train_images), tmp_path / "f" / "train" / "bored" / "b.jpg")
    index = READERS["folder"](tmp_path / "f", classes=names)
    assert index.classes == ("Neutral", "Happiness", "bored")
    train = index.splits["train"]
    assert train.class_counts(3).tolist() == [1, 1, 1]
    assert train.skipped["unlisted_class"] == 5 and train.skipped["not_image"] == 1
    (tmp_path / "f" / "val").rename(tmp_path / "f" / "validation")
    with pytest.raises(FileNotFoundError, match="has no val/ folder"):
        READERS["folder"](tmp_path / "f", classes=names)


def test_val_select_is_the_same_whatever_the_listing(generated) -> None:
    def chosen() -> list[bytes]:
        dm = FERDataModule(root=generated["rafdb"]["root"], dataset="rafdb", **SMALL)
        dm.setup()
        return dm.splits["val_select"].paths.tolist()

    assert chosen() == chosen()


@pytest.mark.parametrize("layout", ["ferplus", "affectnet"])
def test_packed_image_datasets_give_the_same_batches(generated, tmp_path, layout) -> None:
    dataset = "affectnet" if layout == "affectnet" else layout
    folders = FERDataModule(root=generated[layout]["root"], dataset=dataset, **SMALL)
    pack_splits(folders.read_index(), tmp_path / "packed", shard_size=7)
    shards = FERDataModule(root="unused", dataset=dataset, packed_dir=str(tmp_path / "packed"),
                           **SMALL)  # fmt: skip
    folders.setup()
    shards.setup()
    assert shards.classes == folders.classes
    assert shards.index.skipped() == folders.index.skipped()
    for a, b in zip(folders.eval_dataloader("val_full"), shards.eval_dataloader("val_full"),
                    strict=True):  # fmt: skip
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_eval_split_test_evaluates_the_test_split(generated, tmp_path) -> None:
    root = generated["fer2013"]["root"]
    dm = FERDataModule(root=root, dataset="fer2013", eval_split="test", **SMALL)
    dm.setup()
    test = dm.splits["test"]
    assert dm.splits["val_full"] is test
    assert not set(test.paths.tolist()) & set(dm.index.splits["val"].paths.tolist())
    select, rest = dm.splits["val_select"], dm.splits["val_rest"]
    assert sorted(select.paths.tolist() + rest.paths.tolist()) == sorted(test.paths.tolist())
    pack_splits(dm.read_index(), tmp_path / "packed", shard_size=5)
    shards = FERDataModule(root="unused", dataset="fer2013", packed_dir=str(tmp_path / "packed"),
                           eval_split="test", **SMALL)  # fmt: skip
    shards.setup()
    for a, b in zip(dm.eval_dataloader("val_rest"), shards.eval_dataloader("val_rest"),
                    strict=True):  # fmt: skip
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    with pytest.raises(ValueError, match="data.eval_split='train' is not one of val, test"):
        FERDataModule(root=root, dataset="fer2013", eval_split="train")
    no_test = FERDataModule(root=generated["rafdb"]["root"], dataset="rafdb", eval_split="test",
                            **SMALL)  # fmt: skip
    with pytest.raises(ValueError, match="data.eval_split=test: rafdb .* has no test split"):
        no_test.setup()


def test_unknown_dataset_or_option_is_an_error_naming_the_key(generated) -> None:
    with pytest.raises(ValueError, match="data.dataset='raf' is not one of affwild2, rafdb"):
        FERDataModule(root="x", dataset="raf")
    dm = FERDataModule(root=generated["rafdb"]["root"], dataset="rafdb",
                       rafdb={"image": "aligned"}, **SMALL)  # fmt: skip
    with pytest.raises(ValueError, match="data.rafdb: .*unexpected keyword argument 'image'"):
        dm.setup()
    dm = FERDataModule(root=generated["rafdb"]["root"], dataset="rafdb", num_classes=8, **SMALL)
    with pytest.raises(ValueError, match="data.num_classes=8, but rafdb .* has 7 classes"):
        dm.setup()


@pytest.mark.parametrize(("layout", "dataset", "options"), LAYOUTS)
def test_fast_path_batch_is_what_default_collate_makes_of_the_samples(generated, layout, dataset,
                                                                     options) -> None:  # fmt: skip
    # the DataLoader fetches a whole batch through __getitems__, which decodes into one tensor;
    # it must be exactly the per-sample items collated: files decoded as they are, face boxes
    # cropped and resized (AffectNet), pixels from a CSV (FER2013)
    multires = MultiResolution(p=0.9, min_res=4, max_res=32, sampling="uniform")
    dm = FERDataModule(root=generated[layout]["root"], dataset=dataset, augment_on="device",
                       image_size=64 if dataset == "affectnet" else None,
                       **(SMALL | {"multires": multires}))  # fmt: skip
    dm.setup()
    for split in ("train", "val_rest"):
        data = dm.dataset(split)
        keys = [(i, i % 3) for i in range(min(len(data), 6))]
        expected = default_collate([data[key] for key in keys])
        # a plain DataLoader (default_collate) over the dataset gets samples, as from any dataset
        assert isinstance(data.__getitems__(keys), list)
        data.fetch_batches = True  # as the data module's loaders set it
        made = data.__getitems__(keys)
        assert isinstance(made, dict) and collate_samples(made) is made
        assert made.keys() == expected.keys()
        for key, value in expected.items():
            assert made[key].dtype == value.dtype and torch.equal(made[key], value), (split, key)
