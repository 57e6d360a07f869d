"""notebooks/analysis.ipynb runs on an evaluate output, and is committed without outputs.

The evaluate output is generated here from random predictions (a frame is predicted right more
often at higher resolution), with metrics computed from those predictions by the project's own
metric, so ``metrics.json``, ``resolution_robustness.csv`` and ``predictions.csv`` agree. Its
layout follows ``fer_multires.evaluate``: ``metrics.json`` holds ``{split: {resolution: ...}}``
plus context keys; ``predictions.csv`` holds the native-resolution predictions of all validation
frames (``video, frame, label, predicted, p_<Class>...``), with or without a ``split`` column.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image
from unit.test_notebook import NOTEBOOK

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.metrics import confusion_from_labels
from fer_multires.results import EVAL_SPLITS, EvalResults, SplitMetrics

RESOLUTIONS = (8, 12, 16, 24, 32, 48, 64, 96)

#: Frames per validation split; val_full is the two together.
SPLIT_SIZES = {"val_select": 60, "val_rest": 240}

CLASS_PROPORTIONS = (0.55, 0.06, 0.04, 0.04, 0.15, 0.1, 0.06)


def p_correct(resolution: str) -> float:
    """Chance a frame is predicted right: rises from 0.3 at 8 px to 0.8 at native."""
    if resolution == "native":
        return 0.8
    return 0.3 + 0.5 * np.log2(int(resolution) / 8) / np.log2(128 / 8)


def predict(labels: np.ndarray, resolution: str, rng: np.random.Generator) -> np.ndarray:
    right = rng.random(len(labels)) < p_correct(resolution)
    return np.where(right, labels, rng.integers(0, len(EXPRESSIONS_7), len(labels)))


def random_predictions(seed: int) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{split: {resolution: (labels, predictions)}}``; val_full = val_select + val_rest."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for split, size in SPLIT_SIZES.items():
        labels = rng.choice(len(EXPRESSIONS_7), size=size, p=CLASS_PROPORTIONS)
        out[split] = {
            r: (labels, predict(labels, r, rng)) for r in ("native", *map(str, RESOLUTIONS))
        }
    out["val_full"] = {
        r: tuple(np.concatenate([out[s][r][k] for s in SPLIT_SIZES]) for k in (0, 1))
        for r in out["val_rest"]
    }
    return out


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def make_eval_output(directory: Path, seed: int = 0, split_column: bool = False) -> Path:
    """A schema-correct evaluate output built from random predictions."""
    predictions = random_predictions(seed)
    results = EvalResults(
        checkpoint=str(directory.parent / "checkpoints" / "best_epoch003.ckpt"),
        data_root="",
        run_config=None,
        classes=list(EXPRESSIONS_7),
        native_size=[112, 112],
        resolutions=list(RESOLUTIONS),
        skipped_images={split: 0 for split in EVAL_SPLITS},
        splits={
            split: {
                r: SplitMetrics.from_confusion(
                    confusion_from_labels(*pair, len(EXPRESSIONS_7)), EXPRESSIONS_7
                )
                for r, pair in per_res.items()
            }
            for split, per_res in predictions.items()
        },
    )
    metrics = results.to_json()
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_csv(
        directory / "resolution_robustness.csv",
        ["split", "resolution", "accuracy", "f1_macro", "challenge_score", "n"],
        [[s, r, m["accuracy"], m["f1_macro"], m["challenge_score"], m["n"]]
         for s in ("val_select", "val_rest", "val_full") for r, m in metrics[s].items()],
    )  # fmt: skip
    rows = []
    for split in SPLIT_SIZES:
        labels, preds = predictions[split]["native"]
        for i, (t, p) in enumerate(zip(labels, preds, strict=True)):
            probs = np.full(len(EXPRESSIONS_7), 0.05)
            probs[p] = 1 - 0.05 * (len(EXPRESSIONS_7) - 1)
            row = [f"{split}_{i // 20:03d}", i % 20 + 1, EXPRESSIONS_7[t], EXPRESSIONS_7[p], *probs]
            rows.append([split, *row] if split_column else row)
    header = ["video", "frame", "label", "predicted", *(f"p_{c}" for c in EXPRESSIONS_7)]
    write_csv(directory / "predictions.csv", ["split", *header] if split_column else header, rows)
    Image.new("RGB", (8, 8), "white").save(directory / "confusion_matrix.png")
    (directory / "report.md").write_text("# Evaluation report\n")
    return directory


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(cwd)}}
    )
    return client.execute()


def outputs_of(notebook: nbformat.NotebookNode, cell_id: str) -> list:
    return next(cell.outputs for cell in notebook.cells if cell.get("id") == cell_id)


def stdout_of(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(
        o.get("text", "") for o in outputs_of(notebook, cell_id) if o.get("name") == "stdout"
    )


@pytest.mark.parametrize("split_column", [False, True])
def test_notebook_runs_on_an_evaluate_output(tmp_path: Path, monkeypatch, split_column) -> None:
    run = tmp_path / "logs" / "demo" / "runs" / "2026-11-28_10-00-00"
    eval_dir = make_eval_output(run / "eval", split_column=split_column)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Not in the committed notebook: which Python the kernel runs.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)", id="prefix"))
    # A run directory: the notebook finds the evaluate output inside it.
    monkeypatch.setenv("FER_EVAL_DIR", str(run))
    executed = execute(notebook, tmp_path)

    assert stdout_of(executed, "prefix").strip() == sys.prefix  # the venv's interpreter
    assert f"evaluate output: {eval_dir}" in stdout_of(executed, "load")
    figures = {
        cell_id: sum("image/png" in o.get("data", {}) for o in outputs_of(executed, cell_id))
        for cell_id in ("curves", "confusion", "f1")
    }
    assert figures == {"curves": 1, "confusion": 1, "f1": 1}
    # The confusion matrix counted from predictions.csv agrees with metrics.json; without a
    # split column it can only be val_full's.
    covered = "val_rest" if split_column else "val_full"
    accuracy = json.loads((eval_dir / "metrics.json").read_text())[covered]["native"]["accuracy"]
    expected = (
        f"{covered} accuracy from predictions.csv: {accuracy:.4f} (metrics.json: {accuracy:.4f})"
    )
    assert expected in stdout_of(executed, "confusion")
    assert "val_rest" in stdout_of(executed, "summary")


def test_notebook_says_which_directory_has_no_evaluate_output(tmp_path: Path, monkeypatch) -> None:
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("FER_EVAL_DIR", str(tmp_path / "nothing_here"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.raises(CellExecutionError, match="nothing_here"):
        execute(notebook, tmp_path)
