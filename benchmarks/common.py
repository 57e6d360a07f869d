"""Helpers shared by the benchmarks: machine description and JSON-line output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

#: The seven expression classes of the random-init models the benchmarks run.
CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]


def machine() -> dict[str, Any]:
    """Describe the machine a number was measured on."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        # other processes' load: on a shared machine, timings are only as good as this is low
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line, with the machine it was measured on."""
    print(json.dumps({**record, "machine": machine()}), flush=True)


def write_random_run(run_dir: Path, backbone: str, resize_size: int, crop_size: int) -> Path:
    """Write a training run directory of a random model; return its ``checkpoints/last.ckpt``."""
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from fer_multires.models.module import FERModule

    torch.manual_seed(0)
    module = FERModule(backbone, len(CLASSES), CLASSES)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = {"data": {"resize_size": resize_size, "crop_size": crop_size,
                       "normalization": "imagenet"}, "model": {"backbone": backbone}}  # fmt: skip
    OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, ckpt)  # fmt: skip
    return ckpt
