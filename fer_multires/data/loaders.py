"""A training loader that Lightning can checkpoint and resume mid-epoch.

Lightning 2.x stores the ``state_dict()`` of every training loader that has one in the
checkpoint (``loops.fit_loop.state_dict.combined_loader``) and hands it back through
``load_state_dict()`` before it creates the resumed epoch's iterator. A plain ``DataLoader``
has neither, so Lightning restarts an interrupted epoch from its first batch and warns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from fer_multires.data.datasets import PartitionSampler


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`PartitionSampler` whose state is ``(epoch, position)``.

    Each batch handed to training advances the sampler's position (counted here, in the main
    process, so workers prefetching ahead do not matter). Lightning's training loop fetches
    exactly one batch per step when the loader has a length, so at a checkpoint the position is
    the number of samples the finished steps consumed.
    """

    @classmethod
    def like(cls, loader: DataLoader) -> ResumableLoader:
        """Return a resumable loader with every setting of ``loader``.

        Raises:
            TypeError: if ``loader`` does not draw from a :class:`PartitionSampler`.
        """
        if not isinstance(loader.sampler, PartitionSampler):
            raise TypeError(
                f"a resumable loader needs a PartitionSampler, not {type(loader.sampler).__name__}"
            )
        return cls(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=loader.sampler,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            generator=loader.generator,
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=loader.persistent_workers,
        )

    def __iter__(self) -> Iterator[Any]:
        sampler: PartitionSampler = self.sampler  # type: ignore[assignment]
        for batch in super().__iter__():
            sampler.advance(self.batch_size or 1)
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Return the sampler's ``{"epoch", "position"}``."""
        return self.sampler.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a checkpoint's state: the next iteration starts at its position."""
        self.sampler.load_state_dict(state)  # type: ignore[attr-defined]
