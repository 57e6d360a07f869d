"""Checkpoint files: reading what they hold, intact or not, and their classes.

Finding a run's checkpoint (``last``, its best) is :mod:`fer_multires.runs`'.
"""

from __future__ import annotations

import errno
import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def require_checkpoint(path: str | Path, key: str = "ckpt_path") -> Path:
    """Return ``path`` if it is a checkpoint file.

    Raises:
        FileNotFoundError: naming ``key`` and the file, if it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: checkpoint {path} does not exist")
    return path


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


def checkpoint_task(ckpt_path: str | Path, key: str = "ckpt_path") -> str:
    """Read the task a checkpoint was trained for (``expr`` where it records none: older runs).

    Raises:
        FileNotFoundError: if the checkpoint does not exist.
        ValueError: if it is not a fer_multires checkpoint, or names an unknown task.
    """
    from fer_multires.tasks import DEFAULT_TASK, check_task

    path = require_checkpoint(ckpt_path, key)
    hparams = load_intact_checkpoint(path, key).get("hyper_parameters")
    if not isinstance(hparams, dict) or "class_names" not in hparams:
        raise ValueError(f"{key}: {path} is not a fer_multires checkpoint (no hyper_parameters)")
    return check_task(str(hparams.get("task") or DEFAULT_TASK), f"{key}: {path}: task")


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
        if not starts_like_a_checkpoint(path):
            raise CorruptCheckpointError(
                f"{key}: {path} is not a checkpoint (a .ckpt file that training writes, or a "
                "training run's directory)"
            ) from err
        alternative = newest_intact_checkpoint(path.parent, exclude=path)
        advice = (
            f"the newest intact checkpoint beside it is {alternative}: pass ckpt_path={alternative}"
            if alternative
            else f"no other checkpoint in {path.parent} reads either"
        )
        raise CorruptCheckpointError(
            f"{key}: {path} is corrupt or truncated ({type(err).__name__}: {err}); {advice}"
        ) from err


#: The first bytes of a checkpoint: ``torch.save`` writes a zip archive.
ZIP_MAGIC = b"PK\x03\x04"


def starts_like_a_checkpoint(path: Path) -> bool:
    """Whether a file begins as ``torch.save``'s zip archive (a cut one still does)."""
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC


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


def check_checkpoint_fits(
    ckpt_path: str | Path, model: torch.nn.Module, key: str = "ckpt_path"
) -> None:
    """Check, before training, that a checkpoint's weights are the model's (names and shapes).

    Resuming with another ``model.backbone`` (or any setting that changes the layers) would
    otherwise fail inside ``fit`` with a dump of state-dict keys.

    Raises:
        ValueError: naming the checkpoint's backbone and the model's, and a few of the
            differing weights.
    """
    checkpoint = load_intact_checkpoint(Path(ckpt_path), key)
    saved = {k: tuple(v.shape) for k, v in strip_compile_prefix(checkpoint["state_dict"]).items()}
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differences = [f"{k} missing" for k in built.keys() - saved.keys()]
    differences += [f"{k} unexpected" for k in saved.keys() - built.keys()]
    differences += [
        f"{k} {saved[k]} vs {built[k]}" for k in saved.keys() & built.keys() if saved[k] != built[k]
    ]
    if not differences:
        return
    trained = checkpoint.get("hyper_parameters", {}).get("backbone", "another model")
    asked = getattr(getattr(model, "hparams", {}), "get", lambda _: None)("backbone")
    raise ValueError(
        f"{key}: {ckpt_path} holds a {trained} model, not the model.backbone={asked} this run "
        f"builds ({len(differences)} weights differ, e.g. {'; '.join(sorted(differences)[:3])}): "
        f"resume with the run's own model settings (model.backbone={trained}, as in its "
        "config.yaml), or train the new model in another run_dir"
    )


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
