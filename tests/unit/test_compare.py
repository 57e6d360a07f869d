from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fer_multires.compare import main
from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.results import SplitMetrics
from fer_multires.uncertainty import (
    BootstrapSettings,
    VideoBootstrap,
    draw_videos,
    per_video_stats,
)


def entry(score: float) -> dict:
    return SplitMetrics(score, score, {c: score for c in EXPRESSIONS_7}, score, 10).to_json()


def fake_eval(
    path: Path, scores: dict[str, float], degradations: dict[str, dict[str, float]] | None = None
) -> Path:
    path.mkdir(parents=True)
    metrics = {"val_rest": {k: entry(v) for k, v in scores.items()}}
    if degradations:
        metrics["degradations"] = {
            kernel: {"val_rest": {k: entry(v) for k, v in by_res.items()}}
            for kernel, by_res in {"bilinear": scores, **degradations}.items()
        }
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_multires_helping_at_low_resolution_is_reported(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.5, "16": 0.6, "64": 0.8, "native": 0.85})
    b = fake_eval(tmp_path / "b", {"8": 0.2, "16": 0.3, "64": 0.8, "native": 0.86})
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| 8 px | 0.500 | 0.200 | +0.300 |" in out
    assert (
        "multires holds up better at low resolution than baseline: mean val_rest score +0.300"
        in out
    )
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0
    assert "+0.300" in (tmp_path / "out" / "comparison.md").read_text()


def test_no_gain_is_said_plainly(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    b = fake_eval(tmp_path / "b", {"8": 0.25, "native": 0.8})
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 0
    assert "does NOT help at low resolution" in capsys.readouterr().out


def test_missing_evaluation_is_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2})
    assert main([str(a), str(tmp_path / "nothing")]) == 1
    assert "no metrics.json" in capsys.readouterr().err


@pytest.mark.parametrize("names", ["one", "a,b,c"])
def test_names_must_be_two(tmp_path: Path, names: str) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path), "--names", names])


def test_each_degradation_both_evaluated_gets_its_verdict(tmp_path: Path, capsys) -> None:
    a = fake_eval(
        tmp_path / "a",
        {"8": 0.5, "native": 0.8},
        {"jpeg": {"8": 0.3, "native": 0.8}, "blur": {"8": 0.6, "native": 0.8}},
    )
    b = fake_eval(tmp_path / "b", {"8": 0.2, "native": 0.8},
                  {"jpeg": {"8": 0.4, "native": 0.8}})  # fmt: skip
    out = tmp_path / "out"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "jpeg: multires does NOT help at low resolution on this data: mean val_rest score -0.100"
        in printed
    )
    assert "blur" not in printed  # only b lacks it: nothing to compare
    report = (out / "comparison.md").read_text()
    assert (
        "## Degradation: jpeg (not the training's)" in report
        and "| 8 px | 0.300 | 0.400 | -0.100 |" in report
    )
    assert (out / "comparison_jpeg.png").stat().st_size > 0 and not (
        out / "comparison_blur.png"
    ).exists()


def test_an_evaluation_compared_with_itself_is_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    assert main([str(a), str(a / "metrics.json"), "--out", str(tmp_path)]) == 1
    assert "is compared with itself: give two models' evaluations" in capsys.readouterr().err
    assert not (tmp_path / "comparison.md").exists()


def test_evaluations_of_different_data_are_refused(tmp_path: Path, capsys) -> None:
    """An Aff-Wild2 evaluation against a FERPlus one used to get a verdict."""
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    b = fake_eval(tmp_path / "b", {"8": 0.3, "native": 0.7})
    data = json.loads((b / "metrics.json").read_text())
    data["val_rest"]["8"]["n"] = 12  # other videos
    (b / "metrics.json").write_text(json.dumps(data))
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "evaluate different data (val_rest samples at 8: 10 against 12)" in err
    for key, value in (("dataset", "ferplus"), ("classes", ["Neutral", "Happiness"])):
        data = json.loads((a / "metrics.json").read_text())
        other = json.loads((a / "metrics.json").read_text())
        data[key], other[key] = "affwild2" if key == "dataset" else list(EXPRESSIONS_7), value
        (a / "metrics.json").write_text(json.dumps(data))
        (b / "metrics.json").write_text(json.dumps(other))
        assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
        assert f"evaluate different data ({key}:" in capsys.readouterr().err
    assert not (tmp_path / "comparison.md").exists()


def test_evaluations_with_no_resolution_in_common_are_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "16": 0.3})
    b = fake_eval(tmp_path / "b", {"32": 0.5})
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
    assert "share no evaluated resolution: nothing to compare" in capsys.readouterr().err


def task_eval(path: Path, task: str, scores: dict[str, float]) -> Path:
    """A fake evaluation of a valence-arousal or AU model: its entries hold that head only."""

    def task_entry(score: float) -> dict:
        if task == "va":
            return SplitMetrics(ccc_valence=score, ccc_arousal=score, va_score=score,
                                n=10).to_json()  # fmt: skip
        return SplitMetrics(f1_per_au={"AU1": score}, au_score=score, n=10).to_json()

    path.mkdir(parents=True)
    metrics = {
        "task": task,
        "classes": [],
        "val_rest": {k: task_entry(v) for k, v in scores.items()},
    }
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_evaluations_of_a_task_compare_its_score(tmp_path: Path, capsys) -> None:
    a = task_eval(tmp_path / "a", "va", {"8": 0.4, "16": 0.5, "native": 0.6})
    b = task_eval(tmp_path / "b", "va", {"8": 0.1, "16": 0.2, "native": 0.6})
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| 8 px | 0.400 | 0.100 | +0.300 |" in out and "mean val_rest score +0.300" in out
    report = (tmp_path / "out" / "comparison.md").read_text()
    assert report.startswith("# multires vs baseline: val_rest va_score (mean CCC) by input")
    with (tmp_path / "out" / "comparison.csv").open(newline="") as f:
        rows = {r["resolution"]: r for r in csv.DictReader(f)}
    assert rows["16"]["score_a"] == "0.500000" and rows["16"]["score_b"] == "0.200000"


def test_evaluations_of_different_tasks_are_refused(tmp_path: Path, capsys) -> None:
    a = task_eval(tmp_path / "a", "va", {"8": 0.4, "native": 0.6})
    b = task_eval(tmp_path / "b", "au", {"8": 0.4, "native": 0.6})
    c = fake_eval(tmp_path / "c", {"8": 0.4, "native": 0.6})  # no task key: expressions
    for other, task in ((b, "au"), (c, "expr")):
        assert main([str(a), str(other), "--out", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert f"{a / 'metrics.json'} evaluates a task=va model (va_score (mean CCC))" in err
        assert f"{other / 'metrics.json'} a task={task} model" in err
    assert not (tmp_path / "comparison.md").exists()


# --------------------------------------------------------------------------- paired intervals

KEYS = ("native", "8", "16")


def frames(videos: int = 12, per_video: int = 15, seed: int = 0):
    """Frames of videos (one expression each); every third video in val_select."""
    rng = np.random.default_rng(seed)
    video = np.repeat(np.arange(videos), per_video)
    label = rng.integers(0, 7, videos)[video]
    split = np.where(video % 3 == 0, "val_select", "val_rest")
    names = np.array([f"vid{v:02d}" for v in video])
    return names, split, label, rng


def predictions(label: np.ndarray, rng: np.random.Generator, right: list[float]) -> np.ndarray:
    """Predicted classes at each point of KEYS, right with the given probabilities."""
    columns = []
    for p in right:
        wrong = (label + rng.integers(1, 7, label.size)) % 7
        columns.append(np.where(rng.random(label.size) < p, label, wrong))
    return np.stack(columns, axis=1)


def paired_eval(path: Path, names, split, label, predicted: np.ndarray) -> Path:
    """An evaluate output (metrics.json with intervals, per_video.npz) of these frames."""
    points = ["native", "bilinear/8", "bilinear/16"]
    stats = per_video_stats(names, split, label, predicted, points, EXPRESSIONS_7, "video")
    boot = VideoBootstrap.create(stats, BootstrapSettings())
    metrics: dict = {"dataset": "affwild2", "classes": list(EXPRESSIONS_7)}
    for s in ("val_select", "val_rest", "val_full"):
        rows = stats.split_groups(s)
        intervals = boot.intervals(s, stats.confusions)
        metrics[s] = {
            key: SplitMetrics.from_confusion(stats.confusions[rows, p].sum(0), EXPRESSIONS_7)
            .with_interval(intervals[p], 95)
            .to_json()
            for p, key in enumerate(KEYS)
        }
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    stats.save(path)
    return path


def reference_score(label: np.ndarray, predicted: np.ndarray) -> float:
    f1 = []
    for c in range(7):
        tp = np.sum((label == c) & (predicted == c))
        denominator = np.sum(label == c) + np.sum(predicted == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return 0.33 * np.mean(label == predicted) + 0.67 * np.mean(f1)


def test_paired_interval_equals_a_frame_level_recomputation(tmp_path: Path, capsys) -> None:
    names, split, label, rng = frames()
    pred_a = predictions(label, rng, [0.8, 0.6, 0.7])
    pred_b = predictions(label, rng, [0.8, 0.3, 0.5])
    a = paired_eval(tmp_path / "a", names, split, label, pred_a)
    b = paired_eval(tmp_path / "b", names, split, label, pred_b)
    out = tmp_path / "out"
    assert main([str(a), str(b), "--out", str(out), "--samples", "500", "--seed", "3"]) == 0
    with (out / "comparison.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["split", "kernel", "resolution", "score_a", "score_b", "difference",
                             "ci_low", "ci_high"]  # fmt: skip
    assert len(rows) == 3 * 3  # splits x resolutions
    # the straightforward way: resample val_rest's videos, score both models on the same frames
    videos = sorted(set(names[split == "val_rest"]))
    drawn = draw_videos(len(videos), 500, seed=3, stream=1)
    for p, key in enumerate(KEYS):
        differences = []
        for sample in drawn:
            rows_drawn = np.concatenate([np.flatnonzero(names == videos[g]) for g in sample])
            differences.append(
                reference_score(label[rows_drawn], pred_a[rows_drawn, p])
                - reference_score(label[rows_drawn], pred_b[rows_drawn, p])
            )
        (row,) = [r for r in rows if r["split"] == "val_rest" and r["resolution"] == key]
        expected = np.quantile(differences, [0.025, 0.975])
        np.testing.assert_allclose(
            [float(row["ci_low"]), float(row["ci_high"])], expected, atol=1e-6
        )  # 6 decimals in the CSV
    printed = capsys.readouterr().out
    assert (
        "multires holds up better at low resolution than baseline, beyond the interval" in printed
    )
    assert "paired bootstrap over videos (500 resamples, seed 3)" in printed
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_no_difference_beyond_the_interval_is_said(tmp_path: Path, capsys) -> None:
    names, split, label, rng = frames(seed=1)
    a = paired_eval(tmp_path / "a", names, split, label, predictions(label, rng, [0.7, 0.5, 0.6]))
    b = paired_eval(tmp_path / "b", names, split, label, predictions(label, rng, [0.7, 0.5, 0.6]))
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "the data cannot tell multires and baseline apart at low resolution" in printed
    c = paired_eval(tmp_path / "c", names, split, label, predictions(label, rng, [0.7, 0.1, 0.1]))
    assert main([str(c), str(a), "--out", str(tmp_path / "out")]) == 0
    assert "multires does NOT help at low resolution: baseline is better beyond the interval" in (
        capsys.readouterr().out
    )


def test_evaluations_of_other_videos_are_refused_naming_both_files(tmp_path: Path, capsys):
    names, split, label, rng = frames()
    predicted = predictions(label, rng, [0.7, 0.5, 0.6])
    a = paired_eval(tmp_path / "a", names, split, label, predicted)
    renamed = np.where(names == "vid01", "other", names)
    b = paired_eval(tmp_path / "b", renamed, split, label, predicted)
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{a / 'metrics.json'} and {b / 'metrics.json'} evaluate different data (videos:" in err
    assert "vid01 not in the other" in err
    # the same videos, one frame moved from vid01 to vid02: other frame counts
    moved = names.copy()
    moved[np.flatnonzero(names == "vid01")[0]] = "vid02"
    c = paired_eval(tmp_path / "c", moved, split, label, predicted)
    assert main([str(a), str(c), "--out", str(tmp_path)]) == 1
    assert "evaluate different data (frames of video vid01: 15 against 14)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "comparison.md").exists()


def test_an_evaluation_without_per_video_file_is_compared_without_intervals(tmp_path, capsys):
    names, split, label, rng = frames()
    a = paired_eval(tmp_path / "a", names, split, label, predictions(label, rng, [0.8, 0.6, 0.7]))
    b = paired_eval(tmp_path / "b", names, split, label, predictions(label, rng, [0.8, 0.3, 0.5]))
    (b / "per_video.npz").unlink()  # written before intervals existed
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert f"No intervals on the differences: {b / 'metrics.json'} has no per_video.npz" in printed
    assert "re-run python -m fer_multires.evaluate on it" in printed
    rows = (tmp_path / "out" / "comparison.csv").read_text().splitlines()
    assert all(r.endswith(",,") for r in rows[1:])


def test_bad_bootstrap_flags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path), "--samples", "10"])
