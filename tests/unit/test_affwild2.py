from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_tree, write_targets, write_video

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_8
from fer_multires.data.readers.affwild2 import SET_SKIP_NAMES, AnnotationError, read_affwild2
from fer_multires.data.readers.index import SplitIndex
from fer_multires.tasks import AU_NAMES


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


# ---- the valence-arousal and action-unit sets (task=va, au, mtl)

Z = [0] * 12  # an action-unit line with no unit present
NO_AU = [-1] * 12  # a line that annotates no unit


def au_line(**present: int) -> list[int]:
    """An action-unit line in AU_NAMES order: 0 except the named units."""
    return [present.get(name, 0) for name in AU_NAMES]


def test_va_file_with_every_quirk(tmp_path: Path) -> None:
    root = tmp_path / "d"
    # BOM, CRLF, trailing blank lines; -5 in both or one column; frame 5 absent; 7, 8 beyond
    rows = ["0.5,-0.25", "-5,-5", "0.1,0.2", "-5,0.3", "0.9,-0.9", "1,-1"]
    path = write_targets(root, "va", "train", "v1", rows, frames=[1, 2, 3, 4, 6, 7, 8],
                         newline="\r\n", bom=True)  # fmt: skip
    path.write_bytes(path.read_bytes() + b"\r\n\r\n")
    # a two-person video, one half with its columns the other way round
    write_targets(root, "va", "train", "v2_left", ["0,0"])
    write_targets(root, "va", "train", "v2_right", ["0.2,0.7", "0.3,-0.4"], frames=[2],
                  header="arousal,valence")  # fmt: skip
    write_targets(root, "va", "val", "v3", ["0.25,-0.5"])
    write_targets(root, "va", "val", "v4", ["0,0"], frames=[])
    index = read_affwild2(root, task="va")
    assert index.task == "va" and index.classes == () and index.layout == "VA_Estimation_Challenge"
    train, val = index.splits["train"], index.splits["val"]
    assert [train.image_relpath(i) for i in range(len(train))] == [
        "v1/00001.jpg", "v1/00003.jpg", "v1/00006.jpg", "v2_left/00001.jpg", "v2_right/00002.jpg",
    ]  # fmt: skip
    expected = [[0.5, -0.25], [0.1, 0.2], [1, -1], [0, 0], [-0.4, 0.3]]
    assert train.va.dtype == np.float32 and train.va.shape == (5, 2)
    np.testing.assert_array_equal(train.va, np.array(expected, dtype=np.float32))
    assert train.label.tolist() == [-1] * 5 and train.au is None
    assert train.skipped.as_dict() == {
        "invalid_label": 2,  # v1 frames 2 and 4 (-5 in one column is enough)
        "missing_frame": 2,  # v1 frame 5, v2_right frame 1
        "beyond_labels": 2,  # v1 frames 7, 8
        "videos_without_frames": 0,
        "unrecognised_name": 0,
    }
    np.testing.assert_array_equal(val.va, [[0.25, -0.5]])
    assert val.missing_videos == ["v4"] and val.skipped.videos_without_frames == 1


def test_au_file_with_every_quirk(tmp_path: Path) -> None:
    root = tmp_path / "d"
    backwards = ",".join(reversed(AU_NAMES))
    rows = [
        list(reversed(au_line(AU12=1, AU25=1))),  # the header is reversed: so are the lines
        NO_AU,  # not annotated
        list(reversed(au_line(AU1=1))),
        list(reversed([-1] * 11 + [1])),  # only AU1 annotated (present): kept
    ]
    write_targets(root, "au", "train", "a", rows, frames=[1, 2, 3, 5, 6], header=backwards,
                  newline="\r\n")  # fmt: skip
    write_targets(root, "au", "val", "b", [au_line(AU26=1), Z])
    index = read_affwild2(root, task="au")
    assert index.task == "au" and index.layout == "AU_Detection_Challenge"
    train = index.splits["train"]
    assert train.frame.tolist() == [1, 3]
    assert train.au.dtype == np.int8 and train.au.shape == (2, 12)
    assert train.au.tolist() == [au_line(AU12=1, AU25=1), au_line(AU1=1)]
    assert train.va is None and train.label.tolist() == [-1, -1]
    assert train.skipped.as_dict() == {
        "invalid_label": 1, "missing_frame": 1, "beyond_labels": 2,
        "videos_without_frames": 0, "unrecognised_name": 0,
    }  # fmt: skip
    assert index.splits["val"].au.tolist() == [au_line(AU26=1), Z]


def test_a_partly_annotated_au_line_keeps_minus_one_for_the_other_units(tmp_path: Path) -> None:
    root = tmp_path / "d"
    partial = [-1] * 12
    partial[AU_NAMES.index("AU12")] = 1
    write_targets(root, "au", "train", "a", [partial, NO_AU])
    write_targets(root, "au", "val", "b", [Z])
    train = read_affwild2(root, task="au").splits["train"]
    assert train.au.tolist() == [partial]
    assert train.skipped.invalid_label == 1


@pytest.mark.parametrize(
    ("annotation_set", "header", "message"),
    [
        ("va", "valence", "missing: arousal"),
        ("va", "valence,arousal,dominance", "unknown: dominance"),
        ("va", "valence,valence", "missing: arousal; repeated: valence"),
        ("va", "Valence,Arousal", "unknown: Valence, Arousal; missing: valence, arousal"),
        ("au", ",".join(AU_NAMES[:-1]), "missing: AU26"),
        ("au", ",".join([*AU_NAMES[:-1], "AU27"]), "unknown: AU27; missing: AU26"),
        ("au", ",".join(EXPRESSIONS_7), "unknown: Neutral"),
    ],
)
def test_a_header_that_is_not_the_columns_names_file_and_line_1(
    tmp_path: Path, annotation_set: str, header: str, message: str
) -> None:
    root = tmp_path / "d"
    row = "0,0" if annotation_set == "va" else Z
    write_targets(root, annotation_set, "val", "fine", [row])
    write_targets(root, annotation_set, "train", "broken", [row], header=header)
    with pytest.raises(AnnotationError, match=rf"broken\.txt:1: header .*in any order.*{message}"):
        read_affwild2(root, task=annotation_set)


@pytest.mark.parametrize(
    ("annotation_set", "rows", "line", "message"),
    [
        ("va", ["0.1,0.2", "1.5,0"], 3, r"valence 1.5 is outside \[-1, 1\] \(-5 marks"),
        ("va", ["0.1,0.2", "0,-1.01"], 3, r"arousal -1.01 is outside \[-1, 1\]"),
        ("va", ["-4,0"], 2, "valence -4 is outside"),
        ("va", ["nan,0"], 2, "valence nan is outside"),
        ("va", ["0.1,x"], 2, r"'x' is not a number \(arousal\)"),
        ("va", ["0.1"], 2, r"'0.1' has 1 values; expected 2 \(valence,arousal\)"),
        ("va", ["0.1,0.2", "", "0.3,0.3"], 3, "'' has 1 values; expected 2"),
        ("au", [Z, au_line(AU4=2)], 3, "AU4 2 is outside 0, 1 and -1"),
        ("au", [["1.0", *Z[1:]]], 2, r"'1.0' is not an integer \(AU1\)"),
        ("au", [Z[1:]], 2, "'0(,0){10}' has 11 values; expected 12"),
        ("au", [au_line(AU7=9 * 10**20)], 2, r"AU7 90{20} is outside 0, 1 and -1"),
    ],
)
def test_a_bad_value_names_file_and_line(
    tmp_path: Path, annotation_set: str, rows: list, line: int, message: str
) -> None:
    root = tmp_path / "d"
    write_targets(root, annotation_set, "val", "fine", ["0,0" if annotation_set == "va" else Z])
    write_targets(root, annotation_set, "train", "broken", rows)
    with pytest.raises(AnnotationError, match=rf"broken\.txt:{line}: {message}"):
        read_affwild2(root, task=annotation_set)


def test_a_bad_value_under_a_reordered_header_is_named_by_its_column(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_targets(root, "au", "val", "fine", [Z])
    write_targets(root, "au", "train", "broken", [[5, *Z[1:]]], header=",".join(AU_NAMES[::-1]))
    with pytest.raises(AnnotationError, match=r"broken\.txt:2: AU26 5 is outside"):
        read_affwild2(root, task="au")


def mtl_tree(root: Path) -> Path:
    """Three sets over a few videos: each frame annotated by some, all or none of them."""
    # train "a": frames 1-4, 6-8 on disk (5 absent); EXPR 5 lines, VA 4, AU 7
    write_video(root, "abaw5", "train", "a", [0, -1, 3, -1, 2], frames=[1, 2, 3, 4, 6, 7, 8])
    write_targets(root, "va", "train", "a", ["0.1,0.2", "0.3,0.4", "-5,-5", "-5,-5"], frames=[])
    au = [au_line(AU1=1), NO_AU, NO_AU, NO_AU, au_line(AU2=1), NO_AU, au_line(AU26=1)]
    write_targets(root, "au", "train", "a", au, frames=[])
    write_targets(root, "va", "train", "b", ["-0.5,0.5", "0.5,-0.5"])  # VA only
    write_targets(root, "au", "train", "c", [Z], frames=[])  # AU only, no frame folder
    write_video(root, "abaw5", "val", "d", [1, 2])  # EXPR only
    write_targets(root, "va", "val", "e", ["0.25,0.75"])
    write_targets(root, "au", "val", "e", [au_line(AU12=1)])
    return root


def test_mtl_reads_the_union_of_the_three_sets(tmp_path: Path) -> None:
    index = read_affwild2(mtl_tree(tmp_path / "d"), task="mtl")
    assert index.task == "mtl" and index.classes == EXPRESSIONS_8
    assert index.layout == "EXPR_Recognition_Challenge, VA_Estimation_Challenge, " \
                           "AU_Detection_Challenge"  # fmt: skip
    train = index.splits["train"]
    assert [train.image_relpath(i) for i in range(len(train))] == [
        "a/00001.jpg", "a/00002.jpg", "a/00003.jpg", "a/00007.jpg", "b/00001.jpg", "b/00002.jpg",
    ]  # fmt: skip
    assert train.label.tolist() == [0, -1, 3, -1, -1, -1]
    nan = np.nan
    expected_va = [[0.1, 0.2], [0.3, 0.4], [nan, nan], [nan, nan], [-0.5, 0.5], [0.5, -0.5]]
    np.testing.assert_array_equal(train.va, np.array(expected_va, dtype=np.float32))
    assert train.au.tolist() == [au_line(AU1=1), NO_AU, NO_AU, au_line(AU26=1), NO_AU, NO_AU]
    assert train.missing_videos == ["c"]
    assert train.skipped.as_dict() == {
        # frames no set annotates: a/4, a/6 (within the AU file, -1 there); a/5 is absent; a/8
        # is past every file
        "invalid_label": 2, "missing_frame": 1, "beyond_labels": 1,
        "videos_without_frames": 1, "unrecognised_name": 0,
        "expr.invalid_label": 2, "expr.missing_frame": 1, "expr.beyond_labels": 3,
        "expr.videos_without_frames": 0,
        "va.invalid_label": 2, "va.missing_frame": 0, "va.beyond_labels": 3,
        "va.videos_without_frames": 0,
        "au.invalid_label": 4, "au.missing_frame": 1, "au.beyond_labels": 1,
        "au.videos_without_frames": 1,
    }  # fmt: skip
    val = index.splits["val"]
    assert val.video_names == ["d", "e"] and val.label.tolist() == [1, 2, -1]
    np.testing.assert_array_equal(val.va, np.array([[nan, nan]] * 2 + [[0.25, 0.75]], np.float32))
    assert val.au.tolist() == [NO_AU, NO_AU, au_line(AU12=1)]


def test_mtl_counts_each_set_as_its_own_task_does(tmp_path: Path) -> None:
    root = mtl_tree(tmp_path / "d")
    mtl = read_affwild2(root, task="mtl")
    for annotation_set in ("expr", "va", "au"):
        alone = read_affwild2(root, task=annotation_set)
        for split in ("train", "val"):
            for name in SET_SKIP_NAMES:
                assert mtl.splits[split].skipped[f"{annotation_set}.{name}"] == \
                    alone.splits[split].skipped[name], (annotation_set, split, name)  # fmt: skip


def test_mtl_refuses_a_video_in_the_train_split_of_one_set_and_val_of_another(tmp_path) -> None:
    root = mtl_tree(tmp_path / "d")
    write_targets(root, "va", "train", "d", ["0,0"], frames=[])  # d: EXPR in val
    crossed = r"d \(\S*VA_Estimation_Challenge/Train_Set and \S*/Validation_Set\)"
    message = "the training split of one annotation set and the validation split of another"
    with pytest.raises(AnnotationError, match=rf"{message} .*: {crossed}$"):
        read_affwild2(root, task="mtl")
    # one set at a time, each is fine
    assert read_affwild2(root, task="va").splits["train"].video_names == ["a", "b", "d"]


def test_a_task_whose_annotation_folder_is_absent_names_it(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", videos_per_split=1, frames=2)
    with pytest.raises(AnnotationError, match=r"none of the valence-arousal folders "
                                              r"\(VA_Estimation_Challenge\)"):  # fmt: skip
        read_affwild2(root, task="va")
    write_targets(root, "va", "train", "train_000", ["0,0", "0,0"], frames=[])
    write_targets(root, "va", "val", "val_000", ["0,0", "0,0"], frames=[])
    with pytest.raises(AnnotationError, match=r"none of the action-unit folders"):
        read_affwild2(root, task="mtl")
    with pytest.raises(ValueError, match="task='vad' is not a task; choose one of expr, va, au"):
        read_affwild2(root, task="vad")


def test_an_expr_index_keeps_its_arrays(tree: Path) -> None:
    index = read_affwild2(tree)
    assert index.task == "expr"
    for split in index.splits.values():
        assert split.va is None and split.au is None


def test_targets_follow_take_subset_and_pack(tmp_path: Path) -> None:
    from fer_multires.data.readers.packed import pack_splits, read_packed

    index = read_affwild2(mtl_tree(tmp_path / "d"), task="mtl")
    train = index.splits["train"]
    taken = train.take(np.array([4, 0]))
    np.testing.assert_array_equal(taken.va, train.va[[4, 0]])
    assert taken.au.tolist() == train.au[[4, 0]].tolist()
    part = train.subset(["b"])
    assert part.video_id.tolist() == [0, 0] and part.label.tolist() == [-1, -1]
    np.testing.assert_array_equal(part.va, train.va[4:])
    assert part.au.tolist() == train.au[4:].tolist()
    assert train.nbytes() == len(train) * (1 + 4 + 4 + 8 + 12)
    pack_splits(index, tmp_path / "packed", shard_size=4)
    packed = read_packed(tmp_path / "packed")
    assert packed.task == "mtl" and packed.classes == index.classes
    for name, split in index.splits.items():
        again = packed.splits[name]
        assert again.va.dtype == np.float32 and again.au.dtype == np.int8
        np.testing.assert_array_equal(again.va, split.va)  # NaN where NaN
        for array in ("label", "video_id", "frame", "au"):
            assert np.array_equal(getattr(again, array), getattr(split, array)), array
        assert again.skipped == split.skipped and again.video_names == split.video_names
    only_va = read_affwild2(tmp_path / "d", task="va")
    pack_splits(only_va, tmp_path / "packed_va", shard_size=4)
    again = read_packed(tmp_path / "packed_va")
    assert again.task == "va" and again.splits["train"].au is None
    np.testing.assert_array_equal(again.splits["train"].va, only_va.splits["train"].va)


def test_a_split_refuses_targets_of_the_wrong_shape() -> None:
    frames = {"video_id": np.zeros(2, np.int32), "frame": np.ones(2, np.int32)}
    label = np.full(2, -1, np.int8)
    with pytest.raises(ValueError, match=r"va has shape \(2, 3\); expected \(samples, 2\)"):
        SplitIndex(label=label, **frames, va=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="au has 1 entries for 2 labels"):
        SplitIndex(label=label, **frames, au=np.zeros((1, 12), np.int8))
    split = SplitIndex(label=np.array([2, -1], np.int8), **frames)
    assert split.class_counts(3).tolist() == [0, 0, 1]  # -1: no expression label, not counted
