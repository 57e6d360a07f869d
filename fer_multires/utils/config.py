"""Where the Hydra configs live, and small helpers around them."""

from __future__ import annotations

from pathlib import Path

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
