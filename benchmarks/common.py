"""Helpers shared by the benchmarks: machine description and JSON-line output."""

from __future__ import annotations

import json
import os
import platform
from typing import Any

import torch


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
