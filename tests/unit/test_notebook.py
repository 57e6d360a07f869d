"""notebooks/analysis.ipynb runs on an evaluate output, and is committed without outputs.

The evaluate output is generated here from random predictions (a frame is predicted right more
often at higher resolution), with metrics computed from those predictions by the project's own
metric, so ``metrics.json``, ``resolution_robustness.csv`` and ``predictions.csv`` agree. Its
layout follows ``fer_multires.evaluate``: ``metrics.json`` holds ``{split: {resolution: ...}}``
plus context keys; ``predictions.csv`` holds the native-resolution predictions of all validation
frames (``video, frame, label, predicted, p_<Class>...``), with or without a ``split`` column.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], (
            f"cell {cell.get('id')} has outputs: clear them before committing"
        )
        assert cell.execution_count is None
    assert notebook.metadata.kernelspec.name == "python3"
    params = code[0]
    assert "parameters" in params.metadata.get("tags", [])
    assert 'EVAL_DIR = os.environ.get("FER_EVAL_DIR",' in params.source
