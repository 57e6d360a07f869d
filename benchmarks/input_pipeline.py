"""Input pipeline throughput and index scale, as JSON lines naming the machine.

    python benchmarks/input_pipeline.py [--data DIR] [--only worker,device,loader,index]

* worker: images/s on one core for the worker side of each path, reading real JPEG files:
  ``cpu`` = the per-image PIL reference (decode, multi-resolution, resize 256, crop 224,
  grayscale, normalise); ``device`` = the fast path's worker side (decode to uint8 + draws).
* device: the batched augmentation of the fast path, ms per batch of 128, on the CPU and, when
  one is available, on the GPU; with the number of operators it runs per batch (on a GPU,
  about its kernel launches) and how many of them synchronise with the host.
* loader: end-to-end DataLoader throughput (images/s) for each path with N workers (the fast
  path including its batched augmentation in the main process).
* index: an Aff-Wild2-sized annotation set (548 videos, 2.6M label lines; frames listed from a
  manifest) is generated, indexed and timed; the index's size and the memory of DataLoader
  workers over an epoch over it (unique set size, so copy-on-read growth shows) are printed.

Targets: fast-path worker side >= 6x the reference per core; device side <= 2 ms per batch of
128 on a GPU; index build <= 10 s and <= 64 MB.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from common import emit
from torch.utils.data import DataLoader, Dataset

from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.affwild2 import SplitIndex, read_affwild2
from fer_multires.data.synthetic import SyntheticSpec, ensure_synthetic_affwild2
from fer_multires.data.transforms import MultiResolution
from fer_multires.utils.profiling import OpCounter

PAPER_MULTIRES = MultiResolution(p=1.0, min_res=8, max_res=128, sampling="pow2")


def datamodule(root: Path, augment_on: str, workers: int = 0) -> AffWild2DataModule:
    dm = AffWild2DataModule(
        root=str(root), batch_size=128, num_workers=workers, multires=PAPER_MULTIRES,
        augment_on=augment_on,
    )  # fmt: skip
    dm.setup()
    return dm


def bench_worker(root: Path, count: int) -> None:
    torch.set_num_threads(1)
    rates = {}
    for path in ("cpu", "device"):
        dataset = datamodule(root, path).dataset("train")
        n = min(count, len(dataset))
        for i in range(16):  # warm the page cache and the code
            dataset[(i, 0)]
        start = time.perf_counter()
        for i in range(n):
            dataset[(i, 0)]
        rates[path] = n / (time.perf_counter() - start)
        emit({"benchmark": "worker_side", "path": path, "img_per_s_per_core": rates[path]})
    emit({"benchmark": "worker_side", "speedup_device_over_cpu": rates["device"] / rates["cpu"]})
    torch.set_num_threads(psutil.cpu_count(logical=False) or 1)


def bench_device(root: Path, repeats: int) -> None:
    dm = datamodule(root, "device")
    batch = next(iter(dm.train_dataloader()))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for _ in range(3):
            dm.batch_transform.train(moved["image"], moved)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            dm.batch_transform.train(moved["image"], moved)
        sync(device)
        ms = (time.perf_counter() - start) / repeats * 1e3
        with OpCounter() as ops:
            dm.batch_transform.train(moved["image"], moved)
        emit({"benchmark": "device_side", "device": device, "batch": len(moved["label"]),
              "ms_per_batch": ms, "operators_per_batch": ops.total(),
              "host_syncing_operators": ops.host_syncs()})  # fmt: skip


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_loader(root: Path, workers: list[int], batches: int) -> None:
    for path in ("cpu", "device"):
        for n in workers:
            dm = datamodule(root, path, n)
            loader = dm.train_dataloader()
            seen, start = 0, 0.0
            for i, batch in enumerate(loader):
                if i == 1:  # exclude worker start-up
                    start, seen = time.perf_counter(), 0
                if path == "device":
                    batch["image"] = dm.batch_transform.train(batch["image"], batch)
                seen += len(batch["label"])
                if i == batches:
                    break
            emit({"benchmark": "loader", "path": path, "workers": n,
                  "img_per_s": seen / (time.perf_counter() - start)})  # fmt: skip


def write_affwild2_sized_set(root: Path, videos: int, lines: int, seed: int = 0) -> Path:
    """Annotation files of Aff-Wild2's size, and a manifest of their frames (no images)."""
    rng = np.random.default_rng(seed)
    lengths = rng.multinomial(lines - videos, np.ones(videos) / videos) + 1
    header = ",".join(EXPRESSIONS_7)
    manifest_lines = []
    for v, length in enumerate(lengths):
        split = "Training_Set" if v < int(videos * 0.7) else "Validation_Set"
        folder = root / "annotations" / "EXPR_Set" / split
        folder.mkdir(parents=True, exist_ok=True)
        labels = rng.integers(-1, 7, size=length)
        (folder / f"video{v:03d}.txt").write_text(header + "\n" + "\n".join(map(str, labels)))
        present = np.flatnonzero(rng.random(length) < 0.97) + 1
        manifest_lines += [f"video{v:03d}/{f:05d}.jpg" for f in present]
    manifest = root / "frames_manifest.txt"
    manifest.write_text("\n".join(manifest_lines) + "\n")
    return manifest


class IndexOnly(Dataset):
    """Touches the index per sample (path and label) without reading images."""

    def __init__(self, split: SplitIndex) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> int:
        return len(self.split.image_relpath(i)) + int(self.split.label[i])


def worker_memory(loader: DataLoader, probes: int) -> list[float]:
    """Unique memory (MB) of the worker processes, sampled ``probes`` times over an epoch."""
    samples: list[float] = []
    parent = psutil.Process()
    every = max(1, len(loader) // probes)
    for i, _ in enumerate(loader):
        if i % every == 0:
            children = parent.children(recursive=True)
            samples.append(sum(c.memory_full_info().uss for c in children) / 2**20)
    return samples


def bench_index(videos: int, lines: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = write_affwild2_sized_set(root, videos, lines)
        (root / "cropped_aligned").mkdir()
        start = time.perf_counter()
        index = read_affwild2(root, frames_manifest=manifest)
        seconds = time.perf_counter() - start
        frames = sum(len(s) for s in index.splits.values())
        size_mb = sum(s.nbytes() for s in index.splits.values()) / 2**20
        emit({"benchmark": "index", "videos": videos, "label_lines": lines, "frames": frames,
              "build_s": seconds, "index_mb": size_mb})  # fmt: skip
        loader = DataLoader(IndexOnly(index.splits["train"]), batch_size=1024,
                            num_workers=workers)  # fmt: skip
        uss = worker_memory(loader, probes=8)
        emit({"benchmark": "index_worker_memory", "workers": workers,
              "samples": len(index.splits["train"]), "worker_uss_mb": [round(m, 1) for m in uss],
              "growth_mb": round(uss[-1] - uss[0], 1)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("data/synthetic_affwild2_benchmark"),
        help="Aff-Wild2-layout root (the synthetic set is generated if absent)",
    )
    parser.add_argument("--only", default="worker,device,loader,index")
    parser.add_argument("--images", type=int, default=600, help="images per worker-side run")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--index-videos", type=int, default=548)
    parser.add_argument("--index-lines", type=int, default=2_600_000)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts & {"worker", "device", "loader"}:
        ensure_synthetic_affwild2(args.data, SyntheticSpec())
    if "worker" in parts:
        bench_worker(args.data, args.images)
    if "device" in parts:
        bench_device(args.data, repeats=5)
    if "loader" in parts:
        bench_loader(args.data, [int(n) for n in args.workers.split(",")], args.batches)
    if "index" in parts:
        bench_index(args.index_videos, args.index_lines, workers=2)


if __name__ == "__main__":
    main()
