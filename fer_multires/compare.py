"""Side-by-side resolution robustness of two evaluated models, with paired intervals.

``python -m fer_multires.compare EVAL_A EVAL_B [--names multires,baseline] [--out DIR]`` reads
two ``fer_multires.evaluate`` outputs (``metrics.json`` and ``per_video.npz``) and prints, for
``val_rest`` (the honest estimate), the task's score of each at every resolution (the challenge
score, ``va_score``, ``au_score`` or ``mtl_score``: ``results.SCORE_KEYS``), the difference
A - B and its interval from a paired bootstrap: the same resampled videos for both models, their
per-video confusion matrices, valence-arousal sums or AU counts
(:func:`~fer_multires.uncertainty.paired_differences`; each model's AU F1s at its own thresholds,
chosen on its ``val_select``). It writes ``comparison.csv`` (every
split, kernel and resolution), ``comparison.md`` and ``comparison.png`` into ``--out``, and says
whether A beats B at low resolution (<= 32 px, the mean difference) beyond the interval, B beats
A, or the data cannot tell. Where both evaluations hold other degradations
(``eval.degradations``), each gets its own table, verdict and ``comparison_<kernel>.png``.

Evaluations of models of different tasks, or of different data (dataset, classes, videos or
images), are refused, naming both files. An evaluation written before ``per_video.npz`` existed
is still compared, without intervals: the output says so and that re-running ``evaluate`` gives
them.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.evaluation.config import check_bootstrap
from fer_multires.plots import plot_comparison
from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    REPORT_SPLIT,
    EvalResults,
    ResultsError,
    load_eval_results,
    task_score,
)
from fer_multires.runs import PER_VIDEO_FILE, metrics_file
from fer_multires.uncertainty import (
    BootstrapSettings,
    PerVideoStats,
    paired_differences,
    percentile_interval,
)
from fer_multires.utils.io import write_text_atomic
from fer_multires.utils.tables import markdown_table, with_interval

LOW_RESOLUTION = 32
#: The columns of ``comparison.csv``.
CSV_COLUMNS: tuple[str, ...] = (
    "split", "kernel", "resolution", "score_a", "score_b", "difference", "ci_low", "ci_high",
)  # fmt: skip


@dataclass
class Evaluation:
    """One evaluate output: its results, and its per-video statistics if it has them."""

    path: Path
    results: EvalResults
    per_video: PerVideoStats | None

    @property
    def file(self) -> Path:
        """The ``metrics.json``."""
        return metrics_file(self.path)


def load_evaluation(eval_dir: Path) -> Evaluation:
    """Read an evaluate output: ``metrics.json`` and, if present, ``per_video.npz``.

    Raises:
        ResultsError: if ``eval_dir`` holds no evaluation's metrics.json, or a bad per_video.npz.
    """
    results = load_eval_results(eval_dir)
    try:
        per_video = PerVideoStats.load(eval_dir)
    except FileNotFoundError:
        per_video = None
    except (ValueError, KeyError, OSError) as err:
        raise ResultsError(f"{metrics_file(eval_dir).parent / PER_VIDEO_FILE}: {err}") from err
    return Evaluation(Path(eval_dir), results, per_video)


def video_difference(a: PerVideoStats, b: PerVideoStats) -> tuple[str, Any, Any] | None:
    """Say how two evaluations' videos (images) differ, or None if they are the same.

    The same: the same names, each in the same split, with the same number of frames.
    """
    if list(a.classes) != list(b.classes):
        return ("classes", a.classes, b.classes)
    if a.unit != b.unit:
        return ("what is resampled", f"{a.unit}s", f"{b.unit}s")
    only_a = sorted(set(a.groups) - set(b.groups))
    only_b = sorted(set(b.groups) - set(a.groups))
    if only_a or only_b:

        def described(groups: np.ndarray, only: list[str]) -> str:
            return f"{len(groups)} ({', '.join(only[:3]) or 'none'} not in the other)"

        return (f"{a.unit}s", described(a.groups, only_a), described(b.groups, only_b))
    for what, x, y in (("split", a.group_split, b.group_split), ("frames", a.frames, b.frames)):
        if not np.array_equal(x, y):
            first = int(np.flatnonzero(x != y)[0])
            return (f"{what} of {a.unit} {a.groups[first]}", x[first], y[first])
    return None


def check_comparable(a_dir: Path, b_dir: Path, split: str = REPORT_SPLIT) -> None:
    """Refuse to compare an evaluation with itself, models of different tasks, or different data.

    Different data: another dataset or class list, a different number of ``split`` samples at a
    resolution both evaluated, or (with ``per_video.npz``) other videos or images, splits or
    frame counts.

    Raises:
        ResultsError: naming both files and what differs.
    """
    a_file, b_file = metrics_file(a_dir), metrics_file(b_dir)
    if a_file.exists() and a_file.resolve() == b_file.resolve():
        raise ResultsError(f"{a_file} is compared with itself: give two models' evaluations")
    a, b = load_evaluation(a_dir), load_evaluation(b_dir)
    if a.results.task != b.results.task:
        raise ResultsError(
            f"{a_file} evaluates a task={a.results.task} model ({a.results.score_name}) and "
            f"{b_file} a task={b.results.task} model ({b.results.score_name}): their scores do "
            "not measure the same thing; compare evaluations of one task"
        )
    counts_a, counts_b = a.results.splits.get(split, {}), b.results.splits.get(split, {})
    candidates = [
        ("dataset", a.results.dataset, b.results.dataset),
        ("classes", a.results.classes, b.results.classes),
        *((f"{split} samples at {key}", counts_a[key].n, counts_b[key].n)
          for key in sorted(counts_a.keys() & counts_b.keys())),
    ]  # fmt: skip
    differences = [(what, x, y) for what, x, y in candidates if x and y and x != y]
    if a.per_video is not None and b.per_video is not None:
        differences += [d for d in [video_difference(a.per_video, b.per_video)] if d]
    if differences:
        what, x, y = differences[0]
        raise ResultsError(
            f"{a_file} and {b_file} evaluate different data ({what}: {x} against {y}): a "
            "comparison needs both models evaluated on the same videos or images"
        )


def resolution_keys(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Resolutions present in both, ascending, then ``native``."""
    shared = sorted((k for k in a.keys() & b.keys() if k != NATIVE), key=int)
    return [*shared, NATIVE] if NATIVE in a and NATIVE in b else shared


def low_keys(keys: list[str]) -> list[str]:
    """The keys of the low resolutions (<= :data:`LOW_RESOLUTION` px) among ``keys``."""
    return [k for k in keys if k != NATIVE and int(k) <= LOW_RESOLUTION]


@dataclass
class KernelComparison:
    """Two models on one split and degradation kernel.

    Attributes:
        kernel: the degradation kernel.
        split: the split.
        keys: the resolutions both evaluated, then ``native``.
        a: model A's score per resolution key.
        b: model B's.
        a_ci: A's own interval per key (from its ``metrics.json``), where it has one.
        b_ci: B's.
        differences: per key, the ``(B,)`` resampled differences A - B; None without
            per-video statistics.
        confidence: the intervals' level.
        score_name: the score compared, in words (the task's: ``results.SCORE_NAMES``).
    """

    kernel: str
    split: str
    keys: list[str]
    a: dict[str, float]
    b: dict[str, float]
    a_ci: dict[str, tuple[float, float]]
    b_ci: dict[str, tuple[float, float]]
    differences: dict[str, np.ndarray] | None
    confidence: float
    score_name: str = "challenge score"

    def difference(self, key: str) -> float:
        """A - B at one resolution."""
        return self.a[key] - self.b[key]

    def interval(self, key: str) -> tuple[float, float] | None:
        """The paired interval of A - B at one resolution, or None."""
        if self.differences is None:
            return None
        low, high = percentile_interval(self.differences[key], self.confidence)
        return float(low), float(high)

    def mean_interval(self, keys: list[str]) -> tuple[float, float] | None:
        """The paired interval of the mean difference over ``keys``, or None."""
        if self.differences is None:
            return None
        mean = np.mean([self.differences[k] for k in keys], axis=0)
        low, high = percentile_interval(mean, self.confidence)
        return float(low), float(high)


def kernel_comparison(
    a: Evaluation, b: Evaluation, split: str, kernel: str, settings: BootstrapSettings
) -> KernelComparison:
    """Compare two evaluations on one split and kernel, paired where both have per-video stats."""
    task, metric = a.results.task, a.results.score_key
    by_a, by_b = a.results.kernel_splits(kernel)[split], b.results.kernel_splits(kernel)[split]
    scores_a = {k: task_score(m, task) for k, m in by_a.items()}
    scores_b = {k: task_score(m, task) for k, m in by_b.items()}
    keys = resolution_keys(scores_a, scores_b)
    differences = None
    if a.per_video is not None and b.per_video is not None and len(a.per_video.split_groups(split)):
        pairs = {k: (a.per_video.point_index(kernel, k), b.per_video.point_index(kernel, k))
                 for k in keys}  # fmt: skip
        differences = paired_differences(a.per_video, b.per_video, split, pairs, settings, metric)
    return KernelComparison(kernel, split, keys, scores_a, scores_b,
                            a.results.intervals(split, kernel), b.results.intervals(split, kernel),
                            differences, settings.confidence, a.results.score_name)  # fmt: skip


def verdict(c: KernelComparison, names: tuple[str, str]) -> str:
    """Say whether A beats B at low resolution beyond the paired interval, or B beats A.

    Or that the data cannot tell (the interval of the mean difference at the resolutions
    <= 32 px includes 0). Without per-video statistics, the mean difference alone, said so.
    """
    low = low_keys(c.keys)
    if not low:
        return f"no resolution <= {LOW_RESOLUTION} px was evaluated: nothing to compare"
    gain = sum(c.difference(k) for k in low) / len(low)
    native = c.difference(NATIVE) if NATIVE in c.keys else float("nan")
    where = f"at {', '.join(low)} px"
    interval = c.mean_interval(low)
    if interval is None:
        tail = " (no interval: an evaluation has no per_video.npz; re-run evaluate to get one)"
        if gain > 0:
            return (
                f"{names[0]} holds up better at low resolution than {names[1]}: mean "
                f"{c.split} score {gain:+.3f} {where} (native: {native:+.3f}){tail}"
            )
        return (
            f"{names[0]} does NOT help at low resolution on this data: mean {c.split} score "
            f"{gain:+.3f} {where} against {names[1]} (native: {native:+.3f}){tail}"
        )
    percent = round(c.confidence * 100)
    stated = (
        f"mean {c.split} score difference {gain:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}] "
        f"{where} ({percent}% paired bootstrap interval; native: {native:+.3f})"
    )
    if interval[0] > 0:
        return f"{names[0]} holds up better at low resolution than {names[1]}, beyond the " + (
            f"interval: {stated}"
        )
    if interval[1] < 0:
        return f"{names[0]} does NOT help at low resolution: {names[1]} is better beyond the " + (
            f"interval: {stated}"
        )
    return f"the data cannot tell {names[0]} and {names[1]} apart at low resolution: {stated}"


def interval_cell(interval: tuple[float, float] | None) -> str:
    """Render a difference's interval, ``[+0.012, +0.070]`` (``-`` without one)."""
    return "-" if interval is None else f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def comparison_table(c: KernelComparison, names: tuple[str, str]) -> str:
    """Markdown table: resolution, score of A, score of B, A - B with its paired interval."""
    rows = [
        [key if key == NATIVE else f"{key} px", with_interval(c.a[key], c.a_ci.get(key)),
         with_interval(c.b[key], c.b_ci.get(key)), f"{c.difference(key):+.3f}",
         interval_cell(c.interval(key))]
        for key in c.keys
    ]  # fmt: skip
    header = ["resolution", *names, "difference", f"{round(c.confidence * 100)}% interval"]
    return "\n".join(markdown_table(header, rows))


def comparison_csv(comparisons: list[KernelComparison]) -> str:
    """Render ``comparison.csv``: one row per (split, kernel, resolution).

    The interval's bounds are empty without per-video statistics.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in comparisons:
        for key in c.keys:
            bounds = c.interval(key)
            writer.writerow([c.split, c.kernel, key, f"{c.a[key]:.6f}", f"{c.b[key]:.6f}",
                             f"{c.difference(key):.6f}",
                             *((f"{v:.6f}" for v in bounds) if bounds else ("", ""))])  # fmt: skip
    return buffer.getvalue()


def plot(c: KernelComparison, names: tuple[str, str], path: Path) -> None:
    """Draw one kernel's comparison: both curves with their bands, the difference with its."""
    title = f"{c.split} {c.score_name}" + ("" if c.kernel == "bilinear" else f" ({c.kernel})")
    plot_comparison(c.a, c.b, names, title, path, bands=(c.a_ci, c.b_ci),
                    difference={k: (c.difference(k), c.interval(k)) for k in c.keys})  # fmt: skip


def compare(
    a_dir: Path,
    b_dir: Path,
    names: tuple[str, str],
    out: Path,
    settings: BootstrapSettings | None = None,
) -> dict[str, Any]:
    """Compare two evaluate outputs; write comparison.csv/.md/.png into ``out``; return the texts.

    The training's degradation (bilinear) first, then every other kernel both evaluated.
    """
    settings = settings or BootstrapSettings()
    check_comparable(a_dir, b_dir)
    a, b = load_evaluation(a_dir), load_evaluation(b_dir)
    if REPORT_SPLIT not in a.results.splits or REPORT_SPLIT not in b.results.splits:
        lacking = a.file if REPORT_SPLIT not in a.results.splits else b.file
        raise ResultsError(f"{lacking}: no {REPORT_SPLIT!r} results")
    a_scores, b_scores = a.results.scores(), b.results.scores()
    if not resolution_keys(a_scores, b_scores):
        raise ResultsError(
            f"{a.file} ({', '.join(a_scores)}) and {b.file} ({', '.join(b_scores)}) "
            "share no evaluated resolution: nothing to compare"
        )
    kernels = [k for k in a.results.kernels() if k in b.results.kernels()]
    splits = [s for s in EVAL_SPLITS if s in a.results.splits and s in b.results.splits]
    every = [kernel_comparison(a, b, s, k, settings) for k in kernels for s in splits]
    shown = {c.kernel: c for c in every if c.split == REPORT_SPLIT}
    score = a.results.score_name
    header = f"# {names[0]} vs {names[1]}: {REPORT_SPLIT} {score} by input resolution\n\n"
    verdicts, sections = {}, []
    for kernel, c in shown.items():
        verdicts[kernel] = verdict(c, names)
        title = "" if kernel == "bilinear" else f"## Degradation: {kernel} (not the training's)\n\n"
        sections.append(f"{title}{comparison_table(c, names)}\n\n{verdicts[kernel]}")
        plot(c, names, out / ("comparison.png" if kernel == "bilinear"
                              else f"comparison_{kernel}.png"))  # fmt: skip
    missing = [e.file for e in (a, b) if e.per_video is None]
    note = (
        f"\n\nNo intervals on the differences: {', '.join(map(str, missing))} has no "
        f"{PER_VIDEO_FILE} (written before intervals existed); re-run python -m "
        "fer_multires.evaluate on it for paired intervals."
        if missing
        else f"\n\nIntervals: {round(settings.confidence * 100)}% percentile, paired bootstrap "
        f"over {a.per_video.unit}s ({settings.samples} resamples, seed {settings.seed}): both "
        "models scored on the same resampled videos."
    )
    sources = f"\n\n{names[0]}: {a_dir}\n{names[1]}: {b_dir}\n"
    write_text_atomic(out / "comparison.csv", comparison_csv(every))
    write_text_atomic(out / "comparison.md", header + "\n\n".join(sections) + note + sources)
    return {"table": comparison_table(shown["bilinear"], names), "verdict": verdicts["bilinear"],
            "verdicts": verdicts, "plot": str(out / "comparison.png"), "note": note.strip(),
            "csv": str(out / "comparison.csv")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fer_multires.compare``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_a", type=Path)
    parser.add_argument("eval_b", type=Path)
    parser.add_argument("--names", default="multires,baseline")
    parser.add_argument("--out", type=Path, default=Path("."))
    default = BootstrapSettings()
    parser.add_argument(
        "--samples",
        type=int,
        default=default.samples,
        help="bootstrap resamples of the videos (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=default.seed, help="bootstrap seed")
    parser.add_argument("--confidence", type=float, default=default.confidence,
                        help="interval level (default %(default)s)")  # fmt: skip
    args = parser.parse_args(argv)
    names = tuple(args.names.split(","))
    if len(names) != 2:
        parser.error("--names takes two comma-separated names")
    try:
        settings = check_bootstrap(
            {"samples": args.samples, "seed": args.seed, "confidence": args.confidence}
        )
    except ValueError as err:
        parser.error(str(err).replace("eval.bootstrap.", "--"))
    try:
        result = compare(args.eval_a, args.eval_b, names, args.out, settings)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    others = [
        f"{kernel}: {text}" for kernel, text in result["verdicts"].items() if kernel != "bilinear"
    ]
    print(result["table"], result["verdict"], *others, result["note"],
          f"plot: {result['plot']}\ntable: {result['csv']}", sep="\n\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
