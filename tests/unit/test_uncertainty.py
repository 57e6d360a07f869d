"""The bootstrap over videos: against a plain frame-level recomputation, and its coverage."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from fer_multires.evaluation.config import check_bootstrap
from fer_multires.metrics import metrics_from_confusion
from fer_multires.results import SplitMetrics
from fer_multires.uncertainty import (
    SPLIT_STREAMS,
    BootstrapSettings,
    PerVideoStats,
    VideoBootstrap,
    draw_counts,
    draw_videos,
    group_confusions,
    paired_differences,
    per_video_stats,
    percentile_interval,
    resampled_metrics,
)

CLASSES = ["a", "b", "c", "d"]


def reference_score(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """The challenge score from frames, in plain numpy (all classes in the macro F1)."""
    f1 = []
    for c in range(num_classes):
        tp = np.sum((labels == c) & (predicted == c))
        denominator = np.sum(labels == c) + np.sum(predicted == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return 0.33 * np.mean(labels == predicted) + 0.67 * np.mean(f1)


def simulated_frames(rng: np.random.Generator, videos: int, frames: int, num_classes: int):
    """Videos of one expression each, predicted right with a per-video probability."""
    label_of_video = rng.integers(0, num_classes, videos)
    skill = rng.beta(4, 3, videos)
    video = np.repeat(np.arange(videos), frames)
    label = label_of_video[video]
    right = rng.random(video.size) < skill[video]
    wrong = (label + rng.integers(1, num_classes, video.size)) % num_classes
    return video, label, np.where(right, label, wrong)


def test_group_confusions_count_each_group_and_point() -> None:
    rng = np.random.default_rng(0)
    group = rng.integers(0, 5, 300)
    label = rng.integers(0, 4, 300)
    predicted = rng.integers(0, 4, (300, 3))
    counts = group_confusions(group, label, predicted, 5, 4)
    assert counts.shape == (5, 3, 4, 4)
    for g in range(5):
        for p in range(3):
            expected = np.zeros((4, 4), np.int64)
            np.add.at(expected, (label[group == g], predicted[group == g, p]), 1)
            np.testing.assert_array_equal(counts[g, p], expected)


def test_batched_metrics_equal_one_matrix_at_a_time() -> None:
    confusions = np.random.default_rng(1).integers(0, 9, (6, 2, 4, 4))
    confusions[0, 0] = 0  # no samples: zeros, not NaN
    batched = metrics_from_confusion(confusions)
    for i in range(6):
        for j in range(2):
            one = metrics_from_confusion(confusions[i, j])
            for key in ("acc", "f1", "score", "n"):
                assert float(batched[key][i, j]) == pytest.approx(float(one[key]), abs=1e-15)


def test_intervals_equal_a_frame_level_recomputation_on_the_same_draws() -> None:
    """A straightforward bootstrap of the frames, grouped by video, gives the same interval."""
    rng = np.random.default_rng(2)
    video, label, predicted = simulated_frames(rng, videos=12, frames=20, num_classes=4)
    names = np.array([f"v{i:02d}" for i in video])
    split = np.where(video % 3 == 0, "val_select", "val_rest")
    stats = per_video_stats(names, split, label, predicted[:, None], ["native"], CLASSES, "video")
    settings = BootstrapSettings(samples=300, seed=7, confidence=0.9)
    boot = VideoBootstrap.create(stats, settings)
    for split_name, stream in (("val_rest", 1), ("val_full", 2)):
        ours = boot.intervals(split_name, stats.confusions)[0]["challenge_score"]
        groups = stats.groups[stats.split_groups(split_name)]
        drawn = draw_videos(len(groups), 300, seed=7, stream=stream)
        scores = []
        for sample in drawn:
            rows = np.concatenate([np.flatnonzero(names == groups[g]) for g in sample])
            scores.append(reference_score(label[rows], predicted[rows], 4))
        expected = np.quantile(scores, [0.05, 0.95])
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_draws_are_seeded_and_counts_add_up_to_the_groups() -> None:
    counts = draw_counts(30, 50, seed=3, stream=1)
    assert counts.shape == (50, 30) and np.all(counts.sum(axis=1) == 30)
    np.testing.assert_array_equal(counts, draw_counts(30, 50, seed=3, stream=1))
    assert not np.array_equal(counts, draw_counts(30, 50, seed=4, stream=1))
    assert not np.array_equal(counts, draw_counts(30, 50, seed=3, stream=2))


def coverage(resample_frames: bool, repeats: int) -> float:
    """How often the nominal 95% interval covers the population's score."""
    num_classes, videos, frames = 4, 60, 40
    # the population's expected confusion: a uniform expression, right with E[skill] = 4/7
    skill = 4 / 7
    truth_matrix = np.full((num_classes, num_classes), (1 - skill) / (num_classes - 1))
    np.fill_diagonal(truth_matrix, skill)
    truth = float(metrics_from_confusion(truth_matrix)["score"])
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(repeats):
        video, label, predicted = simulated_frames(rng, videos, frames, num_classes)
        group = np.arange(video.size) if resample_frames else video
        per_group = group_confusions(group, label, predicted[:, None], group.max() + 1, 4)
        counts = draw_counts(len(per_group), 400, seed=int(rng.integers(1 << 30)), stream=0)
        scores = resampled_metrics(counts, per_group)["challenge_score"][:, 0]
        low, high = percentile_interval(scores, 0.95)
        covered += low <= truth <= high
    return covered / repeats


def test_video_bootstrap_covers_the_true_score_and_a_frame_bootstrap_does_not() -> None:
    assert coverage(resample_frames=False, repeats=200) >= 0.90
    # frames of a video share its expression and its difficulty: a frame-level interval is
    # far too narrow
    assert coverage(resample_frames=True, repeats=60) < 0.75


def test_per_video_file_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(4)
    video, label, predicted = simulated_frames(rng, videos=5, frames=7, num_classes=4)
    points = ["native", "bilinear/8", "jpeg/8"]
    predicted = np.stack([predicted, np.roll(predicted, 1), np.roll(predicted, 2)], axis=1)
    split = np.where(video < 2, "val_select", "val_rest")
    stats = per_video_stats(video.astype(str), split, label, predicted, points, CLASSES, "video")
    stats.save(tmp_path)
    loaded = PerVideoStats.load(tmp_path / "metrics.json")  # beside the metrics, or the folder
    np.testing.assert_array_equal(loaded.confusions, stats.confusions)
    assert loaded.points == points and loaded.classes == CLASSES and loaded.unit == "video"
    assert list(loaded.groups) == ["0", "1", "2", "3", "4"]
    assert list(loaded.group_split) == [0, 0, 1, 1, 1]
    assert loaded.point_index("jpeg", "8") == 2 and loaded.point_index("jpeg", "native") == 0


def test_a_group_in_both_splits_is_an_error() -> None:
    with pytest.raises(ValueError, match="videos in both val_select and val_rest: v"):
        per_video_stats(
            np.array(["v", "v"]), np.array(["val_select", "val_rest"]), np.zeros(2, int),
            np.zeros((2, 1), int), ["native"], CLASSES, "video",
        )  # fmt: skip


def test_split_metrics_keep_their_interval_in_json_and_old_entries_load() -> None:
    m = SplitMetrics(0.5, 0.4, dict.fromkeys(CLASSES, 0.4), 0.433, 10)
    old = m.to_json()
    assert "ci95" not in old and SplitMetrics.from_json(old) == m
    with_ci = m.with_interval({"challenge_score": (0.3, 0.6), "accuracy": (0.4, 0.7)}, 90)
    data = with_ci.to_json()
    assert data["ci90"] == {"challenge_score": [0.3, 0.6], "accuracy": [0.4, 0.7]}
    assert SplitMetrics.from_json(data) == with_ci


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"samples": 50}, "eval.bootstrap.samples=50 must be an integer >= 100"),
        ({"samples": True}, "eval.bootstrap.samples=True"),
        ({"seed": -1}, "eval.bootstrap.seed=-1"),
        ({"confidence": 0.955}, "eval.bootstrap.confidence=0.955 must be a whole percent"),
        ({"confidence": 1.0}, "eval.bootstrap.confidence=1.0"),
        ({"level": 0.9}, "eval.bootstrap: unknown key.*level"),
        ([1, 2], "eval.bootstrap=.* must be a mapping"),
    ],
)
def test_bad_bootstrap_settings_name_their_key(node, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_bootstrap(OmegaConf.create(node))


def test_bootstrap_settings_defaults_and_switch_off() -> None:
    assert check_bootstrap(None) == BootstrapSettings(2000, 0, 0.95)
    settings = check_bootstrap(OmegaConf.create({"samples": 0, "confidence": 0.9}))
    assert not settings.enabled and settings.percent == 90


# --------------------------------------------------------------------- valence-arousal and AUs


def task_frames(seed: int = 5, videos: int = 9, frames: int = 12, points: int = 2):
    """Video frames with every head: labels (some missing), VA (NaN where missing), AU labels."""
    rng = np.random.default_rng(seed)
    video, label, predicted = simulated_frames(rng, videos, frames, 4)
    label = np.where(rng.random(video.size) < 0.1, -1, label)
    va_target = rng.uniform(-1, 1, (video.size, 2)).astype(np.float32)
    va_target[rng.random(video.size) < 0.2] = np.nan
    va_predicted = (0.5 * np.nan_to_num(va_target)[:, None] + rng.normal(0, 0.3, (video.size,
                    points, 2))).astype(np.float32)  # fmt: skip
    au_target = rng.integers(0, 2, (video.size, 12)).astype(np.int8)
    au_target[rng.random((video.size, 12)) < 0.1] = -1
    au_positive = rng.random((video.size, points, 12)) < 0.5
    names = np.array([f"v{i:02d}" for i in video])
    split = np.where(video % 3 == 0, "val_select", "val_rest")
    predicted = np.stack([predicted, np.roll(predicted, 1)], axis=1)[:, :points]
    return names, split, label, predicted, va_target, va_predicted, au_target, au_positive


def mtl_stats(seed: int = 5) -> tuple[PerVideoStats, tuple]:
    names, split, label, predicted, va_t, va_p, au_t, au_p = data = task_frames(seed)
    stats = per_video_stats(
        names, split, label, predicted, ["native", "bilinear/8"], CLASSES, "video", task="mtl",
        va_predicted=va_p, va_target=va_t, au_positive=au_p, au_target=au_t,
        au_thresholds=np.full(12, 0.5),
    )  # fmt: skip
    return stats, data


def numpy_ccc(x: np.ndarray, y: np.ndarray) -> float:
    if not len(x):
        return 0.0
    cov = np.cov(x, y, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))


def test_per_video_va_sums_and_au_counts_are_each_videos_frames() -> None:
    import torch

    from fer_multires.task_metrics import va_sums

    stats, (names, _, label, _, va_t, va_p, au_t, au_p) = mtl_stats()
    assert stats.va_sums.shape == (9, 2, 2, 6) and stats.au_counts.shape == (9, 2, 3, 12)
    for g, name in enumerate(stats.groups):
        rows = names == name
        for p in range(2):
            expected = va_sums(torch.from_numpy(va_p[rows, p]), torch.from_numpy(va_t[rows]))
            np.testing.assert_allclose(stats.va_sums[g, p], expected.numpy(), rtol=1e-12)
            positive, target = au_p[rows, p], au_t[rows]
            tp = (positive & (target == 1)).sum(0)
            fp = (positive & (target == 0)).sum(0)
            fn = (~positive & (target == 1)).sum(0)
            np.testing.assert_array_equal(stats.au_counts[g, p], [tp, fp, fn])
        # frames without an expression are in no confusion matrix
        assert stats.confusions[g, 0].sum() == np.sum(label[rows] >= 0)
        assert stats.frames[g] == rows.sum()


def test_task_intervals_equal_a_frame_level_recomputation_on_the_same_draws() -> None:
    stats, (names, _, label, predicted, va_t, va_p, au_t, au_p) = mtl_stats(6)
    settings = BootstrapSettings(samples=200, seed=3, confidence=0.9)
    boot = VideoBootstrap.create(stats, settings)
    for split_name in ("val_rest", "val_full"):
        ours = boot.intervals(split_name, stats.stats)[1]  # the second point
        groups = stats.groups[stats.split_groups(split_name)]
        drawn = draw_videos(len(groups), 200, seed=3, stream=SPLIT_STREAMS[split_name])
        values: dict[str, list[float]] = {"va_score": [], "au_score": [], "mtl_score": []}
        for sample in drawn:
            rows = np.concatenate([np.flatnonzero(names == groups[g]) for g in sample])
            present = rows[~np.isnan(va_t[rows, 0])]
            x, y = va_p[present, 1].astype(float), va_t[present].astype(float)
            va = np.mean([numpy_ccc(x[:, d], y[:, d]) for d in range(2)])
            positive, target = au_p[rows, 1], au_t[rows]
            tp = (positive & (target == 1)).sum(0)
            fp = (positive & (target == 0)).sum(0)
            fn = (~positive & (target == 1)).sum(0)
            au = np.mean(np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1),
                                  0.0))  # fmt: skip
            kept = rows[label[rows] >= 0]
            f1 = metrics_from_confusion(
                group_confusions(np.zeros(len(kept), int), label[kept],
                                 predicted[kept][:, 1:], 1, 4)[0, 0]
            )["f1"]  # fmt: skip
            values["va_score"].append(va)
            values["au_score"].append(au)
            values["mtl_score"].append(va + float(f1) + au)
        for metric, scores in values.items():
            expected = np.quantile(scores, [0.05, 0.95])
            np.testing.assert_allclose(ours[metric], expected, rtol=0, atol=1e-9, err_msg=metric)


def test_per_video_file_of_a_task_round_trips_and_format_1_still_loads(tmp_path) -> None:
    stats, _ = mtl_stats()
    stats.save(tmp_path)
    loaded = PerVideoStats.load(tmp_path)
    assert loaded.task == "mtl" and loaded.points == stats.points
    for name in ("confusions", "va_sums", "au_counts", "au_thresholds", "frames"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(stats, name))
    va_only = PerVideoStats([], stats.groups, stats.group_split, "video", stats.points, None,
                            "va", stats.va_sums, frames=stats.frames)  # fmt: skip
    va_only.save(tmp_path / "va")
    loaded = PerVideoStats.load(tmp_path / "va")
    assert loaded.confusions is None and loaded.au_counts is None and loaded.task == "va"
    np.testing.assert_array_equal(loaded.va_sums, stats.va_sums)
    # an expression evaluation's file as format 1 wrote it (no task, no frames)
    counts = stats.confusions.reshape(len(stats.groups), 2, -1)
    np.savez(tmp_path / "per_video.npz", format_version=np.array(1),
             classes=np.array(CLASSES), groups=stats.groups, group_split=stats.group_split,
             unit=np.array("video"), points=np.array(stats.points), counts=counts)  # fmt: skip
    old = PerVideoStats.load(tmp_path)
    assert old.task == "expr" and old.va_sums is None
    np.testing.assert_array_equal(old.confusions, stats.confusions)
    np.testing.assert_array_equal(old.frames, stats.confusions[:, 0].sum(axis=(1, 2)))


def test_paired_differences_of_a_task_score() -> None:
    a, _ = mtl_stats(7)
    b, _ = mtl_stats(7)
    b.va_sums = b.va_sums.copy()
    b.va_sums[..., 5] *= 0.5  # B's predictions agree less with the annotations: lower CCC
    settings = BootstrapSettings(samples=100)
    pairs = {"native": (0, 0)}
    same = paired_differences(a, a, "val_full", pairs, settings, "mtl_score")["native"]
    assert same.shape == (100,) and np.all(same == 0)
    diff = paired_differences(a, b, "val_full", pairs, settings, "va_score")["native"]
    direct = resampled_metrics(a.draws("val_full", settings), a.stats)["va_score"][:, 0]
    other = resampled_metrics(a.draws("val_full", settings), b.stats)["va_score"][:, 0]
    np.testing.assert_array_equal(diff, direct - other)
