"""An evaluation's output files: metrics.json, predictions.csv, the robustness table, report.md.

Every file is written through a temporary file and an atomic rename.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.evaluation.assembly import Predictions, RawResults
from fer_multires.models.pretrained import describe_initial_weights
from fer_multires.plots import plot_confusion_matrix, plot_resolution_robustness
from fer_multires.results import EVAL_SPLITS, NATIVE, EvalResults, SplitMetrics, json_interval
from fer_multires.runs import METRICS_FILE
from fer_multires.uncertainty import FEW_GROUPS
from fer_multires.utils.io import write_json_atomic, write_text_atomic
from fer_multires.utils.tables import markdown_table, with_interval

HONESTY_NOTE = (
    "val_select was used for model selection (and to choose the smoothing window), so val_rest "
    "is the honest estimate; val_full = val_select + val_rest is what the paper reports."
)


def predictions_csv(predictions: Predictions, classes: Sequence[str]) -> str:
    """Render ``predictions.csv``: split, video (or image), frame, label, predicted, ``p_<Class>``.

    One row per ``val_full`` sample; ``split`` is ``val_select`` or ``val_rest``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["split", predictions.unit, "frame", "label", "predicted"]
    writer.writerow([*header, *(f"p_{c}" for c in classes)])
    names = np.asarray(classes, dtype=object)
    probs = np.char.mod("%.6g", predictions.probs)
    rows = zip(
        predictions.split,
        predictions.video,
        predictions.frame.tolist(),
        names[predictions.label],
        names[predictions.predicted],
        probs.tolist(),
        strict=True,
    )
    writer.writerows([split, video, frame, label, pred, *p]
                     for split, video, frame, label, pred, p in rows)  # fmt: skip
    return buffer.getvalue()


#: The columns of ``resolution_robustness.csv`` (the interval's bounds empty without one).
ROBUSTNESS_COLUMNS: tuple[str, ...] = (
    "degradation", "split", "resolution", "accuracy", "f1_macro", "challenge_score", "n",
    "score_ci_low", "score_ci_high",
)  # fmt: skip


def score_cell(m: SplitMetrics, metric: str = "challenge_score") -> str:
    """Render one metric of a split with its interval: ``0.612 [0.571, 0.650]``."""
    return with_interval(getattr(m, metric), (m.ci or {}).get(metric))


def robustness_csv(results: EvalResults) -> str:
    """Render ``resolution_robustness.csv``: one row per (degradation, split, resolution)."""
    lines = [",".join(ROBUSTNESS_COLUMNS)]
    for kernel in results.kernels():
        by_split = results.kernel_splits(kernel)
        for split in EVAL_SPLITS:
            for key in results.resolution_keys():
                m = by_split[split][key]
                low, high = (m.ci or {}).get("challenge_score", ("", ""))
                bounds = ",".join(f"{b:.6f}" if b != "" else "" for b in (low, high))
                lines.append(
                    f"{kernel},{split},{key},{m.accuracy:.6f},{m.f1_macro:.6f},"
                    f"{m.challenge_score:.6f},{m.n},{bounds}"
                )
    return "\n".join(lines) + "\n"


def native_tables(results: EvalResults) -> list[str]:
    """Render the paper's Table 3 (per-class F1) and Table 4 for val_full and val_rest."""
    splits = ("val_full", "val_rest")
    native = {split: results.splits[split][NATIVE] for split in splits}
    classes = results.classes
    per_class = [[s, *(native[s].f1_per_class[c] for c in classes)] for s in splits]
    summary_rows = [
        [s, *(score_cell(native[s], m) for m in ("accuracy", "f1_macro", "challenge_score")),
         native[s].n]
        for s in splits
    ]  # fmt: skip
    return [
        "## Table 3: per-class F1 (native resolution)",
        "",
        *markdown_table(["split", *classes], per_class),
        "",
        "## Table 4: accuracy, macro F1 and challenge score (native resolution)",
        "",
        *markdown_table(["split", "accuracy", "macro F1", "challenge score", "n"], summary_rows),
        "",
    ]


def resolution_table(results: EvalResults) -> list[str]:
    """Render the challenge score per resolution (rows) and split (columns)."""
    rows = []
    for key in results.resolution_keys():
        rest = results.splits["val_rest"][key]
        scores = [score_cell(results.splits[s][key]) for s in EVAL_SPLITS]
        rows.append([key, *scores, score_cell(rest, "accuracy"), score_cell(rest, "f1_macro")])
    header = ["resolution", *EVAL_SPLITS, "val_rest accuracy", "val_rest macro F1"]
    return [
        "## Resolution robustness (challenge score, bilinear: the training's degradation)",
        "",
        *markdown_table(header, rows),
        "",
    ]


def degradation_table(results: EvalResults) -> list[str]:
    """Render the val_rest challenge score per resolution (rows) and degradation (columns)."""
    kernels = results.kernels()
    if len(kernels) < 2:
        return []
    rows = [
        [key, *(score_cell(results.kernel_splits(k)["val_rest"][key]) for k in kernels)]
        for key in results.resolution_keys()
    ]
    quality = f" (JPEG quality {results.jpeg_quality})" if "jpeg" in kernels else ""
    return [
        f"## Degradations (val_rest challenge score){quality}",
        "",
        "Each column makes the low-resolution image another way; bilinear is the training's. "
        "See `eval.degradations` in docs/evaluation.md.",
        "",
        *markdown_table(["resolution", *kernels], rows),
        "",
    ]


def classes_lines(results: EvalResults) -> list[str]:
    """Render which classes were evaluated, and what a cross-dataset evaluation left out."""
    lines = [f"- classes evaluated: {', '.join(results.classes)}"]
    model = results.model_classes
    if (model and list(model) != list(results.classes)) or results.excluded_classes:
        unused = [c for c in model if c not in results.classes]
        excluded = ", ".join(f"{c} ({n} samples)" for c, n in results.excluded_classes.items())
        lines += [
            f"- cross-dataset: the model knows {', '.join(model)}; metrics are over the classes "
            "it shares with the data, and its prediction is the argmax over those",
            f"- left out (classes the model does not know): {excluded or 'none'}",
            f"- model classes the data does not have: {', '.join(unused) or 'none'}",
        ]
    return lines


def interval_lines(results: EvalResults) -> list[str]:
    """Say how the intervals in brackets were computed (nothing without intervals)."""
    boot = results.bootstrap
    if not boot:
        return []
    unit = boot.get("resampled", "video")
    few = [f"{split} ({n} {unit}s)" for split, n in (boot.get("groups") or {}).items()
           if n < FEW_GROUPS]  # fmt: skip
    warning = (
        f" Few {unit}s in {', '.join(few)}: there the interval says little, since a bootstrap can "
        f"only draw from the {unit}s there are."
        if few
        else ""
    )
    return [
        f"In brackets: the {round(boot['confidence'] * 100)}% percentile interval of a bootstrap "
        f"over {unit}s ({boot['samples']} resamples of whole {unit}s, seed {boot['seed']}; "
        f"frames of one video are not independent). See docs/evaluation.md.{warning}",
        "",
    ]


def initial_weights_lines(record: Mapping[str, Any] | None) -> list[str]:
    """Say where the evaluated model's training started from, when its run recorded it."""
    if record is None:
        return []
    return [f"- initial weights (model.pretrained): {describe_initial_weights(record)}"]


def format_report(results: EvalResults, plots: bool) -> str:
    """Render ``report.md``: the paper's Tables 3 and 4, resolution and smoothing tables."""
    counts = ", ".join(f"{s} {results.splits[s][NATIVE].n}" for s in EVAL_SPLITS)
    source = f" (data config from `{results.run_config}`)" if results.run_config else ""
    dataset = f" ({results.dataset})" if results.dataset else ""
    lines = [
        "# Evaluation report",
        "",
        f"- checkpoint: `{results.checkpoint}`",
        f"- data root: `{results.data_root}`{dataset}{source}",
        f"- samples evaluated: {counts}; "
        f"unreadable images skipped: {results.skipped_images['val_full']}",
        *classes_lines(results),
        *initial_weights_lines(results.initial_weights),
        "",
        f"> {HONESTY_NOTE}",
        "",
        *interval_lines(results),
        *native_tables(results),
        *resolution_table(results),
        *degradation_table(results),
    ]
    if plots:
        lines += ["![resolution robustness](resolution_robustness.png)", ""]
    lines += format_smoothing_section(results.smoothing)
    if plots:
        lines += ["## Confusion matrix (val_full, native)", ""]
        lines += ["![confusion matrix](confusion_matrix.png)"]
    return "\n".join(lines) + "\n"


def json_score_cell(entry: Mapping[str, Any], metric: str = "challenge_score") -> str:
    """Render one metric of a ``metrics.json`` entry with its interval, if it has one."""
    return with_interval(entry[metric], json_interval(entry, metric))


def format_smoothing_section(smoothing: Mapping[str, Any]) -> list[str]:
    """Render the temporal-smoothing part of the report."""
    if smoothing["kind"] == "none":
        reason = smoothing.get("reason", "eval.smoothing=none")
        return ["## Temporal smoothing", "", f"Not evaluated ({reason}).", ""]
    results, chosen = smoothing["results"], smoothing["chosen_window"]
    rows = []
    for window in smoothing["windows"]:
        key = str(window)
        name = ("1 (none)" if window == 1 else key) + (" **chosen**" if window == chosen else "")
        rest = results["val_rest"][key]
        rows.append(
            [
                name,
                json_score_cell(results["val_select"][key]),
                json_score_cell(rest, "accuracy"),
                json_score_cell(rest, "f1_macro"),
                json_score_cell(rest),
                json_score_cell(results["val_full"][key]),
            ]
        )
    header = ["window (frames)", "val_select score", "val_rest accuracy", "val_rest macro F1"]
    header += ["val_rest score", "val_full score"]
    rest, rest_raw = results["val_rest"][str(chosen)], results["val_rest"]["1"]
    return [
        f"## Temporal smoothing ({smoothing['kind']}, native resolution)",
        "",
        "Class probabilities averaged over a centred window of frame numbers within each video "
        "(missing frames are left out, not filled in).",
        "",
        *markdown_table(header, rows),
        "",
        f"Chosen on val_select: window {chosen}. On val_rest its challenge score is "
        f"{json_score_cell(rest)} (unsmoothed {json_score_cell(rest_raw)}).",
        "",
    ]


def format_compact_table(results: EvalResults) -> str:
    """Render the challenge score per resolution and split as plain text, with intervals."""
    width = 24 if results.bootstrap else 12
    lines = [f"{'resolution':>10}" + "".join(f"{s:>{width}}" for s in EVAL_SPLITS)]
    for key in results.resolution_keys():
        scores = "".join(f"{score_cell(results.splits[s][key]):>{width}}" for s in EVAL_SPLITS)
        lines.append(f"{key:>10}{scores}")
    boot = results.bootstrap
    title = "challenge score"
    if boot:
        title += (
            f" [{round(boot['confidence'] * 100)}% interval, bootstrap over {boot['resampled']}s]"
        )
    return "\n".join([title, *lines])


def write_outputs(output_dir: Path, results: EvalResults, raw: RawResults, plots: bool) -> None:
    """Write metrics.json, per_video.npz, predictions.csv, robustness table, figures, report.md."""
    write_json_atomic(output_dir / METRICS_FILE, results.to_json())
    raw.per_video.save(output_dir)
    write_text_atomic(
        output_dir / "predictions.csv", predictions_csv(raw.predictions, results.classes)
    )
    write_text_atomic(output_dir / "resolution_robustness.csv", robustness_csv(results))
    if plots:
        plot_resolution_robustness(
            {
                kernel: {
                    s: {k: m.to_json() for k, m in results.kernel_splits(kernel)[s].items()}
                    for s in EVAL_SPLITS
                }
                for kernel in results.kernels()
            },
            results.resolutions,
            output_dir / "resolution_robustness.png",
        )
        plot_confusion_matrix(
            raw.confusions["val_full"][NATIVE],
            results.classes,
            output_dir / "confusion_matrix.png",
            title="val_full, native resolution",
        )
    write_text_atomic(output_dir / "report.md", format_report(results, plots))
