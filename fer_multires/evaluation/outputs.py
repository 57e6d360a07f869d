"""An evaluation's output files: metrics.json, predictions.csv, the robustness table, report.md.

Each is in the task's metrics (:data:`~fer_multires.results.SCORE_KEYS`): the challenge score
(``expr``), the mean CCC (``va``), the mean AU F1 (``au``) or the multi-task score and its
three parts (``mtl``). Every file is written through a temporary file and an atomic rename.
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
from fer_multires.plots import (
    ROBUSTNESS_PANELS,
    plot_confusion_matrix,
    plot_resolution_robustness,
)
from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    SCORE_KEYS,
    SCORE_NAMES,
    EvalResults,
    SplitMetrics,
    json_interval,
)
from fer_multires.runs import METRICS_FILE
from fer_multires.tasks import AU_NAMES, TASK_HEADS, VA_NAMES
from fer_multires.uncertainty import FEW_GROUPS
from fer_multires.utils.io import write_json_atomic, write_text_atomic
from fer_multires.utils.tables import markdown_table, with_interval

HONESTY_NOTE = (
    "val_select was used for model selection (and to choose the smoothing window), so val_rest "
    "is the honest estimate; val_full = val_select + val_rest is what the paper reports."
)
#: The honesty note of a task with an AU head: its thresholds are chosen on val_select too.
AU_HONESTY_NOTE = (
    "val_select was used for model selection (and to choose the smoothing window and the AU "
    "thresholds), so val_rest is the honest estimate; val_full = val_select + val_rest."
)

#: Per task, the parts shown beside its score (metric, title): in the resolution and smoothing
#: tables (``val_rest``), and as the robustness figure's further panels.
SCORE_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "expr": (("accuracy", "accuracy"), ("f1_macro", "macro F1")),
    "va": (("ccc_valence", "CCC valence"), ("ccc_arousal", "CCC arousal")),
    "au": (),
    "mtl": (("va_score", "va_score"), ("f1_macro", "expr macro F1"), ("au_score", "au_score")),
}
#: Digits of the values ``predictions.csv`` recomputes metrics from: a float32 printed with 9
#: significant digits reads back as the same float32 (expression probabilities keep 6).
EXACT_FORMAT = "%.9g"


def predictions_csv(predictions: Predictions, classes: Sequence[str]) -> str:
    """Render ``predictions.csv``: one row per ``val_full`` sample, the task's columns.

    ``split`` (``val_select`` or ``val_rest``), ``video`` (or ``image``), ``frame``; then per
    head: expressions ``label``, ``predicted``, ``p_<Class>`` (6 significant digits; ``label``
    empty where a multi-task frame has none); valence-arousal ``valence``, ``arousal`` (the
    annotation, empty where missing), ``pred_valence``, ``pred_arousal``; action units
    ``<AU>`` (1, 0, or -1 where not annotated) and ``p_<AU>``. Valence, arousal and the AU
    probabilities are the float32 values the metrics saw, with 9 significant digits
    (:data:`EXACT_FORMAT`): the CCC and F1 recomputed from the file equal ``metrics.json``'s.
    """
    header = ["split", predictions.unit, "frame"]
    columns: list[Any] = [predictions.split, predictions.video, predictions.frame.tolist()]
    if predictions.label is not None:
        names = np.asarray([*classes, ""], dtype=object)  # label -1: the empty name
        header += ["label", "predicted", *(f"p_{c}" for c in classes)]
        columns += [names[predictions.label], names[predictions.predicted],
                    *np.char.mod("%.6g", predictions.probs).T]  # fmt: skip
    if predictions.va_target is not None:
        target = np.char.mod(EXACT_FORMAT, predictions.va_target)
        target[np.isnan(predictions.va_target)] = ""
        header += [*VA_NAMES, *(f"pred_{name}" for name in VA_NAMES)]
        columns += [*target.T, *np.char.mod(EXACT_FORMAT, predictions.va_predicted[:, 0]).T]
    if predictions.au_target is not None:
        header += [*AU_NAMES, *(f"p_{name}" for name in AU_NAMES)]
        columns += [*predictions.au_target.astype(np.int64).T,
                    *np.char.mod(EXACT_FORMAT, predictions.au_probs).T]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*(list(c) for c in columns), strict=True))
    return buffer.getvalue()


#: Per task, the metrics of ``resolution_robustness.csv``'s rows, before ``n`` and the
#: interval of the task's score.
ROBUSTNESS_METRICS: dict[str, tuple[str, ...]] = {
    "expr": ("accuracy", "f1_macro", "challenge_score"),
    "va": ("ccc_valence", "ccc_arousal", "va_score"),
    "au": ("au_score",),
    "mtl": ("accuracy", "f1_macro", "challenge_score", "ccc_valence", "ccc_arousal", "va_score",
            "au_score", "mtl_score"),
}  # fmt: skip


def robustness_columns(task: str) -> tuple[str, ...]:
    """Return the columns of a task's ``resolution_robustness.csv``."""
    return ("degradation", "split", "resolution", *ROBUSTNESS_METRICS[task], "n",
            "score_ci_low", "score_ci_high")  # fmt: skip


#: The columns of an expression evaluation's ``resolution_robustness.csv`` (the interval's
#: bounds empty without one).
ROBUSTNESS_COLUMNS: tuple[str, ...] = robustness_columns("expr")


def score_cell(m: SplitMetrics, metric: str = "challenge_score") -> str:
    """Render one metric of a split with its interval: ``0.612 [0.571, 0.650]``."""
    return with_interval(getattr(m, metric), (m.ci or {}).get(metric))


def robustness_csv(results: EvalResults) -> str:
    """Render ``resolution_robustness.csv``: one row per (degradation, split, resolution)."""
    metrics = ROBUSTNESS_METRICS[results.task]
    lines = [",".join(robustness_columns(results.task))]
    for kernel in results.kernels():
        by_split = results.kernel_splits(kernel)
        for split in EVAL_SPLITS:
            for key in results.resolution_keys():
                m = by_split[split][key]
                low, high = (m.ci or {}).get(results.score_key, ("", ""))
                bounds = ",".join(f"{b:.6f}" if b != "" else "" for b in (low, high))
                values = ",".join(f"{getattr(m, name):.6f}" for name in metrics)
                lines.append(f"{kernel},{split},{key},{values},{m.n},{bounds}")
    return "\n".join(lines) + "\n"


def native_tables(results: EvalResults) -> list[str]:
    """Render the native-resolution tables of the task's heads, for val_full and val_rest.

    Expressions: the paper's Table 3 (per-class F1) and Table 4; valence-arousal: the CCC of
    each dimension; action units: F1 per AU at the chosen thresholds; multi-task: the score and
    its three parts.
    """
    heads = TASK_HEADS[results.task]
    lines = expression_tables(results) if "expr" in heads else []
    if "va" in heads:
        lines += va_table(results)
    if "au" in heads:
        lines += au_table(results)
    if results.task == "mtl":
        lines += mtl_table(results)
    return lines


def native_entries(results: EvalResults) -> dict[str, SplitMetrics]:
    """The native-resolution metrics of val_full and val_rest (the report's two splits)."""
    return {split: results.splits[split][NATIVE] for split in ("val_full", "val_rest")}


def head_count(m: SplitMetrics, head: str) -> int:
    """The frames a head's metrics count: ``n``, or for ``mtl`` that head's ``n_<head>``."""
    count = getattr(m, f"n_{head}")
    return m.n if count is None else count


def expression_tables(results: EvalResults) -> list[str]:
    """Render the paper's Table 3 (per-class F1) and Table 4 for val_full and val_rest."""
    native = native_entries(results)
    classes = results.classes
    per_class = [[s, *(m.f1_per_class[c] for c in classes)] for s, m in native.items()]
    summary_rows = [
        [s, *(score_cell(m, name) for name in ("accuracy", "f1_macro", "challenge_score")),
         head_count(m, "expr")]
        for s, m in native.items()
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


def va_table(results: EvalResults) -> list[str]:
    """Render the CCC of valence, of arousal and their mean for val_full and val_rest."""
    rows = [
        [s, *(score_cell(m, name) for name in ("ccc_valence", "ccc_arousal", "va_score")),
         head_count(m, "va")]
        for s, m in native_entries(results).items()
    ]  # fmt: skip
    return [
        "## Valence-arousal: concordance correlation coefficient (native resolution)",
        "",
        *markdown_table(["split", "CCC valence", "CCC arousal", "va_score (mean)", "n"], rows),
        "",
    ]


def au_table(results: EvalResults) -> list[str]:
    """Render F1 per AU and their mean for val_full and val_rest, and the thresholds."""
    thresholds = results.au_thresholds or {}
    rows = [
        [s, *(m.f1_per_au[a] for a in AU_NAMES), score_cell(m, "au_score"), head_count(m, "au")]
        for s, m in native_entries(results).items()
    ]
    rows.append(["threshold", *(f"{thresholds[a]:g}" if a in thresholds else None
                                for a in AU_NAMES), "", ""])  # fmt: skip
    return [
        "## Action units: F1 per AU (native resolution)",
        "",
        "Each AU is predicted present when its probability is at or above its threshold, chosen "
        "on val_select (native resolution) among k/32 and applied unchanged everywhere else.",
        "",
        *markdown_table(["split", *AU_NAMES, "au_score (mean)", "n"], rows),
        "",
    ]


def mtl_table(results: EvalResults) -> list[str]:
    """Render the multi-task score and its three parts for val_full and val_rest."""
    names = ("va_score", "f1_macro", "au_score", "mtl_score")
    rows = [[s, *(score_cell(m, name) for name in names), m.n]
            for s, m in native_entries(results).items()]  # fmt: skip
    return [
        "## Multi-task score (native resolution)",
        "",
        "mtl_score = va_score (mean CCC) + expression macro F1 + au_score (mean AU F1), each over "
        "the frames its head has a label for.",
        "",
        *markdown_table(["split", "va_score", "expr macro F1", "au_score", "mtl_score", "n"],
                        rows),
        "",
    ]  # fmt: skip


def resolution_table(results: EvalResults) -> list[str]:
    """Render the task's score per resolution (rows) and split (columns), and its parts."""
    parts = SCORE_PARTS[results.task]
    rows = []
    for key in results.resolution_keys():
        rest = results.splits["val_rest"][key]
        scores = [score_cell(results.splits[s][key], results.score_key) for s in EVAL_SPLITS]
        rows.append([key, *scores, *(score_cell(rest, name) for name, _ in parts)])
    header = ["resolution", *EVAL_SPLITS, *(f"val_rest {title}" for _, title in parts)]
    return [
        f"## Resolution robustness ({results.score_name}, bilinear: the training's degradation)",
        "",
        *markdown_table(header, rows),
        "",
    ]


def degradation_table(results: EvalResults) -> list[str]:
    """Render the val_rest score per resolution (rows) and degradation (columns)."""
    kernels = results.kernels()
    if len(kernels) < 2:
        return []
    rows = [
        [key, *(score_cell(results.kernel_splits(k)["val_rest"][key], results.score_key)
                for k in kernels)]
        for key in results.resolution_keys()
    ]  # fmt: skip
    quality = f" (JPEG quality {results.jpeg_quality})" if "jpeg" in kernels else ""
    return [
        f"## Degradations (val_rest {results.score_name}){quality}",
        "",
        "Each column makes the low-resolution image another way; bilinear is the training's. "
        "See `eval.degradations` in docs/evaluation.md.",
        "",
        *markdown_table(["resolution", *kernels], rows),
        "",
    ]


def classes_lines(results: EvalResults) -> list[str]:
    """Render which classes were evaluated, and what a cross-dataset evaluation left out."""
    if "expr" not in TASK_HEADS[results.task]:
        return []
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


def task_lines(results: EvalResults) -> list[str]:
    """Name the task, its score and the AU thresholds (nothing for expressions, as before)."""
    if results.task == "expr":
        return []
    key = "" if results.score_key in results.score_name else f" ({results.score_key})"
    lines = [f"- task: {results.task}; its score: {results.score_name}{key}"]
    if results.au_thresholds:
        chosen = ", ".join(f"{a} {t:g}" for a, t in results.au_thresholds.items())
        lines.append(f"- AU thresholds (chosen on val_select, native): {chosen}")
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
    """Render ``report.md``: the task's native tables, resolution and smoothing tables."""
    counts = ", ".join(f"{s} {results.splits[s][NATIVE].n}" for s in EVAL_SPLITS)
    source = f" (data config from `{results.run_config}`)" if results.run_config else ""
    dataset = f" ({results.dataset})" if results.dataset else ""
    note = AU_HONESTY_NOTE if "au" in TASK_HEADS[results.task] else HONESTY_NOTE
    lines = [
        "# Evaluation report",
        "",
        f"- checkpoint: `{results.checkpoint}`",
        f"- data root: `{results.data_root}`{dataset}{source}",
        f"- samples evaluated: {counts}; "
        f"unreadable images skipped: {results.skipped_images['val_full']}",
        *task_lines(results),
        *classes_lines(results),
        *initial_weights_lines(results.initial_weights),
        "",
        f"> {note}",
        "",
        *interval_lines(results),
        *native_tables(results),
        *resolution_table(results),
        *degradation_table(results),
    ]
    if plots:
        lines += ["![resolution robustness](resolution_robustness.png)", ""]
    lines += format_smoothing_section(results.smoothing, results.task)
    if plots and "expr" in TASK_HEADS[results.task]:
        lines += ["## Confusion matrix (val_full, native)", ""]
        lines += ["![confusion matrix](confusion_matrix.png)"]
    return "\n".join(lines) + "\n"


def json_score_cell(entry: Mapping[str, Any], metric: str = "challenge_score") -> str:
    """Render one metric of a ``metrics.json`` entry with its interval, if it has one."""
    return with_interval(entry[metric], json_interval(entry, metric))


#: What the smoothing section says is smoothed, per task.
SMOOTHED = {
    "expr": "Class probabilities averaged over a centred window of frame numbers within each "
    "video (missing frames are left out, not filled in).",
    "va": "Valence and arousal averaged over a centred window of frame numbers within each video "
    "(missing frames are left out, not filled in).",
    "au": "AU probabilities averaged over a centred window of frame numbers within each video "
    "(missing frames are left out, not filled in), then thresholded at the AU thresholds "
    "chosen on val_select without smoothing.",
    "mtl": "Every head's outputs (class probabilities, valence and arousal, AU probabilities) "
    "averaged over the same centred window of frame numbers within each video (missing frames "
    "are left out, not filled in); the AU thresholds are those chosen on val_select without "
    "smoothing.",
}


def format_smoothing_section(smoothing: Mapping[str, Any], task: str = "expr") -> list[str]:
    """Render the temporal-smoothing part of the report, in the task's score."""
    if smoothing["kind"] == "none":
        reason = smoothing.get("reason", "eval.smoothing=none")
        return ["## Temporal smoothing", "", f"Not evaluated ({reason}).", ""]
    results, chosen = smoothing["results"], smoothing["chosen_window"]
    key_of_score, parts = SCORE_KEYS[task], SCORE_PARTS[task]
    rows = []
    for window in smoothing["windows"]:
        key = str(window)
        name = ("1 (none)" if window == 1 else key) + (" **chosen**" if window == chosen else "")
        rest = results["val_rest"][key]
        rows.append(
            [
                name,
                json_score_cell(results["val_select"][key], key_of_score),
                *(json_score_cell(rest, metric) for metric, _ in parts),
                json_score_cell(rest, key_of_score),
                json_score_cell(results["val_full"][key], key_of_score),
            ]
        )
    header = ["window (frames)", "val_select score", *(f"val_rest {t}" for _, t in parts)]
    header += ["val_rest score", "val_full score"]
    rest, rest_raw = results["val_rest"][str(chosen)], results["val_rest"]["1"]
    return [
        f"## Temporal smoothing ({smoothing['kind']}, native resolution)",
        "",
        SMOOTHED[task],
        "",
        *markdown_table(header, rows),
        "",
        f"Chosen on val_select: window {chosen}. On val_rest its {SCORE_NAMES[task]} is "
        f"{json_score_cell(rest, key_of_score)} (unsmoothed "
        f"{json_score_cell(rest_raw, key_of_score)}).",
        "",
    ]


def format_compact_table(results: EvalResults) -> str:
    """Render the task's score per resolution and split as plain text, with intervals."""
    width = 24 if results.bootstrap else 12
    lines = [f"{'resolution':>10}" + "".join(f"{s:>{width}}" for s in EVAL_SPLITS)]
    for key in results.resolution_keys():
        scores = "".join(f"{score_cell(results.splits[s][key], results.score_key):>{width}}"
                         for s in EVAL_SPLITS)  # fmt: skip
        lines.append(f"{key:>10}{scores}")
    boot = results.bootstrap
    title = results.score_name
    if boot:
        title += (
            f" [{round(boot['confidence'] * 100)}% interval, bootstrap over {boot['resampled']}s]"
        )
    return "\n".join([title, *lines])


#: Per task, the panels of ``resolution_robustness.png``: (metric, title, top of the axis).
TASK_PANELS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "expr": ROBUSTNESS_PANELS,
    "va": (("va_score", "va_score (mean CCC)", 1.0), ("ccc_valence", "CCC valence", 1.0),
           ("ccc_arousal", "CCC arousal", 1.0)),
    "au": (("au_score", "au_score (mean AU F1)", 1.0),),
    "mtl": (("mtl_score", "mtl_score", 3.0), ("va_score", "va_score", 1.0),
            ("f1_macro", "expr macro F1", 1.0), ("au_score", "au_score", 1.0)),
}  # fmt: skip


def write_outputs(output_dir: Path, results: EvalResults, raw: RawResults, plots: bool) -> None:
    """Write metrics.json, per_video.npz, predictions.csv, robustness table, figures, report.md.

    ``confusion_matrix.png`` for a task with an expression head only.
    """
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
            panels=TASK_PANELS[results.task],
        )
        confusion = raw.states["val_full"][NATIVE].confusion
        if confusion is not None:
            plot_confusion_matrix(
                confusion,
                results.classes,
                output_dir / "confusion_matrix.png",
                title="val_full, native resolution",
            )
    write_text_atomic(output_dir / "report.md", format_report(results, plots))
