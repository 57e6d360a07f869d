"""Checkpoints: finding them (a file, ``last`` of a run, a run's best) and reading what they hold.

Every entry point that takes ``ckpt_path`` resolves it here, so a missing or foreign checkpoint
gives the same error, naming the key and the file, wherever it is passed.
"""

from __future__ import annotations

import errno
import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from fer_multires.results import METRICS_FILE, ResultsError, load_training_results

log = logging.getLogger(__name__)

#: Folder of a run directory that holds its checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: The checkpoint refreshed after every validation; what ``ckpt_path=last`` resumes from.
LAST_CHECKPOINT = "last.ckpt"


def require_checkpoint(path: str | Path, key: str = "ckpt_path") -> Path:
    """Return ``path`` if it is a checkpoint file.

    Raises:
        FileNotFoundError: naming ``key`` and the file, if it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: checkpoint {path} does not exist")
    return path


def last_checkpoint(run_dir: Path, key: str = "ckpt_path") -> Path:
    """Return ``<run dir>/checkpoints/last.ckpt``, the checkpoint to resume a run from.

    Raises:
        FileNotFoundError: if the run has none; resuming never silently becomes a fresh start.
    """
    path = Path(run_dir) / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}=last: nothing to resume, {path} does not exist. Pass the directory "
            "of the run to resume as run_dir=<dir> (its path is printed when a run starts)"
        )
    return path


def best_checkpoint_of_run(run_dir: Path) -> Path | None:
    """Return the best checkpoint a finished run names in its ``metrics.json``, if it exists.

    The recorded path is tried in the run's ``checkpoints/`` first, so a run directory that was
    moved or copied still finds its checkpoint.
    """
    try:
        recorded = load_training_results(run_dir).checkpoint
    except ResultsError:
        return None
    if not recorded:
        return None
    for candidate in (Path(run_dir) / CHECKPOINTS_DIR / Path(recorded).name, Path(recorded)):
        if candidate.is_file():
            return candidate
    return None


def resolve_checkpoint(path: str | Path, key: str = "ckpt_path") -> Path:
    """Return the checkpoint file to use: ``path``, or a training run directory's best checkpoint.

    Raises:
        FileNotFoundError: if the file does not exist, or the run directory names no checkpoint
            that exists.
    """
    path = Path(path)
    if path.is_dir():
        best = best_checkpoint_of_run(path)
        if best is None:
            raise FileNotFoundError(
                f"{key}: {path} is a directory without a {METRICS_FILE} naming an existing best "
                "checkpoint (an unfinished run?); pass a checkpoint file, e.g. "
                f"{path / CHECKPOINTS_DIR / LAST_CHECKPOINT}"
            )
        log.info("%s: %s is a run directory; its best checkpoint: %s", key, path, best)
        return best
    return require_checkpoint(path, key)


def checkpoint_class_names(ckpt_path: str | Path, key: str = "ckpt_path") -> list[str]:
    """Read the class names a checkpoint was trained for.

    Raises:
        FileNotFoundError: if the checkpoint does not exist.
        ValueError: if it is not a fer_multires checkpoint.
    """
    path = require_checkpoint(ckpt_path, key)
    checkpoint = load_intact_checkpoint(path, key)
    try:
        return list(checkpoint["hyper_parameters"]["class_names"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{key}: {path} is not a fer_multires checkpoint ({err})") from err


#: What ``torch.load`` raises for a truncated or damaged file.
_DAMAGED = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)


class CorruptCheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, damaged)."""


def load_intact_checkpoint(path: Path, key: str = "ckpt_path") -> dict:
    """Load a checkpoint on the CPU.

    Raises:
        CorruptCheckpointError: naming the file and the newest intact checkpoint beside it
            (the one to resume from instead), if the file cannot be read.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (*_DAMAGED, OSError) as err:
        if isinstance(err, OSError) and not is_truncation(err):
            raise  # a missing or unreadable file, not a damaged one
        alternative = newest_intact_checkpoint(path.parent, exclude=path)
        advice = (
            f"the newest intact checkpoint beside it is {alternative}: pass ckpt_path={alternative}"
            if alternative
            else f"no other checkpoint in {path.parent} reads either"
        )
        raise CorruptCheckpointError(
            f"{key}: {path} is corrupt or truncated ({type(err).__name__}: {err}); {advice}"
        ) from err


def is_truncation(err: OSError) -> bool:
    """Whether ``torch.load``'s ``OSError`` means a damaged file.

    A file cut short makes the zip reader seek before the file's start (``EINVAL``).
    """
    return err.errno in (errno.EINVAL, None)


def newest_intact_checkpoint(folder: Path, exclude: Path | None = None) -> Path | None:
    """Return the most recently written ``*.ckpt`` in ``folder`` that loads, or None.

    A candidate that is not a readable file (a broken link, a folder named ``*.ckpt``, one
    without read permission) is passed over like a damaged one.
    """
    candidates = []
    for path in Path(folder).glob("*.ckpt"):
        if exclude is not None and path == exclude:
            continue
        try:
            if path.is_file():
                candidates.append((path.stat().st_mtime, path))
        except OSError:  # gone, or not stat-able, since it was listed
            continue
    for _, candidate in sorted(candidates, key=lambda c: c[0], reverse=True):
        try:
            torch.load(candidate, map_location="cpu", weights_only=False, mmap=True)
        except (*_DAMAGED, OSError):
            continue
        return candidate
    return None


def check_checkpoint_classes(
    ckpt_path: str | Path, class_names: Sequence[str], key: str = "ckpt_path"
) -> None:
    """Check that a checkpoint was trained for the data's classes.

    Raises:
        ValueError: naming both class lists if they differ.
    """
    trained = checkpoint_class_names(ckpt_path, key)
    if list(trained) != list(class_names):
        raise ValueError(
            f"{key}: {ckpt_path} was trained for {len(trained)} classes ({', '.join(trained)}) "
            f"but the data has {len(class_names)} ({', '.join(class_names)})"
        )


def run_config_of(ckpt_path: Path) -> Path | None:
    """Return the ``config.yaml`` of the run a checkpoint belongs to, or None.

    Looked for in the parent of the checkpoint's folder (``<run>/checkpoints/x.ckpt``), then in
    the checkpoint's own folder.
    """
    folder = Path(ckpt_path).resolve().parent
    for candidate in (folder.parent / "config.yaml", folder / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


#: The prefix ``torch.compile`` gives the state-dict keys of a module it wraps (OptimizedModule).
COMPILE_PREFIX = "_orig_mod."


def strip_compile_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` with every ``_orig_mod.`` of ``torch.compile`` removed from its keys.

    fer_multires compiles in place (``nn.Module.compile``), which keeps the eager keys; this makes
    checkpoints of a model wrapped with ``torch.compile(model)`` (``model._orig_mod.conv1.weight``)
    load into an eager one, and keeps such keys out of the checkpoints written. The order of the
    keys is kept; a state dict without the prefix is returned as it is.
    """
    if not any(COMPILE_PREFIX in key for key in state_dict):
        return state_dict
    return type(state_dict)((key.replace(COMPILE_PREFIX, ""), v) for key, v in state_dict.items())
