"""Pretrained weights ahead of time: ``python -m fer_multires.weights fetch|show NAME...``.

``fetch`` puts names (``timm:<model>.<tag>``, ``hf-hub:<org>/<repo>[@<revision>]``) into the
Hugging Face cache (``HF_HOME``, ``HF_HUB_CACHE``) on a machine with internet, for clusters whose
compute nodes have none; ``show`` says, reading the cache only, whether a name can be used
offline (``HF_HUB_OFFLINE=1``). Each prints where the weights file is, the Hub revision (commit
hash) and the file's sha256: what a run started from them records in ``initial_weights.json``.
The work is done by :mod:`fer_multires.models.pretrained`.

Exit status: 0 when every name is cached (``show``) or fetched (``fetch``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fer_multires.models.pretrained import (
    NotCachedError,
    PretrainedError,
    WeightsSource,
    is_weights_name,
    resolve_weights,
)

__all__ = ["main"]


def describe(source: WeightsSource) -> str:
    """Return the lines printed for one name."""
    return (
        f"{source.name}\n  file:     {source.file}\n  revision: {source.revision}\n"
        f"  sha256:   {source.sha256}\n  size:     {source.size / 1e6:.1f} MB"
    )


def run(command: str, names: Sequence[str]) -> int:
    """Fetch or show each name; print what was found; return the exit status."""
    from huggingface_hub import constants

    print(f"Hugging Face cache: {constants.HF_HUB_CACHE}")
    status = 0
    for name in names:
        if not is_weights_name(name):
            print(
                f"{name}: not a name (timm:<model>.<tag> or hf-hub:<org>/<repo>)", file=sys.stderr
            )
            status = 1
            continue
        try:
            source = resolve_weights(name, download=command == "fetch", key="NAME")
        except NotCachedError as err:
            print(f"not cached: {err}", file=sys.stderr)
            status = 1
            continue
        except PretrainedError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        print(
            ("fetched " if command == "fetch" else "cached (usable offline): ") + describe(source)
        )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m fer_multires.weights",
        description="Fetch pretrained weights into the Hugging Face cache, or show whether they "
        "are cached (timm:<model>.<tag>, hf-hub:<org>/<repo>[@<revision>]).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download into the cache (needs internet)").add_argument(
        "names", nargs="+", metavar="NAME"
    )
    commands.add_parser("show", help="say whether the cache holds them (offline)").add_argument(
        "names", nargs="+", metavar="NAME"
    )
    args = parser.parse_args(argv)
    return run(args.command, args.names)


if __name__ == "__main__":
    sys.exit(main())
