"""The inputs of ``predict``: an image, a folder of images and videos, or a video.

Images are read whole (with their EXIF orientation applied, as a photo viewer shows them); videos
are streamed frame by frame with OpenCV, so a video is never held in memory, and frames that are
not classified (``every_n_frames``) are skipped without being converted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_multires.data.datasets import rgb_image

log = logging.getLogger(__name__)

#: File name endings read as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: File name endings read as videos (anything OpenCV's FFmpeg backend opens).
VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
)  # fmt: skip


class UnreadableSourceError(OSError):
    """An image that cannot be decoded, or a video that cannot be opened."""


@dataclass(frozen=True)
class Source:
    """One input file.

    Attributes:
        path: the file.
        name: how it is named in the outputs: relative to the input folder, or the file name.
        is_video: whether it is read as a video.
    """

    path: Path
    name: str
    is_video: bool


def kind_of(path: Path) -> str | None:
    """Return ``image`` or ``video`` by the file name's ending, or None for other files."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def collect_sources(input_path: str | Path, key: str = "input") -> list[Source]:
    """Return the inputs named by ``input``: one file, or a folder's images and videos.

    A folder is searched recursively, in sorted order; its files that are neither images nor
    videos are counted and logged, not read.

    Raises:
        FileNotFoundError: naming ``key``, if the path does not exist.
        ValueError: naming ``key``, for a file that is neither an image nor a video, or a
            folder without any.
    """
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"{key}: {path} does not exist")
    if path.is_file():
        kind = kind_of(path)
        if kind is None:
            raise ValueError(
                f"{key}: {path} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a video "
                f"({', '.join(VIDEO_SUFFIXES)})"
            )
        return [Source(path, path.name, kind == "video")]
    files = sorted(p for p in path.rglob("*") if p.is_file())
    sources = [
        Source(p, p.relative_to(path).as_posix(), kind_of(p) == "video")
        for p in files
        if kind_of(p) is not None
    ]
    ignored = len(files) - len(sources)
    if not sources:
        raise ValueError(
            f"{key}: the folder {path} holds no image ({', '.join(IMAGE_SUFFIXES)}) or video "
            f"({', '.join(VIDEO_SUFFIXES)})" + (f"; {ignored} other files" if ignored else "")
        )
    if ignored:
        log.info("%s: %d files that are neither images nor videos are not read", path, ignored)
    return sources


def read_image(path: Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array, upright (EXIF orientation applied).

    As in training, a 16-bit grayscale image keeps its high byte (:func:`rgb_image`).

    Raises:
        UnreadableSourceError: with the reason, if it cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(rgb_image(ImageOps.exif_transpose(img)))
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise UnreadableSourceError(f"{path}: cannot read image: {err}") from err


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV says about a video before it is read.

    Attributes:
        fps: frames per second (25 when the container does not say).
        frame_count: the container's frame count (0 when unknown; an estimate for some codecs).
        width: frame width.
        height: frame height.
    """

    fps: float
    frame_count: int
    width: int
    height: int


def open_video(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video with OpenCV.

    Raises:
        UnreadableSourceError: if OpenCV cannot open it or read its first frame.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise UnreadableSourceError(f"{path}: OpenCV cannot open the video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        fps=fps if fps and fps > 0 else 25.0,
        frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    return capture, info


def iter_video(path: Path, every_n_frames: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a video's frames ``0, n, 2n, ...`` as ``(frame number, (H, W, 3) uint8 RGB)``.

    One frame is decoded at a time; the frames in between are grabbed (demuxed and decoded by
    the codec as it must) but not converted.

    Raises:
        UnreadableSourceError: if the video cannot be opened or yields no frame at all.
    """
    capture, _ = open_video(path)
    try:
        frame_number = 0
        while True:
            if frame_number % every_n_frames == 0:
                ok, frame = capture.read()
                if not ok:
                    break
                yield frame_number, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            elif not capture.grab():
                break
            frame_number += 1
        if frame_number == 0:
            raise UnreadableSourceError(f"{path}: OpenCV opened the video but read no frame")
    finally:
        capture.release()


def iter_frames(source: Source, every_n_frames: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield a source's frames: an image as frame 0, a video streamed (see :func:`iter_video`).

    Raises:
        UnreadableSourceError: for an image that cannot be decoded or a video that cannot be
            opened.
    """
    if source.is_video:
        yield from iter_video(source.path, every_n_frames)
    else:
        yield 0, read_image(source.path)
