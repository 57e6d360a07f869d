"""Temporal smoothing of per-frame class probabilities within each video.

Aff-Wild2 frames come from videos, and expressions last many frames, so averaging a frame's class
probabilities with its neighbours' usually helps. The window is measured in frame numbers, not in
array positions: frame ``f`` is smoothed over the frames ``f'`` of the same video with
``|f' - f| <= window // 2`` that are present. A missing frame (no face detected, or an unreadable
image) is not replaced by its neighbour; the weights are normalised over the frames actually
present. Frames of different videos never mix.

Kinds:

* ``none``: no smoothing;
* ``mean``: a centred moving average (equal weights);
* ``gaussian``: a centred Gaussian with ``sigma = window / 6`` (the window spans +-3 sigma),
  truncated to the window.

Everything here is plain numpy and vectorised: each video is laid onto a dense frame axis with a
presence mask (videos separated by ``window // 2`` empty frames, so windows never reach into the
next video), and the weighted sums are a loop over the ``window`` offsets of whole-array
operations. 320k frames x 8 classes take well under a second per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SMOOTHING_KINDS: tuple[str, ...] = ("none", "mean", "gaussian")
#: ``sigma = window / GAUSSIAN_WINDOW_SIGMAS`` for ``gaussian``.
GAUSSIAN_WINDOW_SIGMAS = 6.0


def check_smoothing(kind: str, windows: Sequence[int]) -> None:
    """Validate ``eval.smoothing`` and ``eval.smoothing_windows``.

    Raises:
        ValueError: naming the key, for an unknown kind or a window that is not an odd integer
            >= 1 (a centred window covers ``window // 2`` frames on each side).
    """
    if kind not in SMOOTHING_KINDS:
        raise ValueError(f"eval.smoothing={kind!r} is not one of {', '.join(SMOOTHING_KINDS)}")
    for window in windows:
        if isinstance(window, bool) or not isinstance(window, int | np.integer):
            raise ValueError(f"eval.smoothing_windows: {window!r} is not an integer")
        if window < 1 or window % 2 == 0:
            raise ValueError(
                f"eval.smoothing_windows: window {window} must be an odd integer >= 1 "
                "(a centred window covers window // 2 frames on each side)"
            )


def window_weights(window: int, kind: str) -> np.ndarray:
    """Return the ``2 * (window // 2) + 1`` weights of a centred window, offsets -h..h.

    Args:
        window: window length in frames (odd, >= 1).
        kind: ``none`` (a single 1), ``mean`` or ``gaussian``.
    """
    half = 0 if kind == "none" else window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    if kind == "gaussian" and half > 0:
        sigma = window / GAUSSIAN_WINDOW_SIGMAS
        return np.exp(-0.5 * (offsets / sigma) ** 2)
    return np.ones_like(offsets)


def dense_positions(video: np.ndarray, frame: np.ndarray, gap: int) -> tuple[np.ndarray, int]:
    """Place each frame on one dense axis: videos one after another, ``gap`` empty slots apart.

    Args:
        video: per frame, an id of its video (any integers).
        frame: per frame, its frame number.
        gap: empty slots between two videos (and before the first and after the last).

    Returns:
        Each frame's position, and the length of the axis.

    Raises:
        ValueError: if a (video, frame) pair occurs twice.
    """
    video = np.asarray(video, dtype=np.int64)
    frame = np.asarray(frame, dtype=np.int64)
    videos, vid = np.unique(video, return_inverse=True)
    first = np.full(len(videos), np.iinfo(np.int64).max)
    last = np.full(len(videos), np.iinfo(np.int64).min)
    np.minimum.at(first, vid, frame)
    np.maximum.at(last, vid, frame)
    span = last - first + 1
    starts = gap + np.concatenate([[0], np.cumsum(span + gap)[:-1]])
    positions = starts[vid] + frame - first[vid]
    length = int(starts[-1] + span[-1] + gap) if len(videos) else gap
    if np.unique(positions).size != positions.size:
        raise ValueError("smooth_probabilities: a (video, frame) pair occurs more than once")
    return positions, length


def smooth_probabilities(
    probs: np.ndarray,
    video: np.ndarray,
    frame: np.ndarray,
    window: int,
    kind: str = "mean",
) -> np.ndarray:
    """Smooth class probabilities over a centred window of frame numbers within each video.

    Frame ``f`` of video ``v`` becomes ``sum_f' w(f' - f) p(v, f') / sum_f' w(f' - f)`` over the
    frames ``f'`` of ``v`` present in the input with ``|f' - f| <= window // 2``.

    Args:
        probs: ``(N, C)`` class probabilities, rows in any order.
        video: ``(N,)`` integer id of each row's video.
        frame: ``(N,)`` frame number of each row.
        window: window length in frames (odd, >= 1); 1 returns the input.
        kind: ``none``, ``mean`` or ``gaussian``.

    Returns:
        ``(N, C)`` float64 smoothed probabilities, rows in the input order.

    Raises:
        ValueError: for an unknown kind, a bad window, mismatched lengths or a repeated
            (video, frame) pair.
    """
    check_smoothing(kind, [window])
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not len(probs) == len(video) == len(frame):
        raise ValueError(
            f"smooth_probabilities: probs {probs.shape}, video ({len(video)},) and frame "
            f"({len(frame)},) do not match"
        )
    weights = window_weights(window, kind)
    half = len(weights) // 2
    if half == 0 or len(probs) == 0:
        return probs.copy()
    positions, length = dense_positions(video, frame, gap=half)
    dense = np.zeros((length, probs.shape[1]))
    present = np.zeros(length)
    dense[positions] = probs
    present[positions] = 1.0
    # Slot s of the accumulators is dense slot s + half: the slots a window can centre on.
    inner = length - 2 * half
    total = np.zeros((inner, probs.shape[1]))
    norm = np.zeros(inner)
    for offset, weight in enumerate(weights):
        total += weight * dense[offset : offset + inner]
        norm += weight * present[offset : offset + inner]
    rows = positions - half
    return total[rows] / norm[rows, None]


def choose_window(scores: Mapping[int, float]) -> int:
    """Return the window with the highest score; on a tie, the smallest window.

    Args:
        scores: ``{window: score}`` on the selection split (``val_select``); include window 1
            (no smoothing) so that smoothing is only chosen when it helps there.

    Raises:
        ValueError: if ``scores`` is empty.
    """
    if not scores:
        raise ValueError("choose_window: no windows to choose from")
    return min(scores, key=lambda window: (-scores[window], window))
