"""Checkpoint files that are never half-written, and output folders checked before the work.

Lightning 2.6's ``TorchCheckpointIO`` writes through an fsspec transaction: on a local disk the
bytes go to a temporary file in the system temp folder (``/tmp``) that is then *moved* to the
target. When ``/tmp`` and the run directory are on different file systems the move is a copy,
which a full disk or a kill leaves truncated, and its ``_atomic_save`` swallows a
``PermissionError`` (so a read-only ``checkpoints/`` folder trains to the end without a word).
:class:`AtomicCheckpointIO` writes the temporary file beside its target, fsyncs it, renames it
over the target and fsyncs the folder; every error propagates.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from fer_multires.utils.io import (
    OutputWriteError,
    atomic_output,
    write_error_in,
    write_failure,
)

log = logging.getLogger(__name__)


def is_local_path(path: str | os.PathLike[str]) -> bool:
    """Return whether ``path`` is on the local file system (a plain path or ``file://``)."""
    text = str(path)
    return "://" not in text or text.startswith("file://")


def local_path(path: str | os.PathLike[str]) -> Path:
    """Return the local path of a plain path or a ``file://`` URL."""
    text = str(path)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CheckpointWriteError(OutputWriteError):
    """A checkpoint could not be written (a full disk, a quota, a file-size limit)."""


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` through a synced temporary file beside it and a rename.

    A crash, a kill or a full disk during the write leaves the previous file as it was.

    Raises:
        CheckpointWriteError: naming the file, the system's reason and the free space, when
            the write fails (``torch.save`` reports a full disk as an ``inline_container.cc``
            error whose cause is the ``OSError``).
    """
    path = Path(path)
    try:
        with atomic_output(path, binary=True) as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as err:
        cause = write_error_in(err)
        if cause is None:
            raise  # e.g. a PermissionError, which names its file already
        then = "then resume with ckpt_path=last" if path.exists() else "then run again"
        raise CheckpointWriteError(
            cause.errno, write_failure(path, cause, then, "cannot save the checkpoint")
        ) from err
    fsync_dir(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with an atomic, synced save that never hides an error.

    Local paths are written by :func:`save_torch_atomic`. Other fsspec paths are uploaded in
    one ``pipe`` call: object stores (S3, GCS, Azure) make an object visible only once it is
    complete, so a failed upload leaves the previous checkpoint in place.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        """Save ``checkpoint`` to ``path`` atomically.

        Raises:
            TypeError: if ``storage_options`` is given (as Lightning's own IO).
            OSError: if the file cannot be written; the previous file is left as it was.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        if is_local_path(path):
            save_torch_atomic(checkpoint, local_path(path))
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        fs, url = fsspec.core.url_to_fs(str(path))
        fs.makedirs(os.path.dirname(url), exist_ok=True)
        fs.pipe(url, buffer.getvalue())


def require_writable_dir(folder: str | Path, key: str) -> Path:
    """Create ``folder`` if needed and check that files can be created in it.

    Called before the work, so a read-only output folder fails at once rather than after
    hours of training or evaluation.

    Raises:
        PermissionError: naming ``key`` and the folder, if it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write_check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"{key}: cannot write into {folder} ({err.strerror or err}); make it writable or "
            "choose another folder"
        ) from err
    return folder
