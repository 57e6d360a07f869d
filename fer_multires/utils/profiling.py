"""Counting the operators a piece of code runs: a launch count and host-sync check for GPUs.

Used by the input benchmark and the tests of the batched augmentation: on a GPU every operator
is (about) one kernel launch, and an operator whose output size depends on the data makes the
host wait for the device.
"""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

#: Operators whose output size depends on the data: on a GPU each waits for the device.
HOST_SYNCING_OPS = frozenset(
    {"nonzero", "unique", "_unique2", "_local_scalar_dense", "masked_select"}
)
#: Operators that only make views (no kernel runs).
VIEW_OPS = frozenset(
    {"view", "expand", "transpose", "t", "slice", "select", "unsqueeze", "squeeze", "permute",
     "_unsafe_view", "_reshape_alias", "as_strided", "alias", "detach", "empty", "lift_fresh"}
)  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Records, in order, the operators that run inside its ``with`` block (views excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        name = func.overloadpacket.__name__
        if name not in VIEW_OPS:
            self.names.append(name)
        return func(*args, **(kwargs or {}))

    def total(self) -> int:
        """Operators that ran (on a GPU, roughly the kernel launches)."""
        return len(self.names)

    def host_syncs(self) -> int:
        """How many of them synchronise with the host."""
        return sum(name in HOST_SYNCING_OPS for name in self.names)
