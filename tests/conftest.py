"""Shared fixtures: small Aff-Wild2 trees written on the fly."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from PIL import Image

from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_8
from fer_multires.utils.config import CONFIG_DIR

LAYOUT_DIRS = {
    "abaw2": ("EXPR_Set", "Training_Set", "Validation_Set", EXPRESSIONS_7),
    "abaw3": ("EXPR_Classification_Challenge", "Train_Set", "Validation_Set", EXPRESSIONS_8),
    "abaw5": ("EXPR_Recognition_Challenge", "Train_Set", "Validation_Set", EXPRESSIONS_8),
}


def jpeg_bytes(size: int = 16, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, value // 2)).save(buf, format="JPEG")
    return buf.getvalue()


def write_video(
    root: Path,
    layout: str,
    split: str,
    video: str,
    labels: Sequence[int],
    frames: Iterable[int] | None = None,
    header: str | None = None,
    newline: str = "\n",
    trailing: str = "",
    image: bytes | None = None,
) -> None:
    """Write one annotation file and (unless frames is empty) its frame folder."""
    task, train_dir, val_dir, classes = LAYOUT_DIRS[layout]
    split_dir = root / "annotations" / task / (train_dir if split == "train" else val_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    head = header if header is not None else ",".join(classes)
    text = newline.join([head, *map(str, labels)]) + newline + trailing
    (split_dir / f"{video}.txt").write_bytes(text.encode())
    frames = range(1, len(labels) + 1) if frames is None else list(frames)
    if frames:
        frame_dir = root / "cropped_aligned" / video
        frame_dir.mkdir(parents=True, exist_ok=True)
        data = image if image is not None else jpeg_bytes()
        for f in frames:
            (frame_dir / f"{f:05d}.jpg").write_bytes(data)


def make_tree(
    root: Path, layout: str = "abaw2", videos_per_split: int = 3, frames: int = 10, seed: int = 0
) -> Path:
    """A clean tree: every frame present and labelled, labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    num_classes = len(LAYOUT_DIRS[layout][3])
    for split in ("train", "val"):
        for v in range(videos_per_split):
            labels = rng.integers(0, num_classes, size=frames)
            write_video(root, layout, split, f"{split}_{v:03d}", labels.tolist())
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "affwild2")


def noise_jpeg(rng: np.random.Generator, size: int) -> bytes:
    buf = io.BytesIO()
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_image_tree(
    root: Path,
    train_videos: int = 3,
    val_videos: int = 5,
    frames: int = 9,
    size: int = 24,
    num_classes: int = 7,
    seed: int = 0,
) -> Path:
    """A tree whose every frame is a distinct noise image (for pipeline determinism tests)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_videos), ("val", val_videos)):
        for v in range(count):
            labels = rng.integers(0, num_classes, size=frames).tolist()
            write_video(root, "abaw2", split, f"{split}_{v:03d}", labels, frames=[])
            frame_dir = root / "cropped_aligned" / f"{split}_{v:03d}"
            frame_dir.mkdir(parents=True)
            for f in range(1, frames + 1):
                (frame_dir / f"{f:05d}.jpg").write_bytes(noise_jpeg(rng, size))
    return root


def compose_entry(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose an entry point's config as Hydra would run it, with its output in output_dir."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train_overrides(data_root: Path, tmp_path: Path) -> list[str]:
    """Overrides that shrink the demo_multires experiment to seconds on a CPU, on ``data_root``."""
    return [
        "+experiment=demo_multires",
        "data=affwild2",
        f"data.root={data_root}",
        "data.batch_size=8",
        "data.eval_batch_size=16",
        "data.num_workers=0",
        "data.resize_size=28",
        "data.crop_size=24",
        "data.val_select_fraction=0.4",
        "data.multires.p=0.5",  # the resume test sets its own p
        "trainer.max_epochs=1",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        # a schedule that does not depend on max_epochs, so a stopped run and a longer one agree
        "model.scheduler.T_max=4",
        f"paths.root_dir={tmp_path}",
        "eval_after_fit=false",  # the tests that want it turn it on
    ]


def compose_train(overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose the train entry point's config, with its output in ``run_dir``."""
    return compose_entry("train", overrides, run_dir)


def run_train(data_root: Path, tmp_path: Path, run_dir: Path, *extra: str):
    """Train through the entry point's ``train(cfg)`` with :func:`train_overrides` and ``extra``."""
    from fer_multires.train import train

    overrides = [*train_overrides(data_root, tmp_path), f"run_dir={run_dir}", *extra]
    return train(compose_train(overrides, run_dir))


# ------------------------------------------------------------------ predict and export (issue 11)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained for one epoch on 24 px frames and evaluated at 8 and 16 px (``<run>/eval``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = tmp_path_factory.mktemp("predict_run")
        data_root = make_image_tree(base / "data", train_videos=3, val_videos=4, frames=6)
        run_dir = base / "run"
        run_train(data_root, base, run_dir, "eval_after_fit=true", "eval.resolutions=[8,16]",
                  "eval.plots=false")  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return run_dir


def astronaut() -> np.ndarray:
    """scikit-image's public-domain photo of a face (512 x 512 RGB, in its wheel, offline)."""
    from skimage import data

    return data.astronaut()


def write_moving_video(path: Path, frames: int = 10, fps: float = 10.0) -> list[tuple[int, int]]:
    """Write a video of the astronaut photo shifted a few pixels per frame; return the shifts."""
    import cv2

    image = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    size = (448, 448)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    assert writer.isOpened(), path
    shifts = []
    for f in range(frames):
        dx, dy = 4 * f, 2 * f
        writer.write(np.ascontiguousarray(image[dy : dy + size[1], dx : dx + size[0]]))
        shifts.append((dx, dy))
    writer.release()
    return shifts


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: much faster for these tiny models on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
