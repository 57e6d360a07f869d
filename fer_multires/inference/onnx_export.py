"""ONNX export of a checkpoint, checked against PyTorch before it is reported.

The file is one ``.onnx`` (no external data file) with a dynamic batch dimension, input
``images`` (``(N, 3, crop, crop)`` float32, normalised) and output ``logits``, and carries as
metadata (:data:`~fer_multires.inference.classifier.METADATA_KEYS`) the class names, the image
settings the crops must be prepared with, and the run's evaluated scores per resolution when it
holds an evaluation, so ``predict`` runs it with ONNX Runtime and no other file.

Parity: on a fixed batch (seeded random crops prepared as ``predict`` prepares faces), the ONNX
Runtime logits must be within ``atol + rtol * |torch|`` of PyTorch's (1e-3 both by default),
with the same argmax, at the batch's size and at batch size 1. Otherwise the export fails with
the largest differences, and no file is left at the output path.
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
    METADATA_PREFIX,
    CropPreprocessor,
    onnx_providers,
)
from fer_multires.inference.expected import load_expected_score
from fer_multires.runs import ModelInput, model_input_of_run, run_config_of
from fer_multires.utils.checkpoints import checkpoint_class_names
from fer_multires.utils.io import sigterm_as_exit

log = logging.getLogger(__name__)

#: Names of the exported graph's input and output.
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ParityError(RuntimeError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class Parity:
    """How close the exported model's logits are to PyTorch's.

    Attributes:
        max_abs: the largest absolute difference.
        max_rel: the largest relative difference (to PyTorch's value).
        worst: ``(row, class)`` of the largest excess over the tolerance.
        argmax_mismatches: rows whose argmax differ.
        rows: rows compared.
        within_tolerance: whether every logit is within ``atol + rtol * |torch|``.
    """

    max_abs: float
    max_rel: float
    worst: tuple[int, int]
    argmax_mismatches: int
    rows: int
    within_tolerance: bool

    @property
    def ok(self) -> bool:
        """Within the tolerance, and the same argmax on every row."""
        return self.within_tolerance and self.argmax_mismatches == 0

    def describe(self) -> str:
        """Return a one-line account of the differences."""
        return (
            f"largest absolute difference {self.max_abs:.3g}, largest relative difference "
            f"{self.max_rel:.3g} (worst at row {self.worst[0]}, class {self.worst[1]}); argmax "
            f"differs on {self.argmax_mismatches} of {self.rows} rows"
        )


def compare_logits(reference: np.ndarray, exported: np.ndarray, atol: float,
                   rtol: float) -> Parity:  # fmt: skip
    """Compare exported logits with PyTorch's.

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
    return Parity(
        max_abs=float(diff.max()),
        max_rel=float((diff / np.maximum(np.abs(reference), 1e-12)).max()),
        worst=(int(worst[0]), int(worst[1])),
        argmax_mismatches=int((reference.argmax(1) != exported.argmax(1)).sum()),
        rows=int(reference.shape[0]),
        within_tolerance=bool((excess <= 0).all()),
    )


def parity_batch(model_input: ModelInput, size: int, seed: int = 0) -> torch.Tensor:
    """Return a fixed batch: seeded random face-sized crops, prepared as ``predict`` does."""
    rng = np.random.default_rng(seed)
    side = max(model_input.resize_size, 48)
    crops = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(size)]
    return CropPreprocessor(model_input)(crops, torch.device("cpu"))


def onnx_logits(path: Path, batch: torch.Tensor) -> np.ndarray:
    """Run an ONNX file on a batch with ONNX Runtime (CPU) and return its logits."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=onnx_providers("cpu"))
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]


def add_metadata(path: Path, metadata: dict[str, object]) -> None:
    """Store JSON metadata in an ONNX file, under :data:`METADATA_PREFIX`, in place."""
    import onnx

    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
    onnx.save(model, str(path))


def check_parity(model: torch.nn.Module, path: Path, batch: torch.Tensor, atol: float,
                 rtol: float) -> Parity:  # fmt: skip
    """Compare an ONNX file with the model on ``batch`` and on its first row alone.

    Raises:
        ParityError: with the largest differences, if they exceed the tolerance or an argmax
            differs.
    """
    with torch.inference_mode():
        reference = model(batch).float().numpy()
    exported = np.concatenate([onnx_logits(path, batch), onnx_logits(path, batch[:1])])
    parity = compare_logits(np.concatenate([reference, reference[:1]]), exported, atol, rtol)
    if not parity.ok:
        raise ParityError(
            f"ONNX export does not match PyTorch within atol={atol:g}, rtol={rtol:g}: "
            f"{parity.describe()}"
        )
    return parity


@dataclass(frozen=True)
class ExportResult:
    """What the export wrote: the file, its size and the parity measured."""

    path: Path
    bytes: int
    parity: Parity


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
    """
    from fer_multires.models.module import FERModule

    if batch_size < 2:
        raise ValueError(f"export.parity_batch={batch_size} must be >= 2")
    class_names = checkpoint_class_names(ckpt_path)
    model_input, run_config = model_input_of_run(ckpt_path)
    module = FERModule.load_from_checkpoint(ckpt_path, pretrained=None, map_location="cpu")
    model = module.model.eval()
    expected = load_expected_score(None, run_config.parent)
    batch = parity_batch(model_input, batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.onnx")
    with sigterm_as_exit():  # SIGTERM, like Ctrl-C, runs the finally that removes tmp
        try:
            torch.onnx.export(
                model, (batch[:2],), str(tmp), dynamo=True, external_data=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: "batch"},), opset_version=opset, verbose=False,
            )  # fmt: skip
            add_metadata(tmp, {
                "class_names": class_names,
                "model_input": model_input.to_json(),
                "expected_scores": None if expected is None else expected.to_json(),
                "checkpoint": os.path.abspath(ckpt_path),
                "backbone": str(module.hparams.get("backbone", "")),
            })  # fmt: skip
            parity = check_parity(model, tmp, batch, atol, rtol)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return ExportResult(out, out.stat().st_size, parity)


def default_output(ckpt_path: Path) -> Path:
    """Return the default ONNX path: ``<run>/export/<checkpoint name>.onnx``."""
    run_config = run_config_of(ckpt_path)
    folder = run_config.parent if run_config is not None else Path(ckpt_path).parent
    return folder / "export" / f"{Path(ckpt_path).stem}.onnx"
