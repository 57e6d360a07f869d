from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_tree, write_video

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_8
from fer_multires.data.readers.affwild2 import AnnotationError, read_affwild2


@pytest.mark.parametrize(
    ("layout", "classes"),
    [("abaw2", EXPRESSIONS_7), ("abaw3", EXPRESSIONS_8), ("abaw5", EXPRESSIONS_8)],
)
def test_reads_each_official_layout(tmp_path: Path, layout: str, classes: tuple) -> None:
    root = make_tree(tmp_path / "d", layout=layout, videos_per_split=2, frames=5)
    index = read_affwild2(root)
    assert index.classes == classes
    assert len(index.splits["train"]) == 10
    assert len(index.splits["val"]) == 10
    assert index.skipped().as_dict() == dict.fromkeys(index.skipped().as_dict(), 0)


def test_annotation_file_with_an_upper_case_suffix_is_read(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", layout="abaw2", videos_per_split=2, frames=5)
    (path,) = [p for p in root.rglob("*.txt") if "Training_Set" in str(p)][:1]
    path.rename(path.with_suffix(".TXT"))
    assert len(read_affwild2(root).splits["train"]) == 10


def test_every_quirk_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "d"
    # frame 2 labelled -1 (invalid), frame 4 labelled but missing, frames 6-7 beyond labels
    write_video(root, "abaw2", "train", "v1", [0, -1, 4, 5, 6], frames=[1, 2, 3, 5, 6, 7])
    (root / "cropped_aligned" / "v1" / "notes.txt").write_text("not a frame")
    (root / "cropped_aligned" / "v1" / "thumb.jpg").write_bytes(b"x")
    # two-person video, and an unannotated stretch without images (counted nowhere)
    write_video(root, "abaw2", "train", "v2_left", [1, 1, -1])
    write_video(root, "abaw2", "train", "v2_right", [2, 2, 2], frames=[1, 3])
    # CRLF and trailing blank lines
    write_video(root, "abaw2", "val", "v3", [3, 3, 0], newline="\r\n", trailing="\r\n\r\n")
    # an annotation file with no frame folder, a frame folder without annotation (test set)
    write_video(root, "abaw2", "val", "v4", [0, 0], frames=[])
    (root / "cropped_aligned" / "test_video").mkdir()
    (root / "cropped_aligned" / "test_video" / "00001.jpg").write_bytes(b"x")

    index = read_affwild2(root)
    train, val = index.splits["train"], index.splits["val"]
    assert train.video_names == ["v1", "v2_left", "v2_right"]
    assert [train.image_relpath(i) for i in range(len(train))] == [
        "v1/00001.jpg", "v1/00003.jpg", "v1/00005.jpg",
        "v2_left/00001.jpg", "v2_left/00002.jpg",
        "v2_right/00001.jpg", "v2_right/00003.jpg",
    ]  # fmt: skip
    assert train.label.tolist() == [0, 4, 6, 1, 1, 2, 2]
    assert train.skipped.as_dict() == {
        "invalid_label": 2,  # v1 frame 2, v2_left frame 3
        "missing_frame": 2,  # v1 frame 4, v2_right frame 2
        "beyond_labels": 2,  # v1 frames 6, 7
        "videos_without_frames": 0,
        "unrecognised_name": 1,  # thumb.jpg
    }
    assert val.label.tolist() == [3, 3, 0]
    assert val.missing_videos == ["v4"]
    assert val.skipped.videos_without_frames == 1
    assert index.skipped().invalid_label == 2


def test_videos_without_frames_warns_with_names(tmp_path: Path, caplog) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=2, frames=3)
    write_video(root, "abaw2", "val", "lost_video", [0, 1], frames=[])
    with caplog.at_level("WARNING"):
        read_affwild2(root)
    assert "lost_video" in caplog.text


def test_index_is_compact_arrays(tree: Path) -> None:
    split = read_affwild2(tree).splits["train"]
    assert split.video_id.dtype == np.int32
    assert split.frame.dtype == np.int32
    assert split.label.dtype == np.int8
    assert split.nbytes() == 9 * len(split)


@pytest.mark.parametrize(
    ("labels", "header", "line", "message"),
    [
        (["0", "x1", "2"], None, 3, "'x1' is not an integer"),
        (["0", "7"], None, 3, "label 7 is outside -1..6"),
        (["-2"], None, 2, "label -2 is outside"),
        (["0", "", "1"], None, 3, "'' is not an integer"),
        (["0"], "Neutral,Anger,Disgust,Fear,Happiness,Sadness", 1, "not the expected class list"),
        (["0"], ",".join(EXPRESSIONS_8), 1, "not the expected class list"),
    ],
)
def test_bad_annotation_names_file_and_line(
    tmp_path: Path, labels: list, header: str | None, line: int, message: str
) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    write_video(root, "abaw2", "train", "broken", labels, header=header, frames=[1])
    with pytest.raises(AnnotationError, match=rf"broken\.txt:{line}: .*{message}"):
        read_affwild2(root)


def test_empty_annotation_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    path = root / "annotations/EXPR_Set/Training_Set/empty.txt"
    path.write_text("\n\n")
    with pytest.raises(AnnotationError, match=r"empty\.txt:1: empty annotation file"):
        read_affwild2(root)


def test_video_in_both_splits_is_an_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    write_video(root, "abaw2", "val", "train_000", [0, 1])
    with pytest.raises(AnnotationError, match="videos in both .*train_000"):
        read_affwild2(root)


def test_missing_folders_name_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.root"):
        read_affwild2(tmp_path / "nowhere")
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    with pytest.raises(FileNotFoundError, match="data.frames_dir"):
        read_affwild2(root, frames_dir="frames")
    with pytest.raises(FileNotFoundError, match="data.annotations_dir"):
        read_affwild2(root, annotations_dir="labels")


def test_annotation_and_frame_dirs_can_be_overridden(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    moved = tmp_path / "elsewhere" / "frames"
    moved.parent.mkdir()
    (root / "cropped_aligned").rename(moved)
    index = read_affwild2(root, annotations_dir="annotations/EXPR_Set", frames_dir=str(moved))
    assert len(index.splits["train"]) == 2
    assert index.images_dir == moved


def test_ambiguous_or_unknown_layout(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", layout="abaw2", videos_per_split=1, frames=2)
    make_tree(root, layout="abaw3", videos_per_split=1, frames=2)
    with pytest.raises(AnnotationError, match="several expression-track folders"):
        read_affwild2(root)
    other = tmp_path / "e"
    (other / "annotations" / "VA_Set").mkdir(parents=True)
    (other / "cropped_aligned").mkdir()
    with pytest.raises(AnnotationError, match="holds none of the expression-track folders"):
        read_affwild2(other)


def test_subset_renumbers_videos(tree: Path) -> None:
    val = read_affwild2(tree).splits["val"]
    sub = val.subset(["val_002", "val_000"])
    assert sub.video_names == ["val_000", "val_002"]
    assert len(sub) == 20
    assert set(sub.video_id.tolist()) == {0, 1}
    assert sub.image_relpath(0) == "val_000/00001.jpg"


def test_frame_manifest_replaces_folder_listing(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_video(root, "abaw2", "train", "v1", [0, -1, 4, 5, 6], frames=[1, 2, 3, 5, 6, 7])
    (root / "cropped_aligned" / "v1" / "notes.txt").write_text("x")
    write_video(root, "abaw2", "val", "v3", [3, 3, 0])
    write_video(root, "abaw2", "val", "v4", [0, 0], frames=[])
    listed = read_affwild2(root)
    manifest = tmp_path / "frames.txt"
    lines = sorted(f"{p.parent.name}/{p.name}" for p in (root / "cropped_aligned").glob("*/*"))
    manifest.write_text("\n".join(lines) + "\n\n")
    (root / "cropped_aligned").rename(tmp_path / "elsewhere")  # folders not needed any more
    from_manifest = read_affwild2(root, frames_manifest=manifest)
    for split in ("train", "val"):
        a, b = listed.splits[split], from_manifest.splits[split]
        assert a.video_names == b.video_names
        assert np.array_equal(a.frame, b.frame) and np.array_equal(a.label, b.label)
        assert a.skipped == b.skipped
        assert a.missing_videos == b.missing_videos
    bad = tmp_path / "bad.txt"
    bad.write_text("v1/00001.jpg\n00002.jpg\n")
    with pytest.raises(AnnotationError, match=r"bad\.txt:2: '00002.jpg' is not"):
        read_affwild2(root, frames_manifest=bad)
    with pytest.raises(FileNotFoundError, match="data.frames_manifest"):
        read_affwild2(root, frames_manifest=tmp_path / "absent.txt")
