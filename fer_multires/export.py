"""ONNX export entry point: ``python -m fer_multires.export ckpt_path=RUN_DIR|FILE.ckpt``.

Writes one ONNX file (``export.out``; default ``<run dir>/export/<checkpoint name>.onnx``) with a
dynamic batch dimension and the metadata ``predict`` needs (class names, image sizes and
normalisation, the run's evaluated scores), after checking that ONNX Runtime's logits match
PyTorch's on a fixed batch (``export.atol``, ``export.rtol``, same argmax). A mismatch is an
error that prints the largest difference, and leaves no file behind. The work is done by
:mod:`fer_multires.inference.onnx_export`; it needs the ``onnx`` extra
(``pip install 'fer_multires[onnx]'``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fer_multires.inference.onnx_export import ExportResult, default_output, export_checkpoint
from fer_multires.runs import resolve_checkpoint
from fer_multires.utils.checkpoint_io import require_writable_dir
from fer_multires.utils.config import CONFIG_DIR, required

__all__ = ["export", "main"]

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> ExportResult:
    """Export the checkpoint ``cfg.ckpt_path`` as the ``export`` node says.

    Raises:
        ValueError: for a missing ``ckpt_path`` or a bad ``export.*`` value.
        FileNotFoundError: if the checkpoint does not exist.
        ParityError: if the exported model does not match PyTorch's.
    """
    usage = "python -m fer_multires.export ckpt_path=RUN_DIR"
    ckpt_path = resolve_checkpoint(str(required(cfg, "ckpt_path", usage)))
    node = cfg.export
    for key in ("atol", "rtol"):
        if not isinstance(node[key], int | float) or node[key] < 0:
            raise ValueError(f"export.{key}={node[key]!r} must be a number >= 0")
    out = Path(node.out) if node.get("out") else default_output(ckpt_path)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"export.out={out} must end in .onnx")
    require_writable_dir(out.parent, "export.out")  # before the export and its parity check
    result = export_checkpoint(
        ckpt_path, out, float(node.atol), float(node.rtol), int(node.parity_batch),
        None if node.get("opset") is None else int(node.opset),
    )  # fmt: skip
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    result = export(cfg)
    print(f"parity with PyTorch: {result.parity.describe()}")
    print(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
