"""ONNX export of a checkpoint, checked against PyTorch before it is reported.

The file is one ``.onnx`` (no external data file) with a dynamic batch dimension, input
``images`` (``(N, 3, crop, crop)`` float32, normalised) and one output per head of the model's
task: ``logits`` for an expression model (``task=expr``, as before tasks existed); for the other
tasks ``expr_logits`` (``(N, classes)``), ``va`` (``(N, 2)`` valence and arousal, the ``tanh``
applied in the graph) and ``au_logits`` (``(N, 12)``), those of its heads
(:data:`~fer_multires.inference.classifier.HEAD_OUTPUTS`). It carries as metadata
(:data:`~fer_multires.inference.classifier.METADATA_KEYS`) the task, each head's output, columns
and activation (``heads``), the class names, the image settings the crops must be prepared with,
the run's evaluated scores per resolution and its AU thresholds when it holds an evaluation, so
``predict`` runs it with ONNX Runtime and no other file.

Parity: on a fixed batch (seeded random crops prepared as ``predict`` prepares faces), every
head's ONNX Runtime outputs must be within ``atol + rtol * |torch|`` of PyTorch's (1e-3 both by
default), the expression head with the same argmax, at the batch's size and at batch size 1.
Otherwise the export fails with the largest differences, and no file is left at the output path.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_multires.inference.classifier import (
    EXPR_OUTPUT,
    METADATA_PREFIX,
    CropPreprocessor,
    head_columns,
    heads_metadata,
    onnx_providers,
    output_names,
)
from fer_multires.inference.expected import load_au_thresholds, load_expected_score
from fer_multires.runs import ModelInput, model_input_of_run, run_config_of
from fer_multires.tasks import head_slices
from fer_multires.utils.checkpoints import checkpoint_class_names
from fer_multires.utils.io import sigterm_as_exit

log = logging.getLogger(__name__)

#: Name of the exported graph's input.
INPUT_NAME = "images"
#: Name of an expression model's output (the other tasks': ``classifier.HEAD_OUTPUTS``).
OUTPUT_NAME = EXPR_OUTPUT


class ParityError(RuntimeError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class Parity:
    """How close one head's exported outputs are to PyTorch's.

    Attributes:
        max_abs: the largest absolute difference.
        max_rel: the largest relative difference (to PyTorch's value).
        worst: ``(row, column)`` of the largest excess over the tolerance.
        argmax_mismatches: rows whose argmax differ (0 where the argmax is not checked).
        rows: rows compared.
        within_tolerance: whether every output is within ``atol + rtol * |torch|``.
        column_names: the columns' names, to name the worst one (empty: ``class <index>``).
        argmax_checked: whether the argmax was compared (the expression head's classes).
    """

    max_abs: float
    max_rel: float
    worst: tuple[int, int]
    argmax_mismatches: int
    rows: int
    within_tolerance: bool
    column_names: tuple[str, ...] = ()
    argmax_checked: bool = True

    @property
    def ok(self) -> bool:
        """Within the tolerance, and the same argmax on every row."""
        return self.within_tolerance and self.argmax_mismatches == 0

    def describe(self) -> str:
        """Return a one-line account of the differences."""
        row, column = self.worst
        where = self.column_names[column] if self.column_names else f"class {column}"
        text = (
            f"largest absolute difference {self.max_abs:.3g}, largest relative difference "
            f"{self.max_rel:.3g} (worst at row {row}, {where})"
        )
        if self.argmax_checked:
            text += f"; argmax differs on {self.argmax_mismatches} of {self.rows} rows"
        return text


def describe_parity(parities: dict[str, Parity]) -> str:
    """Return the account of every head's differences (one head: its own account)."""
    if len(parities) == 1:
        return next(iter(parities.values())).describe()
    return "; ".join(f"{head}: {parity.describe()}" for head, parity in parities.items())


def compare_logits(reference: np.ndarray, exported: np.ndarray, atol: float, rtol: float,
                   argmax: bool = True, column_names: tuple[str, ...] = ()) -> Parity:  # fmt: skip
    """Compare exported outputs with PyTorch's.

    Args:
        reference: PyTorch's ``(N, columns)``.
        exported: ONNX Runtime's.
        atol: absolute tolerance.
        rtol: relative tolerance.
        argmax: compare each row's argmax too (class logits).
        column_names: the columns' names, for the account.

    Raises:
        ParityError: if the shapes differ.
    """
    reference = np.asarray(reference, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64)
    if reference.shape != exported.shape:
        raise ParityError(f"ONNX logits have shape {exported.shape}, PyTorch's {reference.shape}")
    diff = np.abs(reference - exported)
    excess = diff - (atol + rtol * np.abs(reference))
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    mismatches = int((reference.argmax(1) != exported.argmax(1)).sum()) if argmax else 0
    return Parity(
        max_abs=float(diff.max()),
        max_rel=float((diff / np.maximum(np.abs(reference), 1e-12)).max()),
        worst=(int(worst[0]), int(worst[1])),
        argmax_mismatches=mismatches,
        rows=int(reference.shape[0]),
        within_tolerance=bool((excess <= 0).all()),
        column_names=tuple(column_names),
        argmax_checked=argmax,
    )


def compare_heads(reference: np.ndarray, exported: np.ndarray, task: str, class_names: list[str],
                  atol: float, rtol: float) -> dict[str, Parity]:  # fmt: skip
    """Compare every head of ``task``: its columns of the side-by-side outputs.

    The expression head is compared as class logits (the argmax too); valence-arousal and AU
    logits value by value.

    Raises:
        ParityError: if the shapes differ.
    """
    if np.shape(reference) != np.shape(exported):
        raise ParityError(
            f"ONNX outputs have shape {np.shape(exported)}, PyTorch's {np.shape(reference)}"
        )
    columns = head_columns(task, class_names)
    return {
        head: compare_logits(reference[:, part], exported[:, part], atol, rtol,
                             argmax=head == "expr",
                             column_names=() if head == "expr" else tuple(columns[head]))
        for head, part in head_slices(task, len(class_names)).items()
    }  # fmt: skip


class HeadOutputs(torch.nn.Module):
    """The exported graph: the backbone, then each head of the task as its own output.

    The heads are :meth:`FERModule.split_heads <fer_multires.models.module.FERModule.split_heads>`'s
    (valence and arousal through ``tanh``), in :data:`~fer_multires.tasks.TASK_HEADS` order.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.model = module.model
        self._split_heads = module.split_heads  # a method, not a submodule

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return each head's outputs."""
        return tuple(self._split_heads(self.model(images)).values())


def parity_batch(model_input: ModelInput, size: int, seed: int = 0) -> torch.Tensor:
    """Return a fixed batch: seeded random face-sized crops, prepared as ``predict`` does."""
    rng = np.random.default_rng(seed)
    side = max(model_input.resize_size, 48)
    crops = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(size)]
    return CropPreprocessor(model_input)(crops, torch.device("cpu"))


def onnx_logits(path: Path, batch: torch.Tensor) -> np.ndarray:
    """Run an ONNX file on a batch with ONNX Runtime (CPU): its outputs side by side.

    An expression model's logits; for the other tasks each head's outputs, in the graph's order
    (that of the heads).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=onnx_providers("cpu"))
    return np.concatenate(session.run(None, {INPUT_NAME: batch.numpy()}), axis=1)


def torch_outputs(model: HeadOutputs, batch: torch.Tensor) -> np.ndarray:
    """Return the model's heads on a batch, side by side (as :func:`onnx_logits`)."""
    with torch.inference_mode():
        return torch.cat([h.float() for h in model(batch)], dim=1).numpy()


def add_metadata(path: Path, metadata: dict[str, object]) -> None:
    """Store JSON metadata in an ONNX file, under :data:`METADATA_PREFIX`, in place."""
    import onnx

    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
    onnx.save(model, str(path))


def check_parity(
    model: HeadOutputs,
    path: Path,
    batch: torch.Tensor,
    task: str,
    class_names: list[str],
    atol: float,
    rtol: float,
) -> dict[str, Parity]:
    """Compare an ONNX file with the model on ``batch`` and on its first row alone, per head.

    Raises:
        ParityError: with the largest differences, if they exceed the tolerance or an argmax
            differs.
    """
    reference = torch_outputs(model, batch)
    exported = np.concatenate([onnx_logits(path, batch), onnx_logits(path, batch[:1])])
    parities = compare_heads(np.concatenate([reference, reference[:1]]), exported, task,
                             class_names, atol, rtol)  # fmt: skip
    if not all(parity.ok for parity in parities.values()):
        raise ParityError(
            f"ONNX export does not match PyTorch within atol={atol:g}, rtol={rtol:g}: "
            f"{describe_parity(parities)}"
        )
    return parities


@dataclass(frozen=True)
class ExportResult:
    """What the export wrote: the file, its size and the parity measured per head."""

    path: Path
    bytes: int
    parity: dict[str, Parity]


def export_checkpoint(
    ckpt_path: Path,
    out: Path,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    batch_size: int = 8,
    opset: int | None = None,
) -> ExportResult:
    """Export a checkpoint to one ONNX file, checked for parity before it is moved into place.

    Args:
        ckpt_path: a fer_multires checkpoint inside its run (the run's ``config.yaml`` gives
            the image settings).
        out: the ONNX file to write.
        atol: absolute tolerance of the parity check.
        rtol: relative tolerance of the parity check.
        batch_size: rows of the parity batch (>= 2: the batch dimension must stay dynamic).
        opset: the ONNX opset, or None for the exporter's default.

    Raises:
        ParityError: if the exported model differs from PyTorch's beyond the tolerance.
        ValueError: if the checkpoint is not a fer_multires one or has no run config.
        ResultsError: if the run's evaluation cannot be read.
    """
    from fer_multires.models.hub import load_trained

    if batch_size < 2:
        raise ValueError(f"export.parity_batch={batch_size} must be >= 2")
    class_names = checkpoint_class_names(ckpt_path)
    model_input, run_config = model_input_of_run(ckpt_path)
    module = load_trained(ckpt_path)
    task = module.task
    model = HeadOutputs(module).eval()
    expected = load_expected_score(None, run_config.parent, task=task)
    thresholds = load_au_thresholds(None, run_config.parent) if "au" in module.heads else None
    batch = parity_batch(model_input, batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.onnx")
    with sigterm_as_exit():  # SIGTERM, like Ctrl-C, runs the finally that removes tmp
        try:
            torch.onnx.export(
                model, (batch[:2],), str(tmp), dynamo=True, external_data=False,
                input_names=[INPUT_NAME], output_names=list(output_names(task).values()),
                dynamic_shapes=({0: "batch"},), opset_version=opset, verbose=False,
            )  # fmt: skip
            add_metadata(tmp, {
                "class_names": class_names,
                "model_input": model_input.to_json(),
                "expected_scores": None if expected is None else expected.to_json(),
                "checkpoint": os.path.abspath(ckpt_path),
                "backbone": str(module.hparams.get("backbone", "")),
                "task": task,
                "heads": heads_metadata(task, class_names),
                "au_thresholds": None if thresholds is None or not thresholds.origin
                else thresholds.to_json(),
            })  # fmt: skip
            parity = check_parity(model, tmp, batch, task, class_names, atol, rtol)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return ExportResult(out, out.stat().st_size, parity)


def default_output(ckpt_path: Path) -> Path:
    """Return the default ONNX path: ``<run>/export/<checkpoint name>.onnx``."""
    run_config = run_config_of(ckpt_path)
    folder = run_config.parent if run_config is not None else Path(ckpt_path).parent
    return folder / "export" / f"{Path(ckpt_path).stem}.onnx"
