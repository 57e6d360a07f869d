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
from fer_multires.results import EVAL_SPLITS, NATIVE, EvalResults
from fer_multires.runs import METRICS_FILE
from fer_multires.utils.io import write_json_atomic, write_text_atomic
from fer_multires.utils.tables import markdown_table

HONESTY_NOTE = (
    "val_select was used for model selection (and to choose the smoothing window), so val_rest "
    "is the honest estimate; val_full = val_select + val_rest is what the paper reports."
)


def predictions_csv(predictions: Predictions, classes: Sequence[str]) -> str:
    """Render ``predictions.csv``: video (or image), frame, label, predicted, ``p_<Class>``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    source = "video" if predictions.has_videos else "image"
    writer.writerow([source, "frame", "label", "predicted", *(f"p_{c}" for c in classes)])
    names = np.asarray(classes, dtype=object)
    probs = np.char.mod("%.6g", predictions.probs)
    rows = zip(
        predictions.video,
        predictions.frame.tolist(),
        names[predictions.label],
        names[predictions.predicted],
        probs.tolist(),
        strict=True,
    )
    writer.writerows([video, frame, label, pred, *p] for video, frame, label, pred, p in rows)
    return buffer.getvalue()


def robustness_csv(results: EvalResults) -> str:
    """Render ``resolution_robustness.csv``: one row per (degradation, split, resolution)."""
    lines = ["degradation,split,resolution,accuracy,f1_macro,challenge_score,n"]
    for kernel in results.kernels():
        by_split = results.kernel_splits(kernel)
        for split in EVAL_SPLITS:
            for key in results.resolution_keys():
                m = by_split[split][key]
                lines.append(
                    f"{kernel},{split},{key},{m.accuracy:.6f},{m.f1_macro:.6f},"
                    f"{m.challenge_score:.6f},{m.n}"
                )
    return "\n".join(lines) + "\n"


def native_tables(results: EvalResults) -> list[str]:
    """Render the paper's Table 3 (per-class F1) and Table 4 for val_full and val_rest."""
    splits = ("val_full", "val_rest")
    native = {split: results.splits[split][NATIVE] for split in splits}
    classes = results.classes
    per_class = [[s, *(native[s].f1_per_class[c] for c in classes)] for s in splits]
    summary_rows = [
        [s, native[s].accuracy, native[s].f1_macro, native[s].challenge_score, native[s].n]
        for s in splits
    ]
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
        scores = [results.splits[s][key].challenge_score for s in EVAL_SPLITS]
        rows.append([key, *scores, rest.accuracy, rest.f1_macro])
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
        [key, *(results.kernel_splits(k)["val_rest"][key].challenge_score for k in kernels)]
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
                results["val_select"][key]["challenge_score"],
                rest["accuracy"],
                rest["f1_macro"],
                rest["challenge_score"],
                results["val_full"][key]["challenge_score"],
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
        f"{rest['challenge_score']:.4f} (unsmoothed {rest_raw['challenge_score']:.4f}).",
        "",
    ]


def format_compact_table(results: EvalResults) -> str:
    """Render the challenge score per resolution and split as plain text."""
    lines = [f"{'resolution':>10}" + "".join(f"{s:>12}" for s in EVAL_SPLITS)]
    for key in results.resolution_keys():
        scores = "".join(f"{results.splits[s][key].challenge_score:>12.4f}" for s in EVAL_SPLITS)
        lines.append(f"{key:>10}{scores}")
    return "\n".join(["challenge score", *lines])


def write_outputs(output_dir: Path, results: EvalResults, raw: RawResults, plots: bool) -> None:
    """Write metrics.json, predictions.csv, the robustness table and figures, and report.md."""
    write_json_atomic(output_dir / METRICS_FILE, results.to_json())
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
