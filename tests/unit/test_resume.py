"""Mid-epoch checkpoints and exact resume: a run stopped inside an epoch, by an error or a signal,
and resumed from its last.ckpt ends with the weights of a run that never stopped."""

from __future__ import annotations

import pytest

from fer_multires.callbacks import LastCheckpoint
from fer_multires.data.datasets import PartitionSampler
from fer_multires.data.loaders import ResumableLoader


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("every_n_train_steps", 0, "every_n_train_steps=0 must be >= 1 or null"),
        ("every_n_minutes", -1, "every_n_minutes=-1 must be > 0 or null"),
        ("signals", ["SIGNOPE"], "signals: 'SIGNOPE' is not a signal name"),
    ],
)
def test_bad_last_checkpoint_settings_name_the_key(tmp_path, key, value, message) -> None:
    with pytest.raises(ValueError, match=f"callbacks.last_checkpoint.{message}"):
        LastCheckpoint(str(tmp_path), **{key: value})


def test_sampler_state_resumes_the_same_remaining_keys() -> None:
    full = PartitionSampler(20, shuffle=True, seed=3)
    full.set_epoch(2)
    keys = list(full)
    resumed = PartitionSampler(20, shuffle=True, seed=3)
    resumed.load_state_dict({"epoch": 2, "position": 8})
    assert list(resumed) == keys[8:]
    assert len(resumed) == 20  # Lightning counts the epoch's batches from the full length
    resumed.set_epoch(2)  # Lightning sets the restored epoch again: the place is kept
    assert resumed.position == 8
    resumed.set_epoch(3)
    assert resumed.position == 0
    with pytest.raises(ValueError, match="stopped at sample 30 of epoch 2"):
        resumed.load_state_dict({"epoch": 2, "position": 30})


def test_resumable_loader_counts_the_batches_it_hands_out() -> None:
    sampler = PartitionSampler(10, shuffle=True, seed=0)
    loader = ResumableLoader({(i, 0): i for i in range(10)}, batch_size=4, sampler=sampler,
                             drop_last=True, collate_fn=lambda b: b)  # fmt: skip
    it = iter(loader)
    next(it)
    assert loader.state_dict() == {"epoch": 0, "position": 4}
    again = ResumableLoader.like(loader)
    assert again.batch_size == 4 and again.drop_last and again.sampler is sampler
