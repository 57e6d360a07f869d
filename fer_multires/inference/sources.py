"""The inputs of ``predict``: an image, a folder of images and videos, or a video.

Images are read whole (with their EXIF orientation applied, as a photo viewer shows them); videos
are streamed frame by frame with OpenCV, so a video is never held in memory, and frames that are
not classified (``every_n_frames``) are skipped without being converted.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from fer_multires.data.datasets import rgb_image
from fer_multires.utils.io import printable_name

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
        name: how it is named in the outputs: relative to the input folder, or the file name,
            in :func:`printable_name`'s form.
        is_video: whether it is read as a video.
    """

    path: Path
    name: str
    is_video: bool


@dataclass(frozen=True)
class Inputs:
    """The inputs of ``predict``.

    Attributes:
        sources: the images and videos, in sorted order (entries that are not regular files
            included: reading them reports why they are unreadable).
        not_read: entries of the input folder that are neither images nor videos.
    """

    sources: list[Source] = field(default_factory=list)
    not_read: int = 0


def source_of(path: Path, name: str) -> Source:
    """Return the source of an image or video file, named ``name`` in the outputs."""
    return Source(path, printable_name(name), kind_of(path) == "video")


def kind_of(path: Path) -> str | None:
    """Return ``image`` or ``video`` by the file name's ending, or None for other files."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def collect_sources(input_path: str | Path, key: str = "input") -> Inputs:
    """Return the inputs named by ``input``: one file, or a folder's images and videos.

    A folder is searched recursively, in sorted order. An entry named as an image or a video is
    a source even if it is not a regular file (a broken link, a FIFO): it is reported
    unreadable. The other entries (not folders) are counted in :attr:`Inputs.not_read` and
    logged, not read.

    Raises:
        FileNotFoundError: naming ``key``, if the path does not exist.
        ValueError: naming ``key``, for a file that is neither an image nor a video, or a
            folder without any.
    """
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"{key}: {path} does not exist")
    if path.is_file():
        if kind_of(path) is None:
            raise ValueError(
                f"{key}: {path} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a video "
                f"({', '.join(VIDEO_SUFFIXES)})"
            )
        return Inputs([source_of(path, path.name)])
    entries = sorted(p for p in path.rglob("*") if not p.is_dir())
    sources = [
        source_of(p, p.relative_to(path).as_posix()) for p in entries if kind_of(p) is not None
    ]
    not_read = len(entries) - len(sources)
    if not sources:
        raise ValueError(
            f"{key}: the folder {path} holds no image ({', '.join(IMAGE_SUFFIXES)}) or video "
            f"({', '.join(VIDEO_SUFFIXES)})" + (f"; {not_read} other files" if not_read else "")
        )
    if not_read:
        log.warning("%s: %d entries that are neither images nor videos are not read",
                    printable_name(str(path)), not_read)  # fmt: skip
    return Inputs(sources, not_read)


def check_regular_file(path: Path) -> None:
    """Check that ``path`` is a regular file (or a link to one) before it is opened.

    Raises:
        UnreadableSourceError: saying what it is instead (a broken link, a FIFO, ...); a FIFO
            is never opened, which would wait for a writer.
    """
    if path.is_file():
        return
    if path.is_symlink() and not path.exists():
        reason = f"a broken symbolic link (to {os.readlink(path)})"
    elif path.exists() and stat.S_ISFIFO(path.stat().st_mode):
        reason = "a FIFO (named pipe), not a regular file"
    else:
        reason = "not a regular file"
    raise UnreadableSourceError(f"{path}: cannot read: {reason}")


def read_image(path: Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array, upright (EXIF orientation applied).

    As in training, a 16-bit grayscale image keeps its high byte (:func:`rgb_image`).

    Raises:
        UnreadableSourceError: with the reason, if it cannot be decoded or has more pixels than
            PIL's decompression-bomb limit (twice ``Image.MAX_IMAGE_PIXELS``), as in training.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(rgb_image(ImageOps.exif_transpose(img)))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
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


@dataclass
class FrameTally:
    """How much of a video was read, filled in by :func:`iter_video` as it streams.

    Attributes:
        read: frames read from the stream (classified or skipped).
        announced: the frame count the container gives (0 when unknown; an estimate for some
            codecs, so fewer frames read is noted, not an error).
    """

    read: int = 0
    announced: int = 0

    @property
    def short(self) -> bool:
        """Whether the stream ended before the container's frame count (a cut-off file?)."""
        return self.read < self.announced

    def note(self) -> str:
        """Return the note for ``sources.csv``: empty unless :attr:`short`."""
        if not self.short:
            return ""
        return (f"{self.read} of the {self.announced} frames the container announces were "
                "read: the file may be cut off")  # fmt: skip


def iter_video(
    path: Path, every_n_frames: int = 1, tally: FrameTally | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a video's frames ``0, n, 2n, ...`` as ``(frame number, (H, W, 3) uint8 RGB)``.

    One frame is decoded at a time; the frames in between are grabbed (demuxed and decoded by
    the codec as it must) but not converted.

    Args:
        path: the video.
        every_n_frames: yield every n-th frame.
        tally: if given, filled in with the frames read and the container's frame count.

    Raises:
        UnreadableSourceError: if the video cannot be opened or yields no frame at all.
    """
    tally = FrameTally() if tally is None else tally
    capture, info = open_video(path)
    tally.announced = info.frame_count
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
        tally.read = frame_number
        if frame_number == 0:
            raise UnreadableSourceError(f"{path}: OpenCV opened the video but read no frame")
    finally:
        capture.release()


def iter_frames(
    source: Source, every_n_frames: int = 1, tally: FrameTally | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield a source's frames: an image as frame 0, a video streamed (see :func:`iter_video`).

    Raises:
        UnreadableSourceError: for an entry that is not a regular file, an image that cannot be
            decoded or a video that cannot be opened.
    """
    check_regular_file(source.path)
    if source.is_video:
        yield from iter_video(source.path, every_n_frames, tally)
    else:
        yield 0, read_image(source.path)
