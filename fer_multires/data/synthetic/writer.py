"""Writing the synthetic set: annotation files, frame folders and the manifest."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.affwild2 import (
    ANNOTATIONS_DIR,
    AU_LAYOUT,
    EXPR_SET_LAYOUT,
    FRAMES_DIR,
    VA_LAYOUT,
    Layout,
)
from fer_multires.data.synthetic import faces, plan
from fer_multires.data.synthetic.affect import VA_DECIMALS
from fer_multires.data.synthetic.spec import (
    SKIP_KEYS,
    SPLITS,
    STREAM_DYNAMICS,
    STREAM_FRAME,
    STREAM_IDENTITY,
    SyntheticSpec,
    make_rng,
)
from fer_multires.tasks import VA_MISSING

log = logging.getLogger(__name__)

#: Name of the manifest written at the dataset root.
MANIFEST_NAME = "SYNTHETIC.json"

# The default spec: a frozen dataclass, so one instance can serve as the default argument.
_DEFAULT_SPEC = SyntheticSpec()


def _write_annotation(
    root: Path, layout: Layout, video: plan.Video, lines: list[str], newline: str = "\n"
) -> None:
    """Write one annotation file of ``video`` (header first) in ``layout``'s split folder."""
    split = next(name for name, _, sid in SPLITS if sid == video.split_id)
    path = root.joinpath(ANNOTATIONS_DIR, layout.task_dir, layout.split_dirs[split])
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{video.name}.txt").write_bytes((newline.join(lines) + newline).encode("ascii"))


def _va_line(row: np.ndarray) -> str:
    return ",".join(f"{VA_MISSING:g}" if v == VA_MISSING else f"{v:.{VA_DECIMALS}f}" for v in row)


def _write_video(root: Path, video: plan.Video, spec: SyntheticSpec) -> None:
    if video.labels is not None:
        lines = [",".join(EXPRESSIONS_7), *(str(int(v)) for v in video.labels)]
        _write_annotation(root, EXPR_SET_LAYOUT, video, lines)
    newline = "\r\n" if video.crlf else "\n"
    if video.va is not None:
        lines = [",".join(VA_LAYOUT.classes), *(_va_line(row) for row in video.va)]
        _write_annotation(root, VA_LAYOUT, video, lines, newline)
    if video.au is not None:
        lines = [",".join(AU_LAYOUT.classes), *(",".join(map(str, row)) for row in video.au)]
        _write_annotation(root, AU_LAYOUT, video, lines, newline)
    if not video.has_folder:
        return
    folder = root / FRAMES_DIR / video.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in video.extra_files.items():
        (folder / name).write_bytes(data)
    seed, sid, key = spec.seed, video.split_id, video.key
    ident = faces.make_identity(make_rng(seed, sid, key, STREAM_IDENTITY))
    n = len(video.expression)
    dynamics = faces.video_dynamics(make_rng(seed, sid, key, STREAM_DYNAMICS), n)
    background = faces.draw_background(ident, 2 * spec.image_size)
    for i in range(n):
        if i in video.missing:
            continue
        cond = faces.frame_condition(dynamics, i, make_rng(seed, sid, key, STREAM_FRAME, i))
        image = faces.render(
            ident,
            int(video.expression[i]),
            float(video.intensity[i]),
            cond,
            spec.image_size,
            background,
        )
        image.save(
            folder / f"{i + 1:05d}.jpg",
            format="JPEG",
            quality=cond.jpeg_quality,
            subsampling=2,  # 4:2:0
            optimize=False,
            progressive=False,
        )


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def generate_synthetic_affwild2(root: str | Path, spec: SyntheticSpec = _DEFAULT_SPEC) -> dict:
    """Generate the synthetic dataset into ``root``.

    Everything is written into a temporary sibling folder that is renamed to ``root`` at the end,
    so an interrupted run leaves no half-written dataset behind.

    Args:
        root: dataset folder to create; it must not exist or be empty.
        spec: what to generate.

    Returns:
        The manifest, also written to ``root/SYNTHETIC.json``: ``{"spec": ..., "splits": {"train":
        {"videos", "frames", "per_class", "skipped"}, "val": {...}}, "skipped": {...}, "va":
        {...}, "au": {...}}``, where ``frames`` counts the included frames (image on disk, a
        label line, label 0..6), ``per_class`` splits them by class, ``videos`` counts the videos
        with at least one, and ``skipped`` (per split, and summed over the splits at the top
        level) counts ``invalid_label``, ``missing_frame``, ``beyond_labels`` and
        ``videos_without_frames``. ``va`` and ``au`` hold the same per-split counts for the
        valence-arousal and action-unit files (what ``task=va`` and ``task=au`` read), with the
        mean valence and arousal, and the positives of each unit (see
        :func:`~fer_multires.data.synthetic.plan.count_affect`).

    Raises:
        FileExistsError: if ``root`` exists and is not an empty folder.
        ValueError: if the spec is invalid.
    """
    root = Path(root)
    spec.validate()
    if root.exists() and not _is_empty_dir(root):
        raise FileExistsError(f"{root} already exists and is not empty")
    start = time.perf_counter()
    videos = plan.plan_videos(spec)
    splits = plan.count(videos)
    manifest = {
        "spec": spec.to_dict(),
        "splits": splits,
        "skipped": {k: sum(s["skipped"][k] for s in splits.values()) for k in SKIP_KEYS},
        **plan.count_affect(videos),
    }
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    try:
        for video in videos:
            _write_video(tmp, video, spec)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if _is_empty_dir(root):
            root.rmdir()
        try:
            os.replace(tmp, root)
        except OSError as err:
            if root.exists() and not _is_empty_dir(root):
                # Another process filled root while this one was writing.
                raise FileExistsError(f"{root} was created by someone else meanwhile") from err
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "generated a synthetic Aff-Wild2 set at %s: %d frames (%d train, %d val) in %.1f s",
        root,
        sum(s["frames"] for s in splits.values()),
        splits["train"]["frames"],
        splits["val"]["frames"],
        time.perf_counter() - start,
    )
    return manifest


def require_synthetic_targets(root: str | Path) -> None:
    """Check that a synthetic set holds the valence-arousal and AU files (sets made since).

    Raises:
        ValueError: naming the folder to delete, for a set generated before those files existed
            (its expression files and images are the same as a new set's).
    """
    manifest = json.loads((Path(root) / MANIFEST_NAME).read_text(encoding="utf-8"))
    if "va" not in manifest or "au" not in manifest:
        raise ValueError(
            f"data.root: {root} holds a synthetic set generated before the valence-arousal and "
            f"action-unit labels; delete {root} and it is generated again, with them (its "
            "expression files and images come out the same)"
        )


def ensure_synthetic_affwild2(root: str | Path, spec: SyntheticSpec = _DEFAULT_SPEC) -> bool:
    """Generate the synthetic dataset into ``root`` unless it is already there.

    Args:
        root: dataset folder.
        spec: what it must hold.

    Returns:
        True if the dataset was generated, False if ``root`` already held it.

    Raises:
        ValueError: if ``root`` holds a synthetic set generated with another spec, or the spec is
            invalid.
        FileExistsError: if ``root`` is not empty and holds no synthetic set.
    """
    root = Path(root)
    spec.validate()
    manifest_path = root / MANIFEST_NAME
    if manifest_path.is_file():
        try:
            stored = json.loads(manifest_path.read_text(encoding="utf-8"))["spec"]
            if not isinstance(stored, dict):
                raise TypeError("its spec is not a mapping")
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{manifest_path} is not a readable synthetic manifest ({err}); "
                f"delete {root} or point data.root at another folder"
            ) from err
        wanted = spec.to_dict()
        names = [f.name for f in fields(SyntheticSpec)]
        differ = [
            f"{name} (stored {stored.get(name)!r}, requested {wanted[name]!r})"
            for name in names
            if stored.get(name) != wanted[name]
        ]
        if differ:
            raise ValueError(
                f"{root} holds a synthetic set generated with another spec; differing fields: "
                f"{'; '.join(differ)}. Point data.root at another folder or delete {root}."
            )
        log.info("using the synthetic Aff-Wild2 set at %s", root)
        return False
    if root.exists() and not _is_empty_dir(root):
        raise FileExistsError(f"{root} is not empty and is not a synthetic dataset")
    try:
        generate_synthetic_affwild2(root, spec)
    except FileExistsError:
        if manifest_path.is_file():  # another process generated it meanwhile: check its spec
            return ensure_synthetic_affwild2(root, spec)
        raise
    return True
