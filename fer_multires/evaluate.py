"""Evaluation entry point: ``python -m fer_multires.evaluate ckpt_path=PATH [overrides]``.

Evaluates a checkpoint (or a training run directory: its best checkpoint) on ``val_select``,
``val_rest`` and ``val_full`` at the native resolution and at every resolution in
``eval.resolutions`` (the training degradation with a fixed resolution: down to it, back up),
from one decode of each batch. It also scores temporal smoothing of the native-resolution
probabilities within each video, with the window chosen on ``val_select``.

The data settings are those of the checkpoint's run (``<run dir>/config.yaml``), with any
``data.*`` key given on the command line applied on top (e.g. ``data.root=/other/copy``).
Exact on any number of processes. Outputs, in the run directory: ``metrics.json``,
``predictions.csv``, ``resolution_robustness.{csv,png}``, ``confusion_matrix.png`` and
``report.md``. The work is done by :mod:`fer_multires.evaluation`.
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.evaluation.runner import evaluate
from fer_multires.utils.config import CONFIG_DIR, rewrite_deprecated_overrides

__all__ = ["evaluate", "main"]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    torch.set_float32_matmul_precision("high")
    evaluate(cfg)


if __name__ == "__main__":
    rewrite_deprecated_overrides()  # data.multires.enabled=... (deprecated)
    main()
