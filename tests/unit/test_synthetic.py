"""The synthetic Aff-Wild2 generator: layout, quirks, counts, determinism, cues, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_multires.data.labels import EXPRESSIONS_7, UNLABELLED
from fer_multires.data.readers.affwild2 import read_affwild2
from fer_multires.data.synthetic import (
    MANIFEST_NAME,
    SyntheticSpec,
    ensure_synthetic_affwild2,
    generate_synthetic_affwild2,
    plan,
    render_face,
    writer,
)

HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"

SPLIT_DIRS = {"train": "Training_Set", "val": "Validation_Set"}

SKIP_KEYS = ("invalid_label", "missing_frame", "beyond_labels", "videos_without_frames")

SMALL = SyntheticSpec(num_train_videos=6, num_val_videos=3, frames_per_video=60)

TINY = SyntheticSpec(num_train_videos=2, num_val_videos=2, frames_per_video=40, image_size=48)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("small") / "synthetic"
    return root, generate_synthetic_affwild2(root, SMALL)


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The default spec, generated once (about 10 s)."""
    root = tmp_path_factory.mktemp("default") / "synthetic"
    return root, generate_synthetic_affwild2(root)


def read_labels(path: Path) -> list[int]:
    text = path.read_bytes().decode("ascii")
    assert "\r" not in text
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert lines[0] == HEADER
    return [int(line) for line in lines[1:]]


def frame_numbers(folder: Path) -> set[int]:
    return {int(p.stem) for p in folder.glob("*.jpg")}


def walk_counts(root: Path) -> dict:
    """Recount the manifest's numbers from the files, with the reader's definitions."""
    splits = {}
    for split, split_dir in SPLIT_DIRS.items():
        per_class = [0] * 7
        skipped = dict.fromkeys(SKIP_KEYS, 0)
        videos = 0
        for ann in sorted((root / "annotations" / "EXPR_Set" / split_dir).glob("*.txt")):
            labels = read_labels(ann)
            folder = root / "cropped_aligned" / ann.stem
            if not folder.is_dir():
                skipped["videos_without_frames"] += 1
                continue
            on_disk = frame_numbers(folder)
            included = 0
            for frame in on_disk:
                if frame > len(labels):
                    skipped["beyond_labels"] += 1
                elif labels[frame - 1] == UNLABELLED:
                    skipped["invalid_label"] += 1
                else:
                    per_class[labels[frame - 1]] += 1
                    included += 1
            skipped["missing_frame"] += sum(
                1 for i, label in enumerate(labels, 1) if label >= 0 and i not in on_disk
            )
            videos += included > 0
        splits[split] = {
            "videos": videos,
            "frames": sum(per_class),
            "per_class": per_class,
            "skipped": skipped,
        }
    return splits


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout(small: tuple[Path, dict]) -> None:
    root, manifest = small
    ann_root = root / "annotations" / "EXPR_Set"
    assert sorted(p.name for p in ann_root.iterdir()) == ["Training_Set", "Validation_Set"]
    train = sorted(p.stem for p in (ann_root / "Training_Set").glob("*.txt"))
    val = sorted(p.stem for p in (ann_root / "Validation_Set").glob("*.txt"))
    assert len(train) == SMALL.num_train_videos
    assert len(val) == SMALL.num_val_videos + 1  # + the one without a frame folder
    assert not set(train) & set(val)
    for split_dir, names in (("Training_Set", train), ("Validation_Set", val)):
        for name in names:
            labels = read_labels(ann_root / split_dir / f"{name}.txt")
            assert len(labels) == SMALL.frames_per_video
            assert set(labels) <= set(range(-1, 7))
    jpegs = sorted((root / "cropped_aligned").rglob("*.jpg"))
    assert len(jpegs) > 500
    for path in jpegs[::7]:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (112, 112)
        assert len(path.stem) == 5 and path.stem.isdigit() and int(path.stem) >= 1
    assert manifest["spec"] == SMALL.to_dict()
    assert json.loads((root / MANIFEST_NAME).read_text()) == manifest
    # Nothing is left beside root: the temporary folder was renamed.
    assert [p.name for p in root.parent.iterdir()] == [root.name]


def test_two_person_video(small: tuple[Path, dict]) -> None:
    root, _ = small
    train = {p.stem for p in (root / "annotations/EXPR_Set/Training_Set").glob("*.txt")}
    lefts = {name[: -len("_left")] for name in train if name.endswith("_left")}
    rights = {name[: -len("_right")] for name in train if name.endswith("_right")}
    assert len(lefts) == 1 and lefts == rights
    (base,) = lefts
    left = root / "cropped_aligned" / f"{base}_left"
    right = root / "cropped_aligned" / f"{base}_right"
    assert frame_numbers(left) and frame_numbers(right)
    # Two different people.
    assert (left / "00001.jpg").read_bytes() != (right / "00001.jpg").read_bytes()


def test_quirks(small: tuple[Path, dict]) -> None:
    root, manifest = small
    ann_root = root / "annotations" / "EXPR_Set"
    frames_root = root / "cropped_aligned"
    annotated = {p.stem for p in ann_root.rglob("*.txt")}
    folders = {p.name for p in frames_root.iterdir()}
    # A frame folder without an annotation file, with a few JPEGs.
    (orphan,) = folders - annotated
    assert 0 < len(frame_numbers(frames_root / orphan)) < 10
    # A validation annotation file without a frame folder.
    (no_folder,) = annotated - folders
    assert (ann_root / "Validation_Set" / f"{no_folder}.txt").is_file()
    # A file that is not a JPEG inside a frame folder.
    others = [p for p in frames_root.rglob("*") if p.is_file() and p.suffix != ".jpg"]
    assert len(others) == 1 and others[0].parent.name in annotated
    # -1 labels whose images exist; labelled frames without image, mid-video and at the end;
    # images past the last label line.
    kinds = {"unlabelled_on_disk": 0, "missing_mid": 0, "missing_end": 0, "beyond": 0}
    for ann in ann_root.rglob("*.txt"):
        folder = frames_root / ann.stem
        if not folder.is_dir():
            continue
        labels = read_labels(ann)
        on_disk = frame_numbers(folder)
        kinds["unlabelled_on_disk"] += sum(
            1 for i, label in enumerate(labels, 1) if label == UNLABELLED and i in on_disk
        )
        absent = [i for i in range(1, len(labels) + 1) if i not in on_disk]
        kinds["missing_end"] += bool(absent) and absent[-1] == len(labels)
        kinds["missing_mid"] += any(i < max(on_disk) for i in absent)
        kinds["beyond"] += sum(1 for f in on_disk if f > len(labels))
    assert kinds["unlabelled_on_disk"] > 0
    assert kinds["missing_mid"] == 1 and kinds["missing_end"] == 1
    assert kinds["beyond"] == 3
    skipped = manifest["skipped"]
    assert skipped["invalid_label"] == kinds["unlabelled_on_disk"]
    assert skipped["beyond_labels"] == 3
    assert skipped["videos_without_frames"] == 1
    assert skipped["missing_frame"] > 0


def test_expressions_come_in_segments(small: tuple[Path, dict]) -> None:
    """Expressions come in segments, with Neutral (or unlabelled) frames around each one."""
    root, _ = small
    segments = 0
    for ann in (root / "annotations" / "EXPR_Set").rglob("*.txt"):
        labels = read_labels(ann)
        assert labels[0] <= 0 and labels[-1] <= 0, ann.name
        for prev, cur in itertools.pairwise(labels):
            if prev > 0 and cur > 0:
                assert prev == cur, ann.name
            segments += prev <= 0 < cur
    assert segments >= 6


def test_manifest_counts_match_files(small: tuple[Path, dict]) -> None:
    root, manifest = small
    walked = walk_counts(root)
    assert manifest["splits"] == walked
    for key in SKIP_KEYS:
        assert manifest["skipped"][key] == sum(s["skipped"][key] for s in walked.values())
    assert manifest["splits"]["train"]["videos"] == SMALL.num_train_videos
    assert manifest["splits"]["val"]["videos"] == SMALL.num_val_videos


def check_proportions(splits: dict, spec: SyntheticSpec) -> None:
    assert splits["train"]["videos"] == spec.num_train_videos
    assert splits["val"]["videos"] == spec.num_val_videos
    for split in ("train", "val"):
        counts = np.array(splits[split]["per_class"])
        assert (counts > 0).all(), (split, counts)
        shares = counts / counts.sum()
        assert np.abs(shares - np.array(spec.class_proportions)).max() <= 0.04, (split, shares)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_sizes_plan_every_class_in_proportion(seed: int) -> None:
    """The label plan alone (no images): fast, and for a few seeds."""
    spec = SyntheticSpec(seed=seed)
    check_proportions(plan.count(plan.plan_videos(spec)), spec)


@pytest.mark.slow
def test_default_spec_counts_and_proportions(default: tuple[Path, dict]) -> None:
    root, manifest = default
    assert manifest["splits"] == walk_counts(root)
    check_proportions(manifest["splits"], SyntheticSpec())
    for key in SKIP_KEYS:
        assert manifest["skipped"][key] > 0, key


def test_same_spec_gives_identical_files(small: tuple[Path, dict], tmp_path: Path) -> None:
    root, manifest = small
    again = generate_synthetic_affwild2(tmp_path / "again", SMALL)
    assert again == manifest
    assert tree_hashes(tmp_path / "again") == tree_hashes(root)


def test_other_seed_gives_other_files(tmp_path: Path) -> None:
    generate_synthetic_affwild2(tmp_path / "a", TINY)
    generate_synthetic_affwild2(tmp_path / "b", SyntheticSpec(**{**TINY.to_dict(), "seed": 1}))
    a, b = tree_hashes(tmp_path / "a"), tree_hashes(tmp_path / "b")
    common = set(a) & set(b)
    jpegs = [name for name in common if name.endswith(".jpg")]
    assert jpegs
    assert all(a[name] != b[name] for name in jpegs)
    labels = [name for name in common if name.endswith(".txt")]
    assert any(a[name] != b[name] for name in labels)


def test_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_write(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_video", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_affwild2(tmp_path / "data", TINY)
    assert list(tmp_path.iterdir()) == []


def test_generate_into_existing_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    manifest = generate_synthetic_affwild2(tmp_path / "data", TINY)
    assert (tmp_path / "data" / MANIFEST_NAME).is_file()
    assert manifest["splits"]["val"]["videos"] == TINY.num_val_videos
    with Image.open(next((tmp_path / "data" / "cropped_aligned").rglob("*.jpg"))) as image:
        assert image.size == (48, 48)


def down_up(image: np.ndarray, size: int = 8) -> np.ndarray:
    small_image = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(small_image.resize(image.shape[:2][::-1], Image.Resampling.BILINEAR))


@pytest.mark.parametrize("condition_seed", [None, 5])
def test_expression_is_not_a_brightness_cue(condition_seed: int | None) -> None:
    for identity in range(4):
        images = [
            np.asarray(render_face(identity, e, condition_seed=condition_seed), dtype=float)
            for e in range(7)
        ]
        grey = np.array([image.mean() for image in images])
        colour = np.array([image.mean(axis=(0, 1)) for image in images])
        assert grey.max() - grey.min() < 2.0, (identity, grey)
        assert (colour.max(axis=0) - colour.min(axis=0)).max() < 3.0, (identity, colour)


def test_expression_cues_are_geometric_and_fade_at_low_resolution() -> None:
    full, low = [], []
    for identity in range(4):
        for condition_seed in (None, 11):
            images = [
                np.asarray(render_face(identity, e, condition_seed=condition_seed))
                for e in range(7)
            ]
            lows = [down_up(image).astype(float) for image in images]
            for e in range(1, 7):
                full.append(np.abs(images[e].astype(float) - images[0]).mean())
                low.append(np.abs(lows[e] - lows[0]).mean())
    full_arr, low_arr = np.array(full), np.array(low)
    assert full_arr.min() > 0.5  # every expression visibly changes the face
    assert low_arr.mean() < 0.5 * full_arr.mean()


def test_render_face_intensity_and_size() -> None:
    neutral = np.asarray(render_face(3, 0))
    for expression in range(7):
        # At intensity 0 every expression is the resting face.
        assert np.array_equal(np.asarray(render_face(3, expression, 0.0)), neutral)
    half = np.asarray(render_face(3, 6, 0.5), dtype=float)
    full = np.asarray(render_face(3, 6, 1.0), dtype=float)
    assert 0 < np.abs(half - neutral).mean() < np.abs(full - neutral).mean()
    assert render_face(1, 4, image_size=64).size == (64, 64)
    assert render_face(1, 4, condition_seed=2).mode == "RGB"
    with pytest.raises(ValueError, match="expression"):
        render_face(0, 7)
    with pytest.raises(ValueError, match="intensity"):
        render_face(0, 1, 1.5)


def test_contact_sheet_is_drawable() -> None:
    sheet = Image.new("RGB", (7 * 112, 112))
    for e, _ in enumerate(EXPRESSIONS_7):
        sheet.paste(render_face(0, e), (e * 112, 0))
    assert np.asarray(sheet).std() > 10


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_train_videos": 0}, "num_train_videos"),
        ({"num_train_videos": 1}, "num_train_videos"),
        ({"num_val_videos": 1}, "num_val_videos"),
        ({"frames_per_video": 0}, "frames_per_video"),
        ({"frames_per_video": 10}, "frames_per_video"),
        ({"image_size": 0}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"num_val_videos": 2.5}, "num_val_videos"),
        ({"class_proportions": (0.5, 0.5)}, "class_proportions"),
        ({"class_proportions": (0.7, 0.05, 0.04, 0.04, 0.13, 0.09, 0.05)}, "class_proportions"),
        ({"class_proportions": (1.1, -0.1, 0, 0, 0, 0, 0)}, "class_proportions"),
        ({"class_proportions": "abc"}, "class_proportions"),
    ],
)
def test_spec_validation(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticSpec(**overrides)


def test_spec_accepts_lists_and_numpy_ints() -> None:
    spec = SyntheticSpec(
        num_val_videos=np.int64(10), class_proportions=[0.6, 0.05, 0.04, 0.04, 0.13, 0.09, 0.05]
    )
    assert spec == SyntheticSpec()
    assert hash(spec) == hash(SyntheticSpec())
    assert json.loads(json.dumps(spec.to_dict())) == SyntheticSpec().to_dict()


def test_ensure_generates_then_reuses(tmp_path: Path) -> None:
    root = tmp_path / "data"
    assert ensure_synthetic_affwild2(root, TINY) is True
    manifest = root / MANIFEST_NAME
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    os.utime(manifest, ns=(1, 1))
    assert ensure_synthetic_affwild2(root, TINY) is False
    assert manifest.stat().st_mtime_ns == 1
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p != manifest}
    assert after == {p: t for p, t in before.items() if p != manifest}


def test_ensure_rejects_another_spec(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ensure_synthetic_affwild2(root, TINY)
    other = SyntheticSpec(**{**TINY.to_dict(), "seed": 3, "frames_per_video": 41})
    with pytest.raises(ValueError, match="another spec") as info:
        ensure_synthetic_affwild2(root, other)
    message = str(info.value)
    assert "seed" in message and "frames_per_video" in message
    assert "num_train_videos" not in message
    assert "data.root" in message


def test_ensure_rejects_a_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        ensure_synthetic_affwild2(root, TINY)
    with pytest.raises(FileExistsError, match=str(root)):
        generate_synthetic_affwild2(root, TINY)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


def test_ensure_rejects_a_broken_manifest(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=MANIFEST_NAME):
        ensure_synthetic_affwild2(root, TINY)


TARGET_SETS = {"va": "VA_Estimation_Challenge", "au": "AU_Detection_Challenge"}


def target_files(root: Path, annotation_set: str) -> dict[str, bytes]:
    """Every valence-arousal (or action-unit) file of a set, by video."""
    folder = root / "annotations" / TARGET_SETS[annotation_set]
    assert sorted(p.name for p in folder.iterdir()) == ["Train_Set", "Validation_Set"]
    return {p.stem: p.read_bytes() for p in folder.rglob("*.txt")}


def test_va_and_au_files_and_their_quirks(small: tuple[Path, dict]) -> None:
    root, _ = small
    expr = {p.stem: read_labels(p) for p in (root / "annotations" / "EXPR_Set").rglob("*.txt")}
    va, au = target_files(root, "va"), target_files(root, "au")
    # every video has its expression file; some lack the valence-arousal file, some the
    # action-unit file, some both
    assert set(va) < set(expr) and set(au) < set(expr)
    assert set(expr) - set(va) - set(au) and (set(va) - set(au)) and (set(au) - set(va))
    lines = {}
    for name, files in (("va", va), ("au", au)):
        for video, data in files.items():
            text = data.decode("ascii")
            crlf = "\r\n" in text
            assert crlf == (text.count("\n") == text.count("\r\n"))  # one kind of line end
            lines[name, video] = text.splitlines()
            assert len(lines[name, video]) - 1 <= len(expr[video])
    assert any("\r\n" in data.decode() for data in va.values())
    assert any("\r\n" in data.decode() for data in au.values())
    va_rows = {video: rows[1:] for (name, video), rows in lines.items() if name == "va"}
    au_rows = {video: rows[1:] for (name, video), rows in lines.items() if name == "au"}
    assert all(rows.count("-5,-5") >= 2 for rows in va_rows.values())  # a stretch in each file
    assert any(row.count("-5") == 1 for rows in va_rows.values() for row in rows)
    missing_au = ",".join(["-1"] * 12)
    assert all(rows.count(missing_au) >= 2 for rows in au_rows.values())
    assert any("-1" in row and row != missing_au for rows in au_rows.values() for row in rows)
    # one action-unit file stops before its video's expression file does
    assert [v for v, rows in au_rows.items() if len(rows) < len(expr[v])] == [
        "synth_train_000_right"
    ]


@pytest.mark.parametrize("task", ["va", "au"])
def test_the_va_and_au_sets_read_back_with_the_manifest_s_counts(small, task: str) -> None:
    root, manifest = small
    index = read_affwild2(root, task=task)
    for split, counts in manifest[task].items():
        part = index.splits[split]
        assert len(part) == counts["frames"] > 0
        assert part.num_videos_with_frames() == counts["videos"]
        assert {k: part.skipped[k] for k in counts["skipped"]} == counts["skipped"]
        if task == "va":
            assert float(part.va[:, 0].astype(np.float64).mean()) == pytest.approx(
                counts["valence_mean"], abs=2e-6
            )
        else:
            assert (part.au == 1).sum(axis=0).tolist() == counts["au_positives"]
    assert sum(sum(c["skipped"].values()) for c in manifest[task].values()) > 0


def test_a_set_made_before_the_va_and_au_labels_is_named_for_those_tasks(small, tmp_path) -> None:
    import shutil

    from fer_multires.data.datamodule import FERDataModule
    from fer_multires.data.synthetic.writer import MANIFEST_NAME

    root = tmp_path / "old"
    shutil.copytree(small[0], root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    del manifest["va"], manifest["au"]
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    FERDataModule(root=str(root), synthetic=SMALL).prepare_data()  # expressions: as before
    with pytest.raises(ValueError, match=f"{root} holds a synthetic set generated before the"):
        FERDataModule(root=str(root), synthetic=SMALL, task="va").prepare_data()
