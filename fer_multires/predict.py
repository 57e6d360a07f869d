"""Prediction entry point: ``python -m fer_multires.predict ckpt_path=MODEL input=PATH``.

``ckpt_path`` is a training run directory (its best checkpoint), a ``.ckpt`` file or an ONNX file
written by ``python -m fer_multires.export``; ``input`` an image, a folder (searched recursively,
in sorted order) or a video. Faces are found by the ``detector`` group (``mtcnn`` by default,
``haar``, or ``none`` for images that are already face crops); a face with landmarks is aligned
to the training crops' template (``align``), the others cropped square with ``predict.margin``;
the crops are prepared exactly as the evaluation prepares its frames and classified in batches,
by a model of any task: expressions, valence-arousal, action units or all three (``mtl``), each
head its columns (:mod:`fer_multires.inference.outputs`).
In a video the detector runs every ``predict.detect_every`` frames, faces are followed between
and linked into one track per person, optionally smoothed along it. Outputs, in the run
directory: ``predictions.csv``, ``sources.csv`` and, with ``predict.annotate=true``,
``annotated/``. The exit status is 0, or 2 when an input was unreadable (the others are still
processed). The work is done by :mod:`fer_multires.inference`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.inference.runner import PredictResult, format_summary, predict
from fer_multires.utils.config import CONFIG_DIR

__all__ = ["EXIT_UNREADABLE", "PredictResult", "main", "predict"]

#: The exit status when some input was unreadable (the others were processed).
EXIT_UNREADABLE = 2


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    result = predict(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(format_summary(result))
    if result.unreadable:
        sys.exit(EXIT_UNREADABLE)


if __name__ == "__main__":
    main()
