"""Temporal smoothing of class probabilities within videos."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fer_multires.smoothing import (
    check_smoothing,
    choose_window,
    smooth_probabilities,
    window_weights,
)


def random_frames(rng: np.random.Generator, videos: int = 4, frames: int = 40, keep: float = 0.7):
    """Rows of several videos with gaps in the frame numbers, in shuffled order."""
    video = np.repeat(np.arange(videos) * 7 + 3, frames)
    frame = np.tile(np.arange(1, frames + 1), videos) + np.repeat(
        rng.integers(0, 50, videos), frames
    )
    present = rng.random(len(video)) < keep
    video, frame = video[present], frame[present]
    probs = rng.random((len(video), 5))
    probs /= probs.sum(axis=1, keepdims=True)
    order = rng.permutation(len(video))
    return probs[order], video[order], frame[order]


def brute_force(probs, video, frame, window, kind):
    weights = window_weights(window, kind)
    half = len(weights) // 2
    out = np.zeros_like(probs, dtype=np.float64)
    for i in range(len(probs)):
        total, norm = np.zeros(probs.shape[1]), 0.0
        for j in range(len(probs)):
            offset = frame[j] - frame[i]
            if video[j] == video[i] and abs(offset) <= half:
                total += weights[offset + half] * probs[j]
                norm += weights[offset + half]
        out[i] = total / norm
    return out


@pytest.mark.parametrize("kind", ["mean", "gaussian"])
@pytest.mark.parametrize("window", [3, 5, 11])
def test_matches_brute_force_with_gaps(kind, window) -> None:
    probs, video, frame = random_frames(np.random.default_rng(window))
    fast = smooth_probabilities(probs, video, frame, window, kind)
    assert fast == pytest.approx(brute_force(probs, video, frame, window, kind), abs=1e-12)
    assert fast.sum(axis=1) == pytest.approx(np.ones(len(probs)))


@pytest.mark.parametrize("kind", ["none", "mean", "gaussian"])
def test_window_one_is_identity(kind) -> None:
    probs, video, frame = random_frames(np.random.default_rng(0))
    assert np.array_equal(smooth_probabilities(probs, video, frame, 1, kind), probs)
    assert np.array_equal(smooth_probabilities(probs, video, frame, 31, "none"), probs)


def test_frames_of_other_videos_never_mix() -> None:
    # Two videos with the same frame numbers and opposite, constant predictions.
    frame = np.tile(np.arange(1, 21), 2)
    video = np.repeat([0, 1], 20)
    probs = np.where(video[:, None] == 0, [1.0, 0.0], [0.0, 1.0])
    for kind in ("mean", "gaussian"):
        assert np.array_equal(smooth_probabilities(probs, video, frame, 61, kind), probs)
    # and consecutive videos, last frame of one next to the first of the other
    frame = np.arange(1, 41)
    assert np.array_equal(smooth_probabilities(probs, video, frame, 61, "mean"), probs)


def test_missing_frame_is_not_replaced_by_its_neighbour() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    video = np.zeros(3, dtype=int)
    frame = np.array([10, 12, 13])  # frame 11 is missing
    smoothed = smooth_probabilities(probs, video, frame, 3, "mean")
    # frame 10 sees itself and (missing) 11: only itself
    assert smoothed[0] == pytest.approx([1.0, 0.0])
    # frame 12 sees 11 (missing), 12, 13
    assert smoothed[1] == pytest.approx([0.0, 1.0])


def test_gaussian_weights_are_symmetric_and_peak_at_the_centre() -> None:
    for window in (3, 5, 15, 61):
        weights = window_weights(window, "gaussian")
        assert len(weights) == window
        assert weights == pytest.approx(weights[::-1])
        assert weights.argmax() == window // 2
        assert np.all(np.diff(weights[: window // 2 + 1]) > 0)
    assert np.array_equal(window_weights(5, "mean"), np.ones(5))


def test_bad_settings_are_errors_naming_the_key() -> None:
    with pytest.raises(ValueError, match="eval.smoothing='median'"):
        check_smoothing("median", [5])
    for window in (0, 4, -3):
        with pytest.raises(ValueError, match=f"eval.smoothing_windows: window {window} "):
            check_smoothing("mean", [window])
    with pytest.raises(ValueError, match="occurs more than once"):
        smooth_probabilities(np.ones((2, 3)) / 3, np.zeros(2, int), np.ones(2, int), 3, "mean")


def test_choose_window_takes_the_best_and_the_smallest_on_ties() -> None:
    assert choose_window({1: 0.40, 5: 0.45, 15: 0.44}) == 5
    assert choose_window({1: 0.45, 5: 0.45}) == 1
    with pytest.raises(ValueError):
        choose_window({})


def test_320k_frames_take_seconds() -> None:
    rng = np.random.default_rng(0)
    n, videos = 320_000, 80
    video = np.repeat(np.arange(videos), n // videos)
    frame = np.tile(np.arange(1, n // videos + 1), videos)
    keep = rng.random(n) < 0.9
    probs = rng.random((int(keep.sum()), 8)).astype(np.float32)
    start = time.perf_counter()
    for window in (5, 15, 31, 61):
        smooth_probabilities(probs, video[keep], frame[keep], window, "gaussian")
    assert time.perf_counter() - start < 30  # ~2 s on a busy 2-core machine
