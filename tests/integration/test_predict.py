"""``predict`` on real photos (scikit-image's astronaut), folders and videos written here."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import astronaut, compose_entry, write_moving_video
from PIL import Image
from unit.test_predict import no_face_image

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.synthetic.real_faces import match, write_clip
from fer_multires.data.transforms_factory import create_transforms
from fer_multires.inference.align import aligned_crop_side
from fer_multires.inference.detect import (
    DEFAULT_MARGIN,
    LANDMARK_NAMES,
)
from fer_multires.inference.expected import ExpectedScore
from fer_multires.inference.outputs import prediction_header
from fer_multires.inference.runner import format_summary, predict
from fer_multires.models.module import FERModule
from fer_multires.results import SCORE_NAMES, ResultsError, load_eval_results
from fer_multires.runs import resolve_checkpoint
from fer_multires.smoothing import smooth_probabilities
from fer_multires.tasks import AU_NAMES
from fer_multires.utils.checkpoints import CorruptCheckpointError, load_intact_checkpoint

CLASSES = list(EXPRESSIONS_7)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_predict(ckpt: Path, input_path: Path, out_dir: Path, *extra: str):
    overrides = [f"ckpt_path={ckpt}", f"input={input_path}", f"run_dir={out_dir}",
                 f"paths.root_dir={out_dir.parent}", "predict.device=cpu", *extra]  # fmt: skip
    return predict(compose_entry("predict", overrides, out_dir), out_dir)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def save(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return save(astronaut(), tmp_path_factory.mktemp("photo") / "astronaut.jpg")


def test_astronaut_photo_one_face_where_the_face_is(trained_run, photo, tmp_path) -> None:
    """The default: MTCNN finds the face with its landmarks, and the face is aligned."""
    result = run_predict(trained_run, photo, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == prediction_header(CLASSES)
    assert len(rows) == 1
    row = rows[0]
    assert (row["source"], row["frame"], row["track"]) == ("astronaut.jpg", "0", "0")
    x, y, w, h = (int(row[k]) for k in "xywh")
    # the face of the photo: MTCNN finds it at about x=180, y=63, 86 x 110 (Haar: 177, 66, 95)
    assert abs(x - 180) <= 8 and abs(y - 63) <= 8 and 75 <= w <= 100 and 95 <= h <= 125
    assert int(row["face_px"]) == min(w, h)
    assert float(row["score"]) > 0.99
    marks = np.array([[float(row[f"{n}_{a}"]) for a in "xy"] for n in LANDMARK_NAMES])
    # the astronaut's eyes, nose and mouth corners, by eye on the photo
    want = np.array([[204, 101], [247, 103], [225, 129], [202, 139], [245, 142]])
    assert np.abs(marks - want).max() <= 4
    assert int(row["crop_px"]) == aligned_crop_side(marks)  # the aligned crop's side
    probs = np.array([float(row[f"p_{c}"]) for c in CLASSES])
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert row["predicted"] == CLASSES[int(probs.argmax())]
    assert float(row["confidence"]) == pytest.approx(probs.max(), abs=1e-6)
    # the run was evaluated (eval_after_fit): the crop is above the native 24 px -> native score
    native = load_eval_results(trained_run / "eval").scores("val_rest")["native"]
    assert float(row["expected_score"]) == pytest.approx(native, abs=1e-4)
    assert read_csv(tmp_path / "out" / "sources.csv") == [
        {
            "source": "astronaut.jpg",
            "status": "ok",
            "frames": "1",
            "faces": "1",
            "short_tracks": "0",
            "reason": "",
        }
    ]
    assert "astronaut.jpg" in format_summary(result)


def test_haar_detector_crops_square_without_landmarks(trained_run, photo, tmp_path) -> None:
    run_predict(trained_run, photo, tmp_path / "out", "detector=haar")
    (row,) = read_csv(tmp_path / "out" / "predictions.csv")
    x, y, w, h = (int(row[k]) for k in "xywh")
    # the face of the photo: Haar finds it at about x=177, y=66, 95 x 95
    assert abs(x - 177) <= 8 and abs(y - 66) <= 8 and 80 <= w <= 110 and w == h
    assert int(row["crop_px"]) == round(w * (1 + 2 * DEFAULT_MARGIN))
    assert row["score"] == "" and row["left_eye_x"] == "" and row["mouth_right_y"] == ""


def test_align_false_crops_the_mtcnn_face_square(trained_run, photo, tmp_path) -> None:
    run_predict(trained_run, photo, tmp_path / "aligned")
    run_predict(trained_run, photo, tmp_path / "square", "align=false")
    (aligned,) = read_csv(tmp_path / "aligned" / "predictions.csv")
    (square,) = read_csv(tmp_path / "square" / "predictions.csv")
    assert [aligned[k] for k in ("x", "y", "w", "h", "score")] == [
        square[k] for k in ("x", "y", "w", "h", "score")]  # fmt: skip
    side = max(int(square["w"]), int(square["h"]))
    assert int(square["crop_px"]) == round(side * (1 + 2 * DEFAULT_MARGIN))
    assert square["left_eye_x"] == aligned["left_eye_x"] != ""  # landmarks still written
    assert square["p_Neutral"] != aligned["p_Neutral"]  # another crop was classified


def test_crop_is_prepared_exactly_as_the_evaluation_prepares_frames(trained_run, tmp_path) -> None:
    """detector=none: the probabilities are the model's on the data module's eval transform."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    path = save(image, tmp_path / "face.png")
    run_predict(trained_run, path, tmp_path / "out", "detector=none")
    (row,) = read_csv(tmp_path / "out" / "predictions.csv")
    box = [int(row[k]) for k in ("x", "y", "w", "h", "face_px", "crop_px")]
    assert box == [0, 0, 52, 40, 40, 40]
    ckpt = resolve_checkpoint(trained_run)
    model = FERModule.load_from_checkpoint(ckpt, pretrained=None, map_location="cpu").eval()
    batch = create_transforms(resize_size=28, crop_size=24).batch.eval(
        torch.from_numpy(image).permute(2, 0, 1)[None]
    )
    with torch.inference_mode():
        expected = torch.softmax(model(batch).double(), dim=1)[0].numpy()
    got = np.array([float(row[f"p_{c}"]) for c in CLASSES])
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_folder_with_a_corrupt_file_cli(trained_run, photo, tmp_path) -> None:
    """The CLI: a corrupt image is unreadable, the others are processed, the exit status says so."""
    folder = tmp_path / "in"
    save(astronaut(), folder / "b_people" / "astronaut.jpg")
    save(no_face_image(), folder / "a_empty.png")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_multires.predict", f"ckpt_path={trained_run}",
         f"input={folder}", f"run_dir={out}", "predict.device=cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    sources = read_csv(out / "sources.csv")
    assert [(s["source"], s["status"], s["faces"]) for s in sources] == [
        ("a_empty.png", "no_face", "0"),
        ("b_people/astronaut.jpg", "ok", "1"),
        ("c_broken.jpg", "unreadable", "0"),
    ]
    assert "cannot read image" in sources[2]["reason"]
    assert "c_broken.jpg" in proc.stdout + proc.stderr  # the reason is logged
    rows = read_csv(out / "predictions.csv")
    assert [r["source"] for r in rows] == ["b_people/astronaut.jpg"]
    assert f"output directory: {out}" in proc.stdout
    assert "1 inputs were unreadable" in proc.stdout


def test_missing_checkpoint_or_input_is_an_error_before_any_work(trained_run, photo,
                                                                  tmp_path) -> None:  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match=r"ckpt_path: checkpoint .*nothing\.ckpt"):
        run_predict(tmp_path / "nothing.ckpt", photo, out)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path: checkpoint .*model\.onnx"):
        run_predict(tmp_path / "model.onnx", photo, out)
    with pytest.raises(FileNotFoundError, match=r"input: .*missing\.jpg does not exist"):
        run_predict(trained_run, tmp_path / "missing.jpg", out)
    with pytest.raises(ValueError, match=r"predict.smoothing=4 must be odd"):
        run_predict(trained_run, photo, out, "predict.smoothing=4")
    with pytest.raises(ValueError, match=r"detector.name='retina' is not one of mtcnn, haar, none"):
        run_predict(trained_run, photo, out, "detector.name=retina")
    with pytest.raises(ValueError, match=r"detector.onet_threshold=1.5 must be in \(0, 1\]"):
        run_predict(trained_run, photo, out, "detector.onet_threshold=1.5")
    with pytest.raises(ValueError, match=r"detector.min_face_size=2.0 must be >= 4"):
        run_predict(trained_run, photo, out, "detector.min_face_size=2")
    with pytest.raises(ValueError, match=r"detector.scale_factor=0.9 must be > 1"):
        run_predict(trained_run, photo, out, "detector=haar", "detector.scale_factor=0.9")
    with pytest.raises(ValueError, match=r"align='yes' must be true or false"):
        run_predict(trained_run, photo, out, "align=yes")
    with pytest.raises(ValueError, match=r"predict.detect_every=0 must be an integer >= 1"):
        run_predict(trained_run, photo, out, "predict.detect_every=0")
    with pytest.raises(ValueError, match=r"predict.track_max_shift=-1.0 must be >= 0"):
        run_predict(trained_run, photo, out, "predict.track_max_shift=-1")
    with pytest.raises(ValueError, match=r"predict.margin=-0.1"):
        run_predict(trained_run, photo, out, "predict.margin=-0.1")
    assert not out.exists()


def test_empty_folder_is_an_error_naming_it(trained_run, tmp_path) -> None:
    folder = tmp_path / "nothing_here"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=rf"input: the folder {folder} holds no image.*1 other"):
        run_predict(trained_run, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_annotated_image(trained_run, photo, tmp_path) -> None:
    run_predict(trained_run, photo, tmp_path / "out", "predict.annotate=true")
    (row,) = read_csv(tmp_path / "out" / "predictions.csv")
    drawn = np.asarray(Image.open(tmp_path / "out" / "annotated" / "astronaut.jpg").convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert drawn.shape == original.shape
    x, y, h = int(row["x"]), int(row["y"]), int(row["h"])
    changed = np.abs(drawn.astype(int) - original.astype(int)).sum(axis=2) > 60
    assert changed[y + h // 2, x - 1 : x + 2].any()  # the box's left edge
    assert not changed[400:, :100].any()  # far from the face: untouched


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    write_moving_video(path, frames=10)
    return path


def test_video_is_one_track_over_all_frames(trained_run, video, tmp_path) -> None:
    run_predict(trained_run, video, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert [int(r["frame"]) for r in rows] == list(range(10))
    assert {r["track"] for r in rows} == {"0"}
    xs = [int(r["x"]) for r in rows]
    # the photo moves 4 px left per frame, so the face does too
    assert xs[0] - xs[-1] == pytest.approx(36, abs=10)
    assert read_csv(tmp_path / "out" / "sources.csv")[0] == {
        "source": "moving.mp4", "status": "ok", "frames": "10", "faces": "10", "short_tracks": "0",
        "reason": ""}  # fmt: skip


@pytest.fixture(scope="module")
def six_faces(tmp_path_factory) -> tuple[Path, list]:
    """A 20-frame clip of six real faces, 16 to 64 px wide, drifting 0.5 px a frame."""
    path = tmp_path_factory.mktemp("six") / "six.mp4"
    return path, write_clip(path, [16, 20, 28, 36, 48, 64], frames=20, speed=0.5, seed=3)


def test_six_person_clip_gives_six_tracks_where_the_faces_are(trained_run, six_faces,
                                                              tmp_path) -> None:  # fmt: skip
    path, truth = six_faces
    run_predict(trained_run, path, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert len(rows) == 6 * 20
    assert {r["track"] for r in rows} == {str(t) for t in range(6)}
    track_of: dict[int, str] = {}  # true face (its index) -> its track
    by_frame: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        by_frame.setdefault(int(r["frame"]), []).append(r)
    for number, faces in enumerate(truth):
        found = by_frame[number]
        boxes = [(int(r["x"]), int(r["y"]), int(r["x"]) + int(r["w"]), int(r["y"]) + int(r["h"]))
                 for r in found]  # fmt: skip
        assert match(faces, boxes) == ([True] * 6, 0), number
        for i, face in enumerate(faces):  # each face keeps its one track over the clip
            (row,) = [r for r, b in zip(found, boxes, strict=True) if match([face], [b])[0][0]]
            assert track_of.setdefault(i, row["track"]) == row["track"], (number, i)
    assert read_csv(tmp_path / "out" / "sources.csv")[0]["faces"] == "120"


def test_video_every_n_frames_and_smoothing(trained_run, video, tmp_path) -> None:
    run_predict(trained_run, video, tmp_path / "raw", "predict.every_n_frames=3")
    run_predict(
        trained_run,
        video,
        tmp_path / "smooth",
        "predict.every_n_frames=3",
        "predict.smoothing=7",
        "predict.smoothing_kind=gaussian",
        "predict.batch_size=2",
    )
    raw = read_csv(tmp_path / "raw" / "predictions.csv")
    smooth = read_csv(tmp_path / "smooth" / "predictions.csv")
    assert [int(r["frame"]) for r in raw] == [0, 3, 6, 9]
    assert read_csv(tmp_path / "raw" / "sources.csv")[0]["frames"] == "4"
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in raw])
    want = smooth_probabilities(probs, np.zeros(4), np.array([0, 3, 6, 9]), 7, "gaussian")
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in smooth])
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert not np.allclose(got, probs, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_annotated_video_has_every_frame(trained_run, video, tmp_path) -> None:
    run_predict(trained_run, video, tmp_path / "out", "predict.annotate=true",
                "predict.every_n_frames=2")  # fmt: skip
    capture = cv2.VideoCapture(str(tmp_path / "out" / "annotated" / "moving.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 10
    assert frames[0].shape == (448, 448, 3)
    assert not list((tmp_path / "out" / "annotated").glob(".*"))  # no temporary file left


def test_unopenable_video_is_unreadable_and_others_processed(trained_run, photo, tmp_path) -> None:
    folder = tmp_path / "in"
    save(astronaut(), folder / "photo.jpg")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    result = run_predict(trained_run, folder, tmp_path / "out")
    assert result.unreadable == 1
    statuses = {s["source"]: s for s in read_csv(tmp_path / "out" / "sources.csv")}
    assert statuses["clip.mp4"]["status"] == "unreadable"
    assert "clip.mp4" in statuses["clip.mp4"]["reason"]
    assert statuses["photo.jpg"]["status"] == "ok"


def test_expected_score_interpolates_over_the_evaluated_resolutions(trained_run) -> None:
    results = load_eval_results(trained_run / "eval")
    scores = results.scores("val_rest")
    expected = ExpectedScore.from_results(results)
    assert expected.resolutions == (8, 16, 24)  # 24: the frames' native size
    assert expected.at(8) == pytest.approx(scores["8"])
    assert expected.at(16) == pytest.approx(scores["16"])
    mid = scores["8"] + (math.log2(12) - 3) * (scores["16"] - scores["8"])
    assert expected.at(12) == pytest.approx(mid)
    assert expected.at(500) == pytest.approx(scores["native"])
    assert expected.at(7) is None
    assert ExpectedScore.from_json(expected.to_json()) == expected


def test_faces_below_the_smallest_resolution_are_flagged(trained_run, tmp_path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "crops"
    save(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), folder / "tiny.png")
    save(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), folder / "small.png")
    result = run_predict(trained_run, folder, tmp_path / "out", "detector=none")
    rows = {r["source"]: r for r in read_csv(tmp_path / "out" / "predictions.csv")}
    assert rows["tiny.png"]["expected_score"] == ""
    small = float(rows["small.png"]["expected_score"])
    assert small == pytest.approx(result.expected.at(12), abs=1e-6)  # written with 6 decimals
    summary = format_summary(result)
    assert "faces below 8 px" in summary
    assert "1 faces are smaller than the smallest evaluated resolution (8 px" in summary


def test_expected_score_is_read_at_the_crop_not_the_face_box(trained_run, photo, tmp_path) -> None:
    """An evaluated resolution is a whole frame's side: a face maps to its crop's, face_px * 1.4."""
    import json

    data = json.loads((trained_run / "eval" / "metrics.json").read_text())
    rename = {"8": "64", "16": "256"}  # as if evaluated on 512 px frames at 64 and 256 px
    for split in ("val_select", "val_full", "val_rest"):
        data[split] = {rename.get(k, k): v for k, v in data[split].items()}
    data.update(resolutions=[64, 256], native_size=[512, 512], degradations={})
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    result = run_predict(trained_run, photo, tmp_path / "out", f"predict.metrics={tmp_path}")
    (row,) = read_csv(tmp_path / "out" / "predictions.csv")
    face_px, crop_px = int(row["face_px"]), int(row["crop_px"])
    assert 64 < face_px < crop_px < 256
    assert float(row["expected_score"]) == pytest.approx(result.expected.at(crop_px), abs=1e-6)
    scores = result.expected.scores
    if scores[0] != scores[1]:  # a model whose score changes between the two resolutions
        assert result.expected.at(crop_px) != pytest.approx(result.expected.at(face_px))


def test_run_without_evaluation_has_no_expected_score(trained_run, photo, tmp_path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval"))
    result = run_predict(run, photo, tmp_path / "out")
    assert result.expected is None
    (row,) = read_csv(tmp_path / "out" / "predictions.csv")
    assert row["expected_score"] == ""
    assert "no evaluation of this model" in format_summary(result)


def random_image(path: Path, side: int = 32, seed: int = 0) -> Path:
    return save(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8), path)


def test_non_utf8_file_name_survives_in_every_output(trained_run, tmp_path) -> None:
    folder = tmp_path / "in"
    random_image(folder / "a.jpg")
    random_image(folder / os.fsdecode(b"z_caf\xe9.jpg"), seed=1)
    out = tmp_path / "out"
    result = run_predict(trained_run, folder, out, "detector=none",
                         "predict.annotate=true")  # fmt: skip
    escaped = "z_caf\\xe9.jpg"
    assert [s["source"] for s in read_csv(out / "sources.csv")] == ["a.jpg", escaped]
    assert [r["source"] for r in read_csv(out / "predictions.csv")] == ["a.jpg", escaped]
    assert escaped in format_summary(result).encode("utf-8").decode("utf-8")
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["a.jpg", escaped]


def test_decompression_bomb_is_unreadable_and_others_processed(trained_run, tmp_path,
                                                                monkeypatch) -> None:  # fmt: skip
    folder = tmp_path / "in"
    random_image(folder / "a.png", side=20)
    random_image(folder / "z_big.png", side=100)  # 10000 pixels: over twice the lowered limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    result = run_predict(trained_run, folder, tmp_path / "out", "detector=none")
    assert result.unreadable == 1  # exit status 2
    statuses = {s["source"]: s for s in read_csv(tmp_path / "out" / "sources.csv")}
    assert statuses["a.png"]["status"] == "ok"
    assert statuses["z_big.png"]["status"] == "unreadable"
    assert "z_big.png: cannot read image: Image size (10000 pixels)" in statuses["z_big.png"][
        "reason"]  # fmt: skip


def test_annotated_copies_of_one_stem_are_distinct(trained_run, tmp_path) -> None:
    folder = tmp_path / "in"
    random_image(folder / "astro.png")
    random_image(folder / "astro.tif", seed=1)
    write_moving_video(folder / "clip.avi", frames=2)
    write_moving_video(folder / "clip.mp4", frames=2)
    out = tmp_path / "out"
    run_predict(trained_run, folder, out, "detector=none", "predict.annotate=true")
    names = sorted(p.name for p in (out / "annotated").iterdir())
    assert names == ["astro.png", "astro.tif.png", "clip.avi.mp4", "clip.mp4"]
    tif = np.asarray(Image.open(out / "annotated" / "astro.tif.png").convert("RGB"))
    png = np.asarray(Image.open(out / "annotated" / "astro.png").convert("RGB"))
    assert not np.array_equal(tif, png)  # each its own source's pixels


def test_corrupt_run_evaluation_is_an_error_naming_it(trained_run, tmp_path, photo) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    metrics = run / "eval" / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:50])
    with pytest.raises(ResultsError, match=rf"{re.escape(str(metrics))}: cannot read results"):
        run_predict(run, photo, tmp_path / "out")


def test_damaged_checkpoint_is_named_whatever_lies_beside_it(trained_run, tmp_path) -> None:
    good = resolve_checkpoint(trained_run)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    trunc = folder / "epoch=0.ckpt"
    trunc.write_bytes(good.read_bytes()[:100_000])
    (folder / "last.ckpt").symlink_to(folder / "gone.ckpt")
    (folder / "dir.ckpt").mkdir()
    with pytest.raises(CorruptCheckpointError, match=r"epoch=0\.ckpt is corrupt.*no other"):
        load_intact_checkpoint(trunc)
    (folder / "intact.ckpt").write_bytes(good.read_bytes())
    with pytest.raises(CorruptCheckpointError, match=r"beside it is .*intact\.ckpt"):
        load_intact_checkpoint(trunc)


def test_every_folder_entry_not_read_is_counted(trained_run, tmp_path) -> None:
    folder = tmp_path / "in"
    random_image(folder / "a.jpg")
    (folder / "b_link.jpg").symlink_to(folder / "gone.jpg")
    os.mkfifo(folder / "c_pipe.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "d_link.txt").symlink_to(folder / "gone.txt")
    result = run_predict(trained_run, folder, tmp_path / "out", "detector=none")
    rows = read_csv(tmp_path / "out" / "sources.csv")
    assert list(rows[0]) == ["source", "status", "frames", "faces", "short_tracks", "reason"]
    assert [(r["source"], r["status"]) for r in rows] == [
        ("a.jpg", "ok"), ("b_link.jpg", "unreadable"), ("c_pipe.jpg", "unreadable")]  # fmt: skip
    assert "b_link.jpg: cannot read: a broken symbolic link" in rows[1]["reason"]
    assert "c_pipe.jpg: cannot read: a FIFO" in rows[2]["reason"]
    assert (result.unreadable, result.not_read) == (2, 2)
    assert "2 entries of the input folder are neither images nor videos" in format_summary(result)


def test_video_shorter_than_its_container_says_is_noted(trained_run, tmp_path) -> None:
    full = tmp_path / "full.avi"
    write_moving_video(full, frames=17)
    folder = tmp_path / "in"
    folder.mkdir()
    data = full.read_bytes()
    (folder / "cut.avi").write_bytes(data[: len(data) // 2])
    full.rename(folder / "full.avi")
    result = run_predict(trained_run, folder, tmp_path / "out", "detector=none")
    rows = {r["source"]: r for r in read_csv(tmp_path / "out" / "sources.csv")}
    assert rows["cut.avi"]["status"] == "ok" and 0 < int(rows["cut.avi"]["frames"]) < 17
    assert f"{rows['cut.avi']['frames']} of the 17 frames" in rows["cut.avi"]["reason"]
    assert rows["full.avi"]["frames"] == "17" and rows["full.avi"]["reason"] == ""
    assert result.short_videos == 1 and result.unreadable == 0
    assert "1 videos ended before the frame count their container gives" in format_summary(result)


# ------------------------------------------------------------- valence-arousal, AUs, multi-task

#: The columns of each head in the task runs' output layer (``task_runs``: 7 classes, abaw2).
TASK_LAYOUT = {
    "va": {"va": slice(0, 2)},
    "au": {"au": slice(0, 12)},
    "mtl": {"expr": slice(0, 7), "va": slice(7, 9), "au": slice(9, 21)},
}
#: The AU thresholds of :func:`copy_with_evaluation`'s evaluation: 0.25, 0.3125, ... 0.9375.
AU_THRESHOLDS = {au: (8 + 2 * i) / 32 for i, au in enumerate(AU_NAMES)}
#: Its task scores at 8 px, 16 px and native (24 px) resolution.
TASK_SCORES = {"8": 0.1, "16": 0.3, "native": 0.4}


def task_classes(task: str) -> list[str]:
    return CLASSES if task == "mtl" else []


def without_evaluation(run: Path, out: Path) -> Path:
    """A copy of a task run without its end-of-training evaluation (``<run>/eval``)."""
    import shutil

    shutil.copytree(run, out, ignore=shutil.ignore_patterns("eval"))
    return out


def copy_with_evaluation(run: Path, out: Path, task: str) -> Path:
    """A copy of a task run with an evaluation written by hand into ``<run>/eval``.

    As an evaluation of the task writes it: the task's score per resolution of each split
    (``va_score``, ``au_score``, ``mtl_score``), the native size and, with an AU head, the AU
    thresholds chosen on val_select.
    """
    import json

    without_evaluation(run, out)
    key = {"va": "va_score", "au": "au_score", "mtl": "mtl_score"}[task]
    entries = {res: {key: score, "n": 45} for res, score in TASK_SCORES.items()}
    data = {"task": task, "checkpoint": str(resolve_checkpoint(out)), "native_size": [24, 24],
            "resolutions": [8, 16], "val_select": entries, "val_rest": entries,
            "val_full": entries}  # fmt: skip
    if task != "va":
        data["au_thresholds"] = AU_THRESHOLDS
    (out / "eval").mkdir()
    (out / "eval" / "metrics.json").write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def task_inputs(tmp_path_factory) -> Path:
    """Face crops (40 x 52 and 12 px: below the 16 px evaluated) and a 5-frame video."""
    folder = tmp_path_factory.mktemp("task_inputs")
    rng = np.random.default_rng(3)
    save(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8), folder / "face.png")
    save(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), folder / "tiny.png")
    write_moving_video(folder / "clip.avi", frames=5)
    return folder


def input_frames(folder: Path) -> list[np.ndarray]:
    """The RGB images predict reads from ``task_inputs``, in its row order."""
    capture = cv2.VideoCapture(str(folder / "clip.avi"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    capture.release()
    images = [np.asarray(Image.open(folder / n).convert("RGB")) for n in ("face.png", "tiny.png")]
    return frames + images


def head_values(rows: list[dict[str, str]], task: str) -> dict[str, np.ndarray]:
    """Each head's numbers read back from predictions.csv."""
    columns = {"expr": [f"p_{c}" for c in CLASSES], "va": ["valence", "arousal"],
               "au": [f"p_{au}" for au in AU_NAMES]}  # fmt: skip
    return {head: np.array([[float(r[c]) for c in columns[head]] for r in rows])
            for head in TASK_LAYOUT[task]}  # fmt: skip


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_task_columns_are_the_models_heads(task_runs, task_inputs, task, tmp_path) -> None:
    """detector=none: each head is the model's output layer's columns through softmax, tanh or
    sigmoid (numpy), on the evaluation's preprocessing; every AU at 0.5 without an evaluation."""
    run = without_evaluation(task_runs(task), tmp_path / "run")
    result = run_predict(run, task_inputs, tmp_path / "out", "detector=none")
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == prediction_header(task_classes(task), task)
    assert [(r["source"], r["frame"]) for r in rows] == [
        *(("clip.avi", str(f)) for f in range(5)),
        ("face.png", "0"),
        ("tiny.png", "0"),
    ]
    model = FERModule.load_from_checkpoint(resolve_checkpoint(run), pretrained=None,
                                           map_location="cpu").eval()  # fmt: skip
    transform = create_transforms(resize_size=28, crop_size=24).batch
    batch = torch.cat([transform.eval(torch.from_numpy(np.ascontiguousarray(image)).permute(
        2, 0, 1)[None]) for image in input_frames(task_inputs)])  # fmt: skip
    with torch.inference_mode():
        raw = model(batch).double().numpy()
    got = head_values(rows, task)
    for head, part in TASK_LAYOUT[task].items():
        columns = raw[:, part]
        want = {"expr": lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True),
                "va": np.tanh, "au": lambda x: 1 / (1 + np.exp(-x))}[head](columns)  # fmt: skip
        np.testing.assert_allclose(got[head], want, atol=2e-6, err_msg=head)
    if "au" in got:
        active = np.array([[int(r[au]) for au in AU_NAMES] for r in rows])
        np.testing.assert_array_equal(active, (got["au"] >= 0.5).astype(int))
        assert "AU thresholds: 0.5 for every AU (no evaluation" in format_summary(result)
    if "expr" in got:
        assert [r["predicted"] for r in rows] == [CLASSES[i] for i in got["expr"].argmax(1)]
    assert all(r["expected_score"] == "" for r in rows)  # the run has no evaluation
    assert "no evaluation of this model" in format_summary(result)


def test_task_smoothing_covers_every_head_and_the_au_decisions_follow(
    task_runs, task_inputs, tmp_path
) -> None:
    run = without_evaluation(task_runs("mtl"), tmp_path / "run")
    run_predict(run, task_inputs, tmp_path / "raw", "detector=none")
    run_predict(run, task_inputs, tmp_path / "smooth", "detector=none", "predict.smoothing=3",
                "predict.annotate=true")  # fmt: skip
    raw = read_csv(tmp_path / "raw" / "predictions.csv")[:5]  # the video's rows
    smooth = read_csv(tmp_path / "smooth" / "predictions.csv")
    for head, values in head_values(raw, "mtl").items():
        want = smooth_probabilities(values, np.zeros(5), np.arange(5), 3, "mean")
        got = head_values(smooth[:5], "mtl")[head]
        np.testing.assert_allclose(got, want, atol=2e-6, err_msg=head)
        assert not np.allclose(got, values, atol=1e-6), head
    probs = head_values(smooth, "mtl")["au"]
    active = np.array([[int(r[au]) for au in AU_NAMES] for r in smooth])
    np.testing.assert_array_equal(active, (probs >= 0.5).astype(int))
    assert smooth[5:] == read_csv(tmp_path / "raw" / "predictions.csv")[5:]  # images: as they are
    annotated = tmp_path / "smooth" / "annotated"
    assert sorted(p.name for p in annotated.iterdir()) == ["clip.avi.mp4", "face.png", "tiny.png"]
    drawn = np.asarray(Image.open(annotated / "face.png").convert("RGB")).astype(int)
    original = np.asarray(Image.open(task_inputs / "face.png").convert("RGB")).astype(int)
    changed = np.abs(drawn - original).sum(axis=2) > 60
    assert changed[:30, 1].all()  # three label lines from the top (one would end at ~15 px)


@pytest.mark.parametrize("task", ["au", "mtl"])
def test_task_score_and_au_thresholds_come_from_the_runs_evaluation(task_runs, task_inputs, task,
                                                                    tmp_path) -> None:  # fmt: skip
    run = copy_with_evaluation(task_runs(task), tmp_path / "run", task)
    result = run_predict(run, task_inputs, tmp_path / "out", "detector=none")
    rows = {r["source"] + r["frame"]: r for r in read_csv(tmp_path / "out" / "predictions.csv")}
    assert float(rows["face.png0"]["expected_score"]) == pytest.approx(TASK_SCORES["native"])
    between = TASK_SCORES["8"] + (math.log2(12) - 3) * (TASK_SCORES["16"] - TASK_SCORES["8"])
    assert float(rows["tiny.png0"]["expected_score"]) == pytest.approx(between, abs=1e-6)
    thresholds = np.array(list(AU_THRESHOLDS.values()))
    probs = np.array([[float(r[f"p_{au}"]) for au in AU_NAMES] for r in rows.values()])
    active = np.array([[int(r[au]) for au in AU_NAMES] for r in rows.values()])
    np.testing.assert_array_equal(active, (probs >= thresholds).astype(int))
    assert (active != (probs >= 0.5)).any()  # the thresholds made a difference
    summary = format_summary(result)
    assert f"AU thresholds: per AU, chosen on val_select, from {run / 'eval' / 'metrics.json'}" in (
        summary)  # fmt: skip
    assert f"expected_score: val_rest {SCORE_NAMES[task]} of" in summary
