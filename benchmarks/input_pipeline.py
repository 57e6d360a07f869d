"""Input pipeline throughput and index scale, as JSON lines naming the machine.

    python benchmarks/input_pipeline.py [--data DIR] [--photo-data DIR]
        [--only worker,device,loader,collate,index] [--repeats N]

* worker: images/s of the worker side of each path through the training DataLoader, as a worker
  really runs it (sampler, ``dataset[key]`` per sample and collate included), on two sets of
  112 px JPEG frames in Aff-Wild2's layout: the synthetic set (``--data``) and a generated set of
  photo-like crops (``--photo-data``, cut from scikit-image's sample photographs). ``cpu`` = the
  per-image PIL reference (decode, multi-resolution, resize 256, crop 224, grayscale,
  normalise); ``device`` = the fast path's worker side (decode to uint8 + draws; augmentation
  later, batched on the device). Each with ``num_workers=0`` (one core does everything: the
  per-core figure) and with one worker process. Also timed: plain decoding of the same files
  (read + decode in a loop): OpenCV alone (the floor), the fast path's decoder, torchvision's
  and PIL's. Every figure is the median of ``--repeats`` runs, interleaved so that a noisy
  neighbour hits all alike, in wall time and in CPU time per image.
* device: the batched augmentation of the fast path, ms per batch of 128, on the CPU and, when
  one is available, on the GPU; with the number of operators it runs per batch (on a GPU,
  about its kernel launches) and how many of them synchronise with the host.
* loader: end-to-end DataLoader throughput (images/s) for each path with N workers (the fast
  path including its batched augmentation in the main process).
* collate: what a new shared-memory segment costs a worker process: stacking 128 uint8 images
  of 3x112x112 into one (what ``default_collate`` does in a worker; the fast path's batched
  fetch decodes into one per batch instead) against stacking them into ordinary memory (what it
  does with ``num_workers=0``), us per image.
* index: an Aff-Wild2-sized annotation set (548 videos, 2.6M label lines; frames listed from a
  manifest) is generated, indexed and timed; the index's size and the memory of DataLoader
  workers over an epoch over it (unique set size, so copy-on-read growth shows) are printed.

Targets: fast-path worker side through the DataLoader >= 6x the reference and <= 2x the plain
decode time per image; device side <= 2 ms per batch of 128 on a GPU; index build <= 10 s and
<= 64 MB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch
from common import emit
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image

from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.data.datasets import FrameDataset, decode_pil, decode_tensor
from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.affwild2 import SplitIndex, read_affwild2
from fer_multires.data.synthetic import SyntheticSpec, ensure_synthetic_affwild2
from fer_multires.data.transforms import MultiResolution
from fer_multires.utils.profiling import OpCounter

PAPER_MULTIRES = MultiResolution(p=1.0, min_res=8, max_res=128, sampling="pow2")
PATHS = ("cpu", "device")
TARGETS = {"speedup_device_over_cpu": ">= 6", "device_time_over_decode_time": "<= 2"}
#: scikit-image sample photographs the photo-like crops are cut from.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "retina",
          "hubble_deep_field")  # fmt: skip


def datamodule(root: Path, augment_on: str, workers: int = 0) -> AffWild2DataModule:
    dm = AffWild2DataModule(
        root=str(root), batch_size=128, num_workers=workers, multires=PAPER_MULTIRES,
        augment_on=augment_on,
    )  # fmt: skip
    dm.setup()
    return dm


def write_photo_crops(root: Path, videos: int = 22, frames: int = 150, seed: int = 0) -> None:
    """Write 112 px JPEG crops of photographs in Aff-Wild2's layout (16 train, 6 val videos).

    Each "video" follows a window drifting a few pixels per frame over one photograph, so the
    frames hold photographic detail (textures, noise, edges), unlike the flat synthetic faces.
    """
    from skimage import data as samples  # dev dependency; only this benchmark needs it

    if (root / "PHOTO_CROPS_DONE").is_file():
        return
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(np.asarray(getattr(samples, n)())[..., :3]) for n in PHOTOS]
    header = ",".join(EXPRESSIONS_7)
    for v in range(videos):
        split = "Training_Set" if v < videos * 0.7 else "Validation_Set"
        name = f"photo{v:03d}"
        write_crops(photos[v % len(photos)], root / "cropped_aligned" / name, frames, rng)
        labels = root / "annotations" / "EXPR_Set" / split / f"{name}.txt"
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text("\n".join([header, *map(str, rng.integers(0, 7, frames))]) + "\n")
    (root / "PHOTO_CROPS_DONE").write_text("done\n")


def write_crops(photo: Image.Image, folder: Path, frames: int, rng: np.random.Generator) -> None:
    """Write ``frames`` 112 px JPEG crops of a window drifting over ``photo``."""
    folder.mkdir(parents=True, exist_ok=True)
    side = int(rng.integers(112, min(photo.size) // 2 + 1))
    x, y = int(rng.integers(photo.width - side)), int(rng.integers(photo.height - side))
    for f in range(1, frames + 1):
        x = int(np.clip(x + rng.integers(-3, 4), 0, photo.width - side))
        y = int(np.clip(y + rng.integers(-3, 4), 0, photo.height - side))
        crop = photo.crop((x, y, x + side, y + side)).resize((112, 112), Image.Resampling.BILINEAR)
        crop.save(folder / f"{f:05d}.jpg", quality=90)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (loader workers)."""
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in processes)


class TimedLoader:
    """A training loader timed over whole epochs, each epoch with its own order and draws."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.epoch = 0

    def run(self, epochs: int) -> tuple[float, float]:
        """Load the next ``epochs`` epochs.

        Whole epochs only: a run stopped mid-epoch would leave a worker finishing its prefetched
        batches during the next figure's run. Each epoch's start (the sampler's permutation,
        refilling the workers' prefetch queue) is included.

        Returns:
            ``(images/s, CPU us per image)``; the CPU time is that of every process of the
            loader (main and workers), so it holds even when other jobs share the cores.
        """
        seen, start, cpu_start = 0, time.perf_counter(), cpu_seconds()
        for _ in range(epochs):
            self.loader.sampler.set_epoch(self.epoch)
            for batch in self.loader:
                seen += len(batch["label"])
            self.epoch += 1
        cpu = cpu_seconds() - cpu_start
        return seen / (time.perf_counter() - start), cpu / seen * 1e6


Decoder = Callable[[bytes, str], object]


def decode_opencv(data: bytes, name: str) -> np.ndarray:
    """Plain decode: OpenCV to interleaved BGR pixels, nothing else."""
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


def decode_torchvision(data: bytes, name: str) -> torch.Tensor:
    """Decode with torchvision (the fast path's decoder before; deprecated in its 0.29)."""
    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB)


#: Plain decoding timed beside the loaders: ``opencv`` is the floor the fast path is held to;
#: ``fast_path`` is its own decoder (:func:`decode_tensor`: OpenCV + RGB planes); ``pil`` the
#: reference's.
DECODERS: dict[str, Decoder] = {"opencv": decode_opencv, "fast_path": decode_tensor,
                                "torchvision": decode_torchvision, "pil": decode_pil}  # fmt: skip


def decode_run(dataset: FrameDataset, decode: Decoder) -> tuple[float, float]:
    """Read and decode the training files in a plain loop (no DataLoader).

    Returns:
        ``(images/s, CPU us per image)``.
    """
    files = [str(dataset.image_path(i)) for i in range(len(dataset))]
    start, cpu_start = time.perf_counter(), time.process_time()
    for name in files:
        with open(name, "rb") as f:
            decode(f.read(), name)
    cpu = time.process_time() - cpu_start
    return len(files) / (time.perf_counter() - start), cpu / len(files) * 1e6


def bench_worker(roots: dict[str, Path], repeats: int, epochs: int) -> None:
    """Time each path through the training DataLoader (0 and 1 worker) and plain decoding."""
    torch.set_num_threads(1)
    for set_name, root in roots.items():
        loaders = {}
        for path in PATHS:
            for workers in (0, 1):
                loader = TimedLoader(datamodule(root, path, workers).train_dataloader())
                loader.run(1)  # the workers start (they persist), the page cache warms
                loaders[f"{path}/{workers}"] = loader
        dataset = datamodule(root, "device").dataset("train")
        decode_run(dataset, decode_tensor)  # every file in the page cache
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(repeats):  # interleaved, so load from others hits every figure alike
            for key, loader in loaders.items():
                runs.setdefault(key, []).append(loader.run(epochs))
            for name, decode in DECODERS.items():
                runs.setdefault(f"decode/{name}", []).append(decode_run(dataset, decode))
        report_worker(set_name, runs, epochs * len(dataset) // 128 * 128)
    torch.set_num_threads(psutil.cpu_count(logical=False) or 1)


def report_worker(set_name: str, runs: dict[str, list[tuple[float, float]]], images: int) -> None:
    """Emit each figure (medians and every repeat), then the ratios against the targets.

    Ratios are given on wall time (images/s) and on CPU time per image.
    """
    rate = {key: statistics.median(r for r, _ in values) for key, values in runs.items()}
    cpu = {key: statistics.median(c for _, c in values) for key, values in runs.items()}
    for key, values in runs.items():
        what, detail = key.split("/")
        record = {"benchmark": "worker_side", "set": set_name}
        if what == "decode":
            record |= {"decode": detail}
        else:
            record |= {"path": what, "workers": int(detail), "images_per_run": images}
        emit(record | {"img_per_s": rate[key], "us_per_img": 1e6 / rate[key],
                       "cpu_us_per_img": cpu[key],
                       "img_per_s_repeats": [round(r) for r, _ in values],
                       "cpu_us_per_img_repeats": [round(c) for _, c in values]})  # fmt: skip
    for workers in (0, 1):
        fast, ref, decode = f"device/{workers}", f"cpu/{workers}", "decode/opencv"
        emit({"benchmark": "worker_side_ratios", "set": set_name, "workers": workers,
              "speedup_device_over_cpu": rate[fast] / rate[ref],
              "device_time_over_decode_time": rate[decode] / rate[fast],
              "cpu_time_speedup_device_over_cpu": cpu[ref] / cpu[fast],
              "cpu_time_device_over_decode": cpu[fast] / cpu[decode],
              "targets": TARGETS})  # fmt: skip


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


def stack_shared(images: list[torch.Tensor]) -> torch.Tensor:
    """Stack into a new shared-memory tensor, as ``default_collate`` does in a worker process."""
    numel = sum(image.numel() for image in images)
    storage = images[0]._typed_storage()._new_shared(numel, device=images[0].device)
    out = images[0].new(storage).resize_(len(images), *images[0].shape)
    return torch.stack(images, out=out)


def bench_collate(repeats: int = 50) -> None:
    """Time stacking a batch of 128 112 px images into shared against ordinary memory."""
    images = [torch.randint(0, 256, (3, 112, 112), dtype=torch.uint8) for _ in range(128)]
    for name, stack in (("ordinary", torch.stack), ("shared", stack_shared)):
        for _ in range(3):
            stack(images)
        start = time.perf_counter()
        for _ in range(repeats):
            stack(images)
        per_image = (time.perf_counter() - start) / repeats / len(images) * 1e6
        emit({"benchmark": "collate", "memory": name, "batch": len(images),
              "image": "3x112x112 uint8", "us_per_image": per_image})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("data/synthetic_affwild2_benchmark"),
        help="Aff-Wild2-layout root (the synthetic set is generated if absent)",
    )
    parser.add_argument(
        "--photo-data",
        type=Path,
        default=Path("data/photo_crops_benchmark"),
        help="where the photo-like crops are (generated if absent)",
    )
    parser.add_argument("--only", default="worker,device,loader,collate,index")
    parser.add_argument("--repeats", type=int, default=5, help="worker side: runs per figure")
    parser.add_argument("--epochs", type=int, default=1, help="worker side: epochs per run")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--index-videos", type=int, default=548)
    parser.add_argument("--index-lines", type=int, default=2_600_000)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts & {"worker", "device", "loader"}:
        ensure_synthetic_affwild2(args.data, SyntheticSpec())
    if "worker" in parts:
        write_photo_crops(args.photo_data)
        roots = {"synthetic": args.data, "photo_crops": args.photo_data}
        bench_worker(roots, args.repeats, args.epochs)
    if "device" in parts:
        bench_device(args.data, repeats=5)
    if "loader" in parts:
        bench_loader(args.data, [int(n) for n in args.workers.split(",")], args.batches)
    if "collate" in parts:
        bench_collate()
    if "index" in parts:
        bench_index(args.index_videos, args.index_lines, workers=2)


if __name__ == "__main__":
    main()
