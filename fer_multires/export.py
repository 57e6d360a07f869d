"""Export entry point: ``python -m fer_multires.export ckpt_path=RUN_DIR|FILE.ckpt``.

With ``export.hub=true`` it also writes a Hub-ready folder (``export.hub_out``; default
``<run dir>/export/<checkpoint name>_hub/``): ``model.safetensors``, ``config.json`` (timm's
format plus the task and its heads, the classes, image settings and training resolutions) and a
``README.md`` model card (:mod:`fer_multires.models.hub`); ``export.onnx=false`` skips the ONNX
file.

Writes one ONNX file (``export.out``; default ``<run dir>/export/<checkpoint name>.onnx``) with a
dynamic batch dimension, one output per head of the model's task, and the metadata ``predict``
needs (task, heads, class names, image sizes and normalisation, the run's evaluated scores and
AU thresholds), after checking that ONNX Runtime's outputs match PyTorch's on a fixed batch,
every head (``export.atol``, ``export.rtol``; the expression head with the same argmax). A
mismatch is an error that prints the largest difference, and leaves no file behind. The work is
done by :mod:`fer_multires.inference.onnx_export`; it needs the ``onnx`` extra
(``pip install 'fer_multires[onnx]'``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fer_multires.inference.onnx_export import (
    ExportResult,
    default_output,
    describe_parity,
    export_checkpoint,
)
from fer_multires.models.hub import is_hub_folder, write_hub_folder
from fer_multires.runs import resolve_checkpoint
from fer_multires.utils.checkpoint_io import require_writable_dir
from fer_multires.utils.config import CONFIG_DIR, required

__all__ = ["export", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exported:
    """What the export wrote: the ONNX file (``export.onnx``), the Hub folder (``export.hub``)."""

    onnx: ExportResult | None
    hub: Path | None


def check_flag(node: DictConfig, key: str) -> bool:
    """Return ``export.<key>`` if it is true or false.

    Raises:
        ValueError: naming the key otherwise.
    """
    if not isinstance(node.get(key), bool):
        raise ValueError(f"export.{key}={node.get(key)!r} must be true or false")
    return node[key]


def default_hub_output(ckpt_path: Path) -> Path:
    """Return the default Hub folder: ``<run>/export/<checkpoint name>_hub``."""
    return default_output(ckpt_path).with_name(f"{Path(ckpt_path).stem}_hub")


def export(cfg: DictConfig) -> Exported:
    """Export the checkpoint ``cfg.ckpt_path`` as the ``export`` node says.

    Every setting and destination is checked before any work.

    Raises:
        ValueError: for a missing ``ckpt_path``, a bad ``export.*`` value, or a Hub folder given
            as ``ckpt_path`` (it is an export already).
        FileNotFoundError: if the checkpoint does not exist.
        ParityError: if the exported model does not match PyTorch's.
    """
    usage = "python -m fer_multires.export ckpt_path=RUN_DIR"
    ckpt_path = resolve_checkpoint(str(required(cfg, "ckpt_path", usage)))
    if is_hub_folder(ckpt_path):
        raise ValueError(f"ckpt_path={ckpt_path} is an exported Hub folder; export a training run "
                         "or its checkpoint")  # fmt: skip
    node = cfg.export
    onnx, hub = check_flag(node, "onnx"), check_flag(node, "hub")
    if not (onnx or hub):
        raise ValueError("export.onnx=false and export.hub=false: nothing to export")
    for key in ("atol", "rtol"):
        if not isinstance(node[key], int | float) or node[key] < 0:
            raise ValueError(f"export.{key}={node[key]!r} must be a number >= 0")
    out = Path(node.out) if node.get("out") else default_output(ckpt_path)
    if onnx and out.suffix.lower() != ".onnx":
        raise ValueError(f"export.out={out} must end in .onnx")
    hub_out = Path(node.hub_out) if node.get("hub_out") else default_hub_output(ckpt_path)
    if onnx:
        require_writable_dir(out.parent, "export.out")  # before the export and its parity check
    if hub:
        require_writable_dir(hub_out.parent, "export.hub_out")
    result = None
    if onnx:
        result = export_checkpoint(
            ckpt_path, out, float(node.atol), float(node.rtol), int(node.parity_batch),
            None if node.get("opset") is None else int(node.opset),
        )  # fmt: skip
    return Exported(result, write_hub_folder(ckpt_path, hub_out) if hub else None)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    exported = export(cfg)
    if exported.onnx is not None:
        print(f"parity with PyTorch: {describe_parity(exported.onnx.parity)}")
        print(f"wrote {exported.onnx.path} ({exported.onnx.bytes / 1e6:.1f} MB)")
    if exported.hub is not None:
        print(f"wrote the Hub folder {exported.hub} (same logits as the checkpoint); upload it "
              f"with: hf upload <org>/<repo> {exported.hub}")  # fmt: skip


if __name__ == "__main__":
    main()
