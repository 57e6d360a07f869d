"""Where the Hydra configs live, and small helpers around them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def config_dir() -> str:
    """Return the absolute path of the Hydra config tree.

    A wheel ships the configs inside the package (``fer_multires/conf``); a source checkout or an
    editable install has them at the repository root (``conf/``).

    Raises:
        FileNotFoundError: if neither exists.
    """
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    searched = f"{_PACKAGE_DIR / 'conf'} or {_PACKAGE_DIR.parent / 'conf'}"
    raise FileNotFoundError(f"fer_multires configs not found in {searched}")


CONFIG_DIR = config_dir()


#: Longest sweep-job directory name; file systems refuse names over 255 bytes.
MAX_JOB_DIRNAME = 200


def job_dirname(num: int | str, overrides: str) -> str:
    """Name a sweep job's directory after its number and overrides, within a safe length.

    Names longer than :data:`MAX_JOB_DIRNAME` are cut and end in a hash of the full override
    string, so they stay unique. Used as ``${fer_job_dirname:...}`` in ``conf/hydra``.
    """
    name = f"{num}_{overrides}" if overrides else str(num)
    if len(name) <= MAX_JOB_DIRNAME:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:10]
    return f"{name[: MAX_JOB_DIRNAME - 11]}_{digest}"


OmegaConf.register_new_resolver("fer_job_dirname", job_dirname, replace=True)
