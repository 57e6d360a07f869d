"""``predict`` on real photos (scikit-image's astronaut), folders and videos written here."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_entry

from fer_multires.data.transforms_factory import create_transforms
from fer_multires.inference.classifier import CropPreprocessor, activate
from fer_multires.inference.detect import (
    DEFAULT_MARGIN,
    Box,
    Face,
    HaarDetector,
    crop_square,
)
from fer_multires.inference.expected import (
    AuThresholds,
    ExpectedScore,
    load_au_thresholds,
    load_expected_score,
)
from fer_multires.inference.outputs import (
    FaceTable,
    SourceStatus,
    annotated_paths,
    face_labels,
    prediction_header,
    summary_table,
    write_predictions,
)
from fer_multires.inference.runner import PredictSettings, smooth_tracks
from fer_multires.inference.sources import Source
from fer_multires.inference.tracks import FaceTracker
from fer_multires.results import ResultsError
from fer_multires.runs import ModelInput
from fer_multires.tasks import AU_NAMES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def no_face_image() -> np.ndarray:
    """A smooth colour gradient: nothing the cascade could take for a face."""
    ramp = np.linspace(0, 255, 320, dtype=np.float64)
    return np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0 + 0 * ramp[None, :]),
                    axis=-1).astype(np.uint8)  # fmt: skip


def test_preprocessor_groups_sizes_and_keeps_order() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (30, 50, 30, 64)]
    prep = CropPreprocessor(ModelInput(28, 24, "imagenet"))
    batch = prep(crops, torch.device("cpu"))
    transform = create_transforms(resize_size=28, crop_size=24).batch
    for crop, got in zip(crops, batch, strict=True):
        want = transform.eval(torch.from_numpy(crop).permute(2, 0, 1)[None])[0]
        torch.testing.assert_close(got, want)


def test_default_margin_is_the_documented_one() -> None:
    cfg = compose_entry("predict", ["ckpt_path=x", "input=y"], Path("."))
    assert cfg.predict.margin == DEFAULT_MARGIN == PredictSettings().margin


def test_haar_finds_no_face_in_a_gradient() -> None:
    assert HaarDetector()(no_face_image()) == []


def test_crop_square_pads_outside_the_frame_with_black() -> None:
    frame = np.full((100, 120, 3), 200, dtype=np.uint8)
    crop = crop_square(frame, Box(90, -10, 20, 20), margin=0.5)
    assert crop.shape == (40, 40, 3)
    # the square spans x 80..120 and y -20..20: its top half is above the frame
    assert (crop[:20] == 0).all() and (crop[20:] == 200).all()
    whole = crop_square(frame, Box(0, 0, 120, 100), margin=0.0)
    assert whole.shape == frame.shape


def test_tracker_links_by_overlap_and_closes_lost_tracks() -> None:
    tracker = FaceTracker(min_iou=0.3, max_shift=0.2, max_gap=1)

    def update(*boxes: Box) -> list[int]:
        tracker.next_frame()
        return tracker.assign([Face(b) for b in boxes])

    assert update(Box(0, 0, 50, 50), Box(200, 0, 50, 50)) == [0, 1]
    assert update(Box(205, 2, 50, 50), Box(4, 0, 50, 50)) == [1, 0]
    assert update(Box(8, 0, 50, 50)) == [0]  # track 1 unseen for 1 frame
    assert update(Box(12, 0, 50, 50)) == [0]  # track 1 unseen for 2 frames: closed
    assert update(Box(205, 2, 50, 50), Box(400, 0, 50, 50)) == [2, 3]
    assert update(Box(12, 0, 100, 100), Box(400, 0, 50, 50)) == [4, 3]  # twice the size: new


def test_tracker_links_small_faces_by_landmarks_when_boxes_barely_overlap() -> None:
    """A 12 px face moved 5 px: IoU 0.41, under min_iou, but its landmarks moved 0.42 sides."""
    marks = np.array([[3.0, 4], [9, 4], [6, 7], [4, 10], [8, 10]])
    tracker = FaceTracker(min_iou=0.5, max_shift=0.5, max_gap=2)
    tracker.next_frame()
    assert tracker.assign([Face(Box(0, 0, 12, 12), 0.9, marks)]) == [0]
    moved = Face(Box(5, 0, 12, 12), 0.9, marks + np.array([5, 0]))
    assert moved.box.iou(Box(0, 0, 12, 12)) < 0.5
    tracker.next_frame()
    assert tracker.assign([moved]) == [0]
    far = Face(
        Box(14, 0, 12, 12), 0.9, marks + np.array([14, 0])
    )  # moved 9 px = 0.75 sides: another face
    tracker.next_frame()
    assert tracker.assign([far]) == [1]


def test_annotated_paths_are_unique_even_for_a_name_taken_by_the_rule(tmp_path) -> None:
    sources = [Source(tmp_path / n, n, False) for n in ("astro.tif", "astro.tif.png", "b.JPG")]
    paths = annotated_paths(tmp_path, sources)
    assert [p.relative_to(tmp_path / "annotated").as_posix() for p in paths] == [
        "astro.tif.png", "astro.tif~2.png", "b.JPG"]  # fmt: skip


# ------------------------------------------------------------- the heads of every task (issue 23)


def face_table(outputs: dict[str, np.ndarray], classes: tuple[str, ...] = (), frames=None,
               tracks=None) -> FaceTable:  # fmt: skip
    """A table of ``n`` faces of one video with the given heads' outputs."""
    n = len(next(iter(outputs.values())))
    return FaceTable(
        list(classes), np.array(["clip.mp4"] * n, dtype=object),
        np.arange(n) if frames is None else np.asarray(frames),
        np.zeros(n, dtype=np.int64) if tracks is None else np.asarray(tracks),
        np.tile([0, 0, 10, 10], (n, 1)), np.full(n, 10), np.full(n, np.nan),
        np.full((n, 5, 2), np.nan), outputs, np.full(n, np.nan),
    )  # fmt: skip


def test_prediction_header_per_task() -> None:
    landmarks = prediction_header(["A"])[10:20]
    base = ["source", "frame", "track", "x", "y", "w", "h", "face_px", "crop_px", "score"]
    expr = ["predicted", "confidence", "p_A", "p_B"]
    aus = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25",
           "AU26"]  # fmt: skip
    au = [f"p_{a}" for a in aus] + aus
    want = {"expr": expr, "va": ["valence", "arousal"], "au": au,
            "mtl": [*expr, "valence", "arousal", *au]}  # fmt: skip
    for task, heads in want.items():
        classes = ["A", "B"] if task in ("expr", "mtl") else []
        assert prediction_header(classes, task) == [*base, *landmarks, *heads, "expected_score"]
    assert prediction_header(["A", "B"]) == prediction_header(["A", "B"], "expr")


def test_heads_are_activated_as_numpy_computes_them() -> None:
    rng = np.random.default_rng(0)
    raw = {"expr": rng.normal(size=(4, 3)).astype(np.float32),
           "va": np.tanh(rng.normal(size=(4, 2))).astype(np.float32),
           "au": rng.normal(size=(4, 12)).astype(np.float32)}  # fmt: skip
    out = activate(raw)
    logits = raw["expr"].astype(np.float64)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["expr"], softmax, rtol=1e-12)
    np.testing.assert_array_equal(out["va"], raw["va"].astype(np.float64))
    np.testing.assert_allclose(out["au"], 1 / (1 + np.exp(-raw["au"].astype(np.float64))),
                               rtol=1e-12)  # fmt: skip
    assert all(v.dtype == np.float64 for v in out.values())


def test_au_decisions_are_the_written_probabilities_at_each_threshold(tmp_path) -> None:
    """``p_AU >= threshold`` on the file's 6 decimals gives the AU column, even next to it."""
    probs = np.full((3, 12), 0.2)
    probs[0, 0], probs[1, 0] = 0.4999996, 0.4999994  # written 0.500000 and 0.499999
    probs[:, 1] = [0.71875, 0.7187496, 0.9]  # threshold 23/32 = 0.71875
    table = face_table({"au": probs})
    table.au_thresholds = np.array([0.5, 23 / 32, *[0.125] * 10])
    active = table.au_active
    assert active[:, 0].tolist() == [True, False, False]
    assert active[:, 1].tolist() == [True, True, True]  # 0.7187496 is written 0.718750
    assert active[:, 2:].all()
    write_predictions(tmp_path / "p.csv", table)
    with (tmp_path / "p.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = [c for c in rows[0] if c.startswith("AU")]
    for row in rows:
        written = np.array([float(row[f"p_{n}"]) for n in names])
        assert [int(row[n]) for n in names] == (written >= table.au_thresholds).astype(int).tolist()


def test_multitask_rows_hold_every_head(tmp_path) -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    va = np.array([[0.4204, -0.1], [-1.0, 1.0]])
    au = np.full((2, 12), 0.75)
    table = face_table({"expr": probs, "va": va, "au": au}, classes=("A", "B"))
    assert table.task == "mtl"
    write_predictions(tmp_path / "p.csv", table)
    with (tmp_path / "p.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == prediction_header(["A", "B"], "mtl")
    assert [(r["predicted"], r["confidence"]) for r in rows] == [("B", "0.800000"),
                                                                  ("A", "0.600000")]  # fmt: skip
    assert [(r["valence"], r["arousal"]) for r in rows] == [("0.420400", "-0.100000"),
                                                            ("-1.000000", "1.000000")]  # fmt: skip
    assert rows[0]["p_AU12"] == "0.750000" and rows[0]["AU12"] == "1"
    assert rows[0]["expected_score"] == ""


def test_smoothing_covers_every_head_within_each_track() -> None:
    """A mean over the frames of one track within +-1 frame, per column (numpy, a loop)."""
    rng = np.random.default_rng(1)
    frames = np.array([0, 1, 2, 4, 0, 1, 3])
    tracks = np.array([0, 0, 0, 0, 1, 1, 1])
    outputs = {"expr": rng.dirichlet(np.ones(3), 7), "va": rng.uniform(-1, 1, (7, 2)),
               "au": rng.uniform(0, 1, (7, 12))}  # fmt: skip
    table = face_table({k: v.copy() for k, v in outputs.items()}, ("A", "B", "C"), frames,
                       tracks)  # fmt: skip
    smooth_tracks(table, 3, "mean")
    for head, values in outputs.items():
        want = np.array([
            values[(tracks == tracks[i]) & (np.abs(frames - frames[i]) <= 1)].mean(axis=0)
            for i in range(7)
        ])  # fmt: skip
        np.testing.assert_allclose(table.outputs[head], want, rtol=1e-12, err_msg=head)


def test_summary_says_what_each_head_found() -> None:
    va = np.array([[0.5, -0.25], [0.1, 0.05], [-0.3, 0.2]])
    au = np.full((3, 12), 0.1)
    au[:, 6] = [0.9, 0.8, 0.1]  # AU12 in 2 of 3 faces
    au[:, 10] = 0.7  # AU25 in every face
    statuses = [SourceStatus("clip.mp4", frames=3, faces=3), SourceStatus("none.png", "no_face")]
    lines = summary_table(face_table({"va": va}), statuses, None)
    assert lines[0] == "| source | status | frames | faces | tracks | mean valence | mean arousal |"
    mean = va.mean(axis=0)
    assert lines[2] == f"| clip.mp4 | ok | 3 | 3 | 1 | {mean[0]:.3f} | {mean[1]:.3f} |"
    assert lines[3] == "| none.png | no_face | 0 | 0 | 0 | - | - |"
    lines = summary_table(face_table({"au": au}), statuses, None)
    assert lines[0].endswith("| tracks | most active AUs |")
    assert lines[2].endswith("| AU25 100%, AU12 67% |")


def test_face_labels_name_each_heads_prediction() -> None:
    au = np.full((2, 12), 0.1)
    au[0, [3, 6]] = 0.9
    table = face_table({"expr": np.array([[0.17, 0.83], [0.6, 0.4]]),
                        "va": np.array([[0.42, -0.1], [0.0, 1.0]]), "au": au},
                       classes=("Neutral", "Happiness"), tracks=[3, 3])  # fmt: skip
    assert face_labels(table, tracks=True) == [
        ["#3 Happiness 0.83", "V +0.42 A -0.10", "AU6 AU12"],
        ["#3 Neutral 0.60", "V +0.00 A +1.00", "no AU"],
    ]
    assert face_labels(face_table({"va": table.outputs["va"]}), tracks=False)[0] == [
        "V +0.42 A -0.10"]  # fmt: skip


def write_evaluation(path: Path, **extra) -> Path:
    """An evaluation's metrics.json with the ``va`` scores a task evaluation writes."""
    entries = {"8": {"va_score": 0.1}, "16": {"va_score": 0.3}, "native": {"va_score": 0.4}}
    data = {"task": "va", "native_size": [24, 24], "resolutions": [8, 16],
            "val_select": entries, "val_rest": entries, "val_full": entries, **extra}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_task_score_is_read_per_resolution(tmp_path, caplog) -> None:
    run = tmp_path / "run"
    write_evaluation(run / "eval" / "metrics.json")
    expected = load_expected_score(None, run, task="va")
    assert (expected.resolutions, expected.scores, expected.task) == ((8, 16, 24), (0.1, 0.3, 0.4),
                                                                      "va")  # fmt: skip
    assert ExpectedScore.from_json(expected.to_json()) == expected
    with caplog.at_level(logging.WARNING):
        assert load_expected_score(None, run, task="au") is None  # no au_score: empty column
    assert "no val_rest au_score at any resolution" in caplog.text
    assert load_expected_score(None, tmp_path / "elsewhere", task="va") is None
    (tmp_path / "train.json").write_text(json.dumps({"checkpoint": "x", "metrics": {}}))
    with pytest.raises(ResultsError, match=r"predict.metrics: .*train.json is not an evaluation"):
        load_expected_score(tmp_path / "train.json", None, task="va")


def test_au_thresholds_come_from_the_evaluation_or_are_one_half(tmp_path) -> None:
    by_name = {au: (4 + i) / 32 for i, au in enumerate(AU_NAMES)}
    run = tmp_path / "run"
    file = write_evaluation(run / "eval" / "metrics.json", au_thresholds=by_name)
    thresholds = load_au_thresholds(None, run)
    assert thresholds.values == tuple(by_name.values()) and thresholds.origin == str(file)
    assert "chosen on val_select" in thresholds.describe()
    assert AuThresholds.from_json(thresholds.to_json()) == thresholds
    listed = write_evaluation(tmp_path / "list.json", au_thresholds=list(by_name.values()))
    assert load_au_thresholds(listed, None).values == thresholds.values
    default = load_au_thresholds(None, tmp_path / "no_run")
    assert default.values == (0.5,) * 12 and "0.5 for every AU" in default.describe()
    assert load_au_thresholds(write_evaluation(tmp_path / "none.json"), None) == default
    bad = write_evaluation(tmp_path / "bad.json", au_thresholds={**by_name, "AU12": 1.5})
    with pytest.raises(ResultsError, match=r"bad\.json: au_thresholds: AU12=1\.5 is not in"):
        load_au_thresholds(bad, None)
    short = write_evaluation(tmp_path / "short.json", au_thresholds=[0.5] * 11)
    with pytest.raises(ResultsError, match=r"short\.json: au_thresholds must be"):
        load_au_thresholds(short, None)
