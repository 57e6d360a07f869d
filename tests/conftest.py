"""Shared fixtures: small Aff-Wild2 trees written on the fly."""

from __future__ import annotations

import io
import os

# Nothing in the tests reaches the Hugging Face Hub: offline before huggingface_hub is imported
# (it reads this once), for this process and the commands the tests run. The tests that fetch
# name a Hub on 127.0.0.1 (FakeHub) explicitly.
os.environ["HF_HUB_OFFLINE"] = "1"
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from PIL import Image

import fer_multires.schemas  # noqa: F401 - the typed configs, as the entry points register them
from fer_multires.data.labels import EXPRESSIONS_7, EXPRESSIONS_8
from fer_multires.tasks import AU_NAMES, VA_NAMES
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


#: The valence-arousal and action-unit folders (ABAW 2023 onward) and their header names.
TARGET_DIRS = {
    "va": ("VA_Estimation_Challenge", VA_NAMES),
    "au": ("AU_Detection_Challenge", AU_NAMES),
}


def write_targets(
    root: Path,
    annotation_set: str,
    split: str,
    video: str,
    rows: Sequence[str | Sequence[object]],
    frames: Iterable[int] | None = None,
    header: str | None = None,
    newline: str = "\n",
    bom: bool = False,
) -> Path:
    """Write one valence-arousal (``va``) or action-unit (``au``) file and its missing frames.

    ``rows`` are lines (text) or sequences of values; the frame folder gets ``frames`` (default
    one image per line), adding to any images already there. Returns the file.
    """
    task_dir, names = TARGET_DIRS[annotation_set]
    split_dir = "Train_Set" if split == "train" else "Validation_Set"
    folder = root / "annotations" / task_dir / split_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else ",".join(map(str, row)) for row in rows]
    text = newline.join([header if header is not None else ",".join(names), *lines]) + newline
    path = folder / f"{video}.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    frames = range(1, len(rows) + 1) if frames is None else list(frames)
    if frames:
        frame_dir = root / "cropped_aligned" / video
        frame_dir.mkdir(parents=True, exist_ok=True)
        for f in frames:
            if not (frame_dir / f"{f:05d}.jpg").exists():
                (frame_dir / f"{f:05d}.jpg").write_bytes(jpeg_bytes())
    return path


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


def write_task_annotations(
    root: Path, seed: int = 0, without: dict[str, str] | None = None
) -> Path:
    """Write valence-arousal and AU files for every video of an Aff-Wild2 tree's expressions.

    The values are random (about one frame in ten not annotated: ``-5,-5`` or ``-1``s), one line
    per expression line. ``without`` maps a video to the set (``va`` or ``au``) it lacks.
    """
    rng = np.random.default_rng(seed)
    expr_dir = root / "annotations" / LAYOUT_DIRS["abaw2"][0]
    for expr_file in sorted(expr_dir.glob("*/*.txt")):
        frames = len(expr_file.read_text().splitlines()) - 1
        split = "val" if expr_file.parent.name.startswith("Validation") else "train"
        for task in ("va", "au"):
            if (without or {}).get(expr_file.stem) == task:
                continue
            missing = rng.random(frames) < 0.1
            if task == "va":
                values = np.round(rng.uniform(-1, 1, (frames, 2)), 3)
                lines = [
                    "-5,-5" if m else f"{v:.3f},{a:.3f}"
                    for m, (v, a) in zip(missing, values, strict=True)
                ]
            else:
                units = rng.integers(0, 2, (frames, len(TARGET_DIRS["au"][1])))
                lines = [
                    ",".join("-1" if m else str(u) for u in row)
                    for m, row in zip(missing, units, strict=True)
                ]
            write_targets(root, task, split, expr_file.stem, lines, frames=[])
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


# Small enough for seconds on a CPU; 16 < the 24 px frames degrades; 32 is not below them, so it
# is not evaluated.
EVAL_ARGS = (
    "eval.resolutions=[8,16,32]",
    "eval.smoothing_windows=[3,5]",
    "trainer.enable_progress_bar=false",
)


def run_eval(ckpt: Path, out_dir: Path, *extra: str) -> dict:
    """Evaluate ``ckpt`` into ``out_dir`` through the entry point's ``evaluate(cfg)``."""
    from fer_multires.evaluate import evaluate

    overrides = [f"ckpt_path={ckpt}", f"run_dir={out_dir}", f"paths.root_dir={out_dir.parent}",
                 *EVAL_ARGS, *extra]  # fmt: skip
    return evaluate(compose_entry("eval", overrides, out_dir))


def compose_train(overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose the train entry point's config, with its output in ``run_dir``."""
    return compose_entry("train", overrides, run_dir)


def run_train(data_root: Path, tmp_path: Path, run_dir: Path, *extra: str):
    """Train through the entry point's ``train(cfg)`` with :func:`train_overrides` and ``extra``."""
    from fer_multires.train import train

    overrides = [*train_overrides(data_root, tmp_path), f"run_dir={run_dir}", *extra]
    return train(compose_train(overrides, run_dir))


# ------------------------------------------------------------------ predict and export (issue 11)


@dataclass(frozen=True)
class SharedRun:
    """The session's one trained and evaluated run, and what training returned.

    Attributes:
        run_dir: the run (``<run>/eval``: its end-of-training evaluation, with :data:`EVAL_ARGS`).
        data_root: its data: 4 training and 5 validation videos of 9 frames (45 validation
            frames, an odd number), 24 px.
        ckpt: its best checkpoint.
        train_metrics: what ``train`` returned.
        eval_after_fit: the ``EvalResults`` of the end-of-training evaluation.
    """

    run_dir: Path
    data_root: Path
    ckpt: Path
    train_metrics: dict
    eval_after_fit: Any


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """The run every integration test that needs a trained model reads (never writes into)."""
    import json

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = tmp_path_factory.mktemp("shared_run")
        data_root = make_image_tree(base / "data", train_videos=4, val_videos=5, frames=9)
        run_dir = base / "run"
        metrics, objects = run_train(data_root, base, run_dir, "eval_after_fit=true", *EVAL_ARGS)
    finally:
        torch.set_num_threads(threads)
    ckpt = Path(json.loads((run_dir / "metrics.json").read_text())["checkpoint"])
    return SharedRun(run_dir, data_root, ckpt, metrics, objects["eval"])


@pytest.fixture(scope="session")
def task_runs(tmp_path_factory: pytest.TempPathFactory):
    """A function ``task -> run directory``: a run of ``task=va|au|mtl`` trained for one epoch on
    24 px noise frames with random VA and AU annotations (one tree for all), trained and evaluated
    (``eval_after_fit``, :data:`EVAL_ARGS`: ``<run>/eval``) once per session on first use."""
    import torch

    base = tmp_path_factory.mktemp("task_runs")
    data_root = make_image_tree(base / "data", train_videos=4, val_videos=5, frames=9)
    write_task_annotations(data_root, without={"train_001": "au", "val_002": "va"})
    runs: dict[str, Path] = {}

    def run_of(task: str) -> Path:
        if task not in runs:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                run_train(data_root, base, base / task, f"task={task}", "eval_after_fit=true",
                          *EVAL_ARGS)  # fmt: skip
            finally:
                torch.set_num_threads(threads)
            runs[task] = base / task
        return runs[task]

    run_of.data_root = data_root  # type: ignore[attr-defined]
    return run_of


@pytest.fixture(scope="session")
def trained_run(shared_run: SharedRun) -> Path:
    """The shared run's directory (:func:`shared_run`)."""
    return shared_run.run_dir


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


# ------------------------------------------------------------- the Hugging Face cache (issue 26)


def write_hub_repo(
    cache: Path, repo_id: str, files: dict[str, bytes], commit: str = "c0ffee" * 6 + "c0de"
) -> Path:
    """Write a Hub repository into a Hugging Face cache as ``hf_hub_download`` leaves it.

    ``models--<org>--<repo>/blobs/<etag>`` (the sha256 for LFS files, weights; the git blob
    sha1 for the others), ``snapshots/<commit>/<file>`` symlinks to the blobs, and
    ``refs/main`` holding the commit hash.

    Returns:
        The snapshot folder.
    """
    import hashlib
    import os

    folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        if name.endswith((".safetensors", ".bin")):
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = folder / "blobs" / etag
        blob.write_bytes(data)
        pointer = snapshot / name
        pointer.unlink(missing_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


def timm_repo_files(model, architecture: str) -> dict[str, bytes]:
    """A timm-format repository's files for a model: ``config.json`` and ``model.safetensors``."""
    import json

    from safetensors.torch import save

    config = {"architecture": architecture, "num_classes": model.num_classes}
    return {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": save({k: v.contiguous() for k, v in model.state_dict().items()}),
    }


class FakeHub:
    """A Hugging Face Hub on 127.0.0.1 that serves repositories as the Hub's ``resolve`` URLs do.

    ``HEAD``/``GET /<org>/<repo>/resolve/<revision>/<file>`` answer with the headers
    ``hf_hub_download`` reads (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, sizes), or 404
    with the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``),
    so huggingface_hub's own code fetches, caches and raises as against the real Hub. Point it
    there with ``HF_ENDPOINT=<url>`` (a subprocess) or :meth:`patch` (this process).

    Attributes:
        repos: ``{repo_id: (commit, {file: bytes})}``.
        requests: the paths asked for, in order.
    """

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hub = self
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                hub.requests.append(self.path)
                status, headers, data = hub.resolve(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def resolve(self, path: str) -> tuple[int, dict[str, str], bytes]:
        import hashlib
        from urllib.parse import unquote

        parts = unquote(path).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "not found"}, b""
        commit, files = self.repos[repo_id]
        if revision not in ("main", commit):
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        data = files[filename]
        etag = hashlib.sha256(data).hexdigest()
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                     "X-Linked-Size": str(len(data))}, data  # fmt: skip

    def patch(self, monkeypatch) -> None:
        """Point this process's huggingface_hub at the fake Hub, online."""
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "ENDPOINT", self.url)
        template = self.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub():
    """A :class:`FakeHub` for one test."""
    hub = FakeHub()
    yield hub
    hub.close()
