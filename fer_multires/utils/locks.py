"""A folder held by one process at a time: an advisory lock file that names its holder.

:class:`FolderLock` takes an exclusive ``flock`` on a file in the folder and writes who holds it
(host, process id, start time, command, Slurm job) into that file. The operating system releases
the lock when the holder exits, however it exits (``kill -9`` and crashes included), so a lock
never outlives its process. On NFS (v3 with ``lockd``, v4) Linux carries ``flock`` over the
network as a whole-file POSIX lock, so two nodes of a cluster sharing the folder exclude each
other; a node that dies loses its lock when the server's lease expires.

Where the file system has no locks at all (``ENOLCK``, ``EOPNOTSUPP``; e.g. Lustre mounted
without ``-o flock``), the file's content is the lock: a holder on this host whose process is
gone is taken over, one on another host is refused with the file to delete once that job is
gone. A released lock leaves the file empty.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``flock``'s errors that mean the file system has no locks (rather than a held lock).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class FolderBusyError(RuntimeError):
    """The folder is held by another process (named in the message)."""


def holder_record() -> dict[str, Any]:
    """Describe this process: host, process id, start time, command line, Slurm job."""
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command_line(),
    }
    if job := os.environ.get("SLURM_JOB_ID"):
        record["slurm_job"] = job
    return record


def command_line() -> str:
    """This process's command line as it was typed (``python -m pkg.mod ...`` for a module)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name] if spec is not None else sys.argv[:1]
    return " ".join([os.path.basename(sys.executable), *program, *sys.argv[1:]])


def describe_holder(record: dict[str, Any] | None) -> str:
    """One line naming a holder, e.g. ``process 4242 on node7 (Slurm job 99) since ...``."""
    if not record:
        return "another process (it has not written its name yet)"
    job = f" (Slurm job {record['slurm_job']})" if record.get("slurm_job") else ""
    return (
        f"process {record.get('pid')} on {record.get('host')}{job} since {record.get('started')}: "
        f"{record.get('command')}"
    )


def read_holder(fd: int) -> dict[str, Any] | None:
    """Read the holder record from an open lock file, or None if it is empty or unreadable."""
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def current_holder(path: str | Path) -> dict[str, Any] | None:
    """Return the record of the process holding the lock file ``path``, or None if none does.

    Only looks: a shared lock is tried and let go at once, and nothing is written. Where the
    file system has no locks, the record in the file is believed.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return read_holder(fd) or {}
            return read_holder(fd) if err.errno in _NO_LOCKS else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive hold on a folder through its lock file; a context manager.

    Args:
        path: the lock file (created with its folder when missing).
        what: what the folder is, for messages (e.g. ``run_dir=/x/y``).
        advice: what to do when the folder is busy, appended to the error.
    """

    def __init__(self, path: str | Path, what: str, advice: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self.advice = advice
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock, or fail at once naming its holder.

        Raises:
            FolderBusyError: if another process holds it.
            OSError: if the lock file cannot be created.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = read_holder(fd)
                os.close(fd)
                raise self.busy(holder) from None
            if err.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            self._take_without_locks(fd)
        self._fd = fd
        self._write(json.dumps(holder_record()) + "\n")
        return self

    def busy(self, holder: dict[str, Any] | None) -> FolderBusyError:
        """The error for a folder held by ``holder``."""
        advice = f"; {self.advice}" if self.advice else ""
        return FolderBusyError(
            f"{self.what} is in use by {describe_holder(holder)} (lock file {self.path}){advice}"
        )

    def _take_without_locks(self, fd: int) -> None:
        """Take the lock where the file system has none: by the holder record alone."""
        holder = read_holder(fd)
        log.warning("%s: the file system has no locks; the holder is read from the file", self.path)
        if not holder:
            return
        here = holder.get("host") == socket.gethostname()
        if here and not process_alive(int(holder.get("pid", -1))):
            log.warning("%s: its holder (%s) is gone; taking it over", self.path,
                        describe_holder(holder))  # fmt: skip
            return
        os.close(fd)
        raise FolderBusyError(
            f"{self.what} is in use by {describe_holder(holder)} (lock file {self.path}; this "
            "file system has no locks: if that process is gone, delete the file)"
        )

    def _write(self, text: str) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def release(self) -> None:
        """Empty the lock file and release the lock (nothing if it is not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
