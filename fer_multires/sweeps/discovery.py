"""Finding the training runs below a directory, and the evaluate outputs of each run.

* A *training run* is a directory holding ``.hydra/``, ``config.yaml``, ``metrics.json``,
  ``checkpoints/`` or ``error.txt``, that is not the output of another entry point (evaluate,
  stats, predict, export, pack). The directory given is used if it is one; otherwise runs are
  searched up to five levels below it, not below a run.
* An *evaluate output* of a run is any directory inside the run (up to three levels deep, outside
  ``.hydra``, ``checkpoints`` and ``csv``) holding a ``metrics.json`` of the evaluate shape
  (:func:`fer_multires.results.is_eval_results`).
* Evaluate outputs elsewhere (``--evals``) are attached to the run whose directory holds the
  checkpoint they evaluated: ``checkpoint`` in the output's ``metrics.json``, else ``ckpt_path``
  in its ``config.yaml``, ``.hydra/config.yaml`` or ``.hydra/overrides.yaml``; a relative path is
  taken from the directory evaluate ran in (Hydra's ``runtime.cwd``).
* Several evaluate outputs of one run are ordered newest ``metrics.json`` first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fer_multires.results import ResultsError, is_eval_results, load_eval_results
from fer_multires.runs import (
    CHECKPOINTS_DIR,
    HYDRA_DIR,
    HYDRA_OVERRIDES,
    config_files,
    hydra_file,
    hydra_record,
    is_run_dir,
    metrics_file,
)
from fer_multires.sweeps.files import parse_overrides
from fer_multires.utils.io import read_json, read_yaml

#: Hydra job names of entry points whose output directories are not training runs.
NON_TRAINING_JOBS = frozenset({"evaluate", "stats", "predict", "export", "pack"})
MAX_RUN_DEPTH = 5
MAX_EVAL_DEPTH = 3
EVAL_SKIP_DIRS = frozenset({HYDRA_DIR, CHECKPOINTS_DIR, "csv"})


class ReportError(Exception):
    """A user-facing error: a missing directory, no runs, an invalid option."""


def is_eval_output(path: Path) -> bool:
    """Tell whether the directory's ``metrics.json`` has the evaluate shape."""
    return is_eval_results(read_json(metrics_file(path)))


def is_training_run(path: Path) -> bool:
    """Tell whether ``path`` is a training run directory (see the module docstring)."""
    if not is_run_dir(path):
        return False
    if hydra_record(path, "job", "name") in NON_TRAINING_JOBS:
        return False
    return not is_eval_output(path)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``2_x`` before ``10_x``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def subdirectories(path: Path) -> list[Path]:
    """Return the non-hidden subdirectories of ``path`` in natural order."""
    children = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(children, key=lambda p: natural_key(p.name))


def newest_first(eval_dirs: Sequence[Path]) -> list[Path]:
    """Order evaluate outputs by the age of their ``metrics.json``, newest first."""
    return sorted(eval_dirs, key=lambda p: metrics_file(p).stat().st_mtime, reverse=True)


def find_runs(root: Path, max_depth: int = MAX_RUN_DEPTH) -> list[Path]:
    """Return ``root`` if it is a training run, else the runs up to ``max_depth`` levels below.

    Raises:
        ReportError: if ``root`` is not a directory.
    """
    if not root.is_dir():
        raise ReportError(f"no such directory: {root}")
    if is_training_run(root):
        return [root]
    runs: list[Path] = []
    if max_depth > 0:
        for child in subdirectories(root):
            if is_training_run(child):
                runs.append(child)
            else:
                runs.extend(find_runs(child, max_depth - 1))
    return runs


def find_eval_outputs(path: Path, max_depth: int = MAX_EVAL_DEPTH) -> list[Path]:
    """Return the evaluate output directories at or below ``path``, newest first.

    ``path`` itself counts when its ``metrics.json`` has the evaluate shape; below it, the
    ``.hydra``, ``checkpoints`` and ``csv`` folders and hidden folders are skipped.
    """
    found = [path] if is_eval_output(path) else []
    if max_depth > 0 and path.is_dir():
        for child in subdirectories(path):
            if child.name not in EVAL_SKIP_DIRS:
                found.extend(find_eval_outputs(child, max_depth - 1))
    return newest_first(found)


def recorded_checkpoints(eval_dir: Path) -> list[Any]:
    """Return the checkpoint paths an evaluate output records, most trusted first."""
    try:
        candidates: list[Any] = [load_eval_results(eval_dir).checkpoint]
    except ResultsError:
        candidates = []
    for config in config_files(eval_dir):
        data = read_yaml(config)
        candidates.append(data.get("ckpt_path") if isinstance(data, dict) else None)
    overrides = read_yaml(hydra_file(eval_dir, HYDRA_OVERRIDES))
    lines = [str(line) for line in overrides] if isinstance(overrides, list) else []
    parsed = [o.value() for o in parse_overrides(lines) if o.key_or_group == "ckpt_path"]
    candidates += [value for value in parsed if isinstance(value, str)]
    # A path Hydra reads as something else (a comma makes it a sweep): the text as written.
    candidates += [line.partition("=")[2] for line in lines if line.startswith("ckpt_path=")]
    return candidates


def eval_checkpoint(eval_dir: Path) -> Path | None:
    """Return the checkpoint an evaluate output evaluated (absolute), if it records one."""
    candidates = recorded_checkpoints(eval_dir)
    found = next((c for c in candidates if isinstance(c, str) and c and "${" not in c), None)
    if found is None:
        return None
    path = Path(found).expanduser()
    if not path.is_absolute():
        path = Path(hydra_record(eval_dir, "runtime", "cwd") or Path.cwd()) / path
    return path.resolve()


def index_eval_outputs(roots: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Return ``(evaluate output, its checkpoint)`` for the outputs below ``roots``.

    Raises:
        ReportError: if a root is not a directory.
    """
    index = []
    for root in roots:
        if not root.is_dir():
            raise ReportError(f"--evals: no such directory: {root}")
        for eval_dir in find_eval_outputs(root, max_depth=MAX_RUN_DEPTH):
            checkpoint = eval_checkpoint(eval_dir)
            if checkpoint is not None:
                index.append((eval_dir.resolve(), checkpoint))
    return index


def evals_of_run(run_dir: Path, external: Sequence[tuple[Path, Path]]) -> list[Path]:
    """Return the run's evaluate outputs, inside it or in ``external``, newest first."""
    run = run_dir.resolve()
    inside = [p.resolve() for p in find_eval_outputs(run_dir)]
    matched = [d for d, ckpt in external if ckpt.is_relative_to(run) and d not in inside]
    return newest_first(inside + matched)
