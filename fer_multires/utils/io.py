"""Files: output that never leaves a half-written file behind, and tolerant readers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml


def current_umask() -> int:
    """Return the process's umask (reading it requires setting it; it is restored at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What to do about a write the system refused, by its ``errno``.
WRITE_ADVICE = {
    errno.ENOSPC: "free space on that file system",
    errno.EDQUOT: "free space within your quota, or raise it",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
}


class OutputWriteError(OSError):
    """An output the system refused to write: a full disk, a quota, a file-size limit.

    The message names the file, the free space and what to do.
    """


def write_error_in(err: BaseException) -> OSError | None:
    """Return the system's refusal of a write behind ``err`` (it, its cause or its context).

    Only the errors of :data:`WRITE_ADVICE` count (a ``PermissionError`` names its file
    already); libraries that wrap them (``torch.save``: ``inline_container.cc``) are seen
    through, and an :class:`OutputWriteError` is passed over for the error it explains.
    """
    seen: BaseException | None = err
    while seen is not None:
        if (
            isinstance(seen, OSError)
            and not isinstance(seen, OutputWriteError)
            and seen.errno in WRITE_ADVICE
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def write_failure(path: Path, cause: OSError, then: str, what: str = "cannot write") -> str:
    """Say what happened to a write, where, with the free space, and what to do then.

    Args:
        path: the file that was being written.
        cause: the system's error.
        then: the step after fixing the cause (e.g. ``then run again``).
        what: the message's opening (e.g. ``cannot save the checkpoint``).
    """
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free in {path.parent}"
    except OSError:
        free = f"free space in {path.parent} unknown"
    kept = f"the previous {path.name} is kept as it was" if path.exists() else "nothing was kept"
    advice = WRITE_ADVICE.get(cause.errno, "fix the cause")
    return f"{what} {path}: {cause.strerror or cause} ({free}); {kept}: {advice}, {then}"


@contextmanager
def atomic_output(path: str | Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success, rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Raises:
        OutputWriteError: naming ``path`` and the free space, when the system refuses the
            write (a full disk, a quota, a file-size limit); its cause is the system's error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; use the usual mode
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OutputWriteError) or err.errno not in WRITE_ADVICE:
            raise
        raise OutputWriteError(err.errno, write_failure(path, err, "then run again")) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` inside the block, so its cleanup runs.

    SIGTERM's default action ends the process at once, leaving what a ``finally`` would remove
    (a temporary file); inside the block it raises instead, as SIGINT raises
    ``KeyboardInterrupt``. The previous handler is restored after. Outside the main thread
    (where no handler can be set) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def printable_name(text: str) -> str:
    r"""Return ``text`` as valid UTF-8, each byte of a non-UTF-8 file name escaped as ``\xNN``.

    A file name that is not UTF-8 reaches Python with each such byte as a lone surrogate
    (:func:`os.fsdecode`), which no UTF-8 file or terminal takes; the byte is written as the
    escape ``\xNN`` instead (``b"caf\xe9.jpg"`` becomes ``caf\xe9.jpg``), so the name stays
    readable and tells which bytes it had. Valid text is returned as it is.
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_output(path) as f:
        f.write(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def save_npz_atomic(path: str | Path, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Save arrays as ``.npz`` (``compressed``: deflated) through a temporary file and a rename."""
    with atomic_output(path, binary=True) as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def read_json(path: str | Path) -> Any:
    """Return the parsed JSON file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_yaml(path: str | Path) -> Any:
    """Return the parsed YAML file, or None when it is missing or unreadable."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def read_lines(path: Path) -> list[str]:
    """Return the file's lines, or ``[]`` when it is missing."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
