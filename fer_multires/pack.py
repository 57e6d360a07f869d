"""Pack a dataset's frames into tar shards for clusters.

``python -m fer_multires.pack data=NAME data.root=PATH pack.out=DIR [pack.shard_size=N]`` reads
the dataset with the usual reader (same splits, labels and skip counts) and writes
WebDataset-style shards plus their index (see :mod:`fer_multires.data.readers.packed`). Train
from them with ``data.packed_dir=DIR``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.data.readers.packed import pack_splits
from fer_multires.tasks import check_task
from fer_multires.utils.checkpoint_io import require_writable_dir
from fer_multires.utils.config import CONFIG_DIR, instantiate


def run_pack(cfg: DictConfig) -> dict:
    """Read the configured dataset and pack it into ``pack.out``.

    Raises:
        PermissionError: naming ``pack.out``, before the dataset is read, if it cannot be written.
    """
    require_writable_dir(cfg.pack.out, "pack.out")
    datamodule = instantiate(cfg.data, task=check_task(cfg.task))
    datamodule.prepare_data()
    meta = pack_splits(datamodule.read_index(), cfg.pack.out, cfg.pack.shard_size)
    for name, info in meta["splits"].items():
        print(f"{name}: {info['frames']} frames in {info['shards']} shard(s)")
    print(f"packed into {cfg.pack.out}; train with data.packed_dir={cfg.pack.out}")
    return meta


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pack")
def main(cfg: DictConfig) -> None:
    """Entry point of ``python -m fer_multires.pack``."""
    run_pack(cfg)


if __name__ == "__main__":
    main()
