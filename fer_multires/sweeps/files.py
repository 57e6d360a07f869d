"""Reading what a run directory records: YAML files, text lines and Hydra's overrides."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from fer_multires.runs import HYDRA_OVERRIDES, error_file, hydra_file
from fer_multires.utils.io import read_lines, read_yaml


def read_overrides(run_dir: Path) -> list[str]:
    """Return the job's command-line overrides (``.hydra/overrides.yaml``, else ``error.txt``)."""
    data = read_yaml(hydra_file(run_dir, HYDRA_OVERRIDES))
    if isinstance(data, list):
        return [str(item) for item in data]
    lines = read_lines(error_file(run_dir))
    return lines[0].split() if lines else []


def parse_overrides(lines: Iterable[str]) -> list[Override]:
    """Parse override strings with Hydra's parser; one it cannot parse is left out.

    The values come typed as Hydra reads them (``16`` an int, ``false`` a bool, ``null`` None,
    quotes removed).
    """
    parser = OverridesParser.create()
    parsed: list[Override] = []
    for line in lines:
        try:
            parsed.extend(parser.parse_overrides([line]))
        except HydraException:
            continue
    return parsed
