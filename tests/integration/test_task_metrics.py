"""The valence-arousal and AU metrics on two real processes (gloo) equal the metrics on one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fer_multires.task_metrics import ActionUnitScore, ConcordanceScore, choose_thresholds
from fer_multires.tasks import AU_MISSING, VA_MISSING

FRAMES = 500
SPLIT = 173  # rank 0 sees frames [0, 173), rank 1 the other 327


def frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    va_target = rng.uniform(-1, 1, size=(FRAMES, 2))
    va_preds = (0.6 * va_target + rng.normal(0, 0.3, size=(FRAMES, 2))).astype(np.float32)
    va_target[rng.random(FRAMES) < 0.2] = VA_MISSING
    au_target = (rng.random((FRAMES, 12)) < 0.3).astype(np.int64)
    au_probs = np.clip(0.3 * au_target + rng.beta(2, 4, size=(FRAMES, 12)), 0, 1)
    au_target[rng.random((FRAMES, 12)) < 0.2] = AU_MISSING
    return {"va_preds": va_preds, "va_target": va_target, "au_target": au_target,
            "au_probs": au_probs.astype(np.float32)}  # fmt: skip


def scores(rows: slice) -> dict[str, torch.Tensor]:
    """Update both metrics with ``rows`` in batches of 64; compute at 0.5 and at the thresholds
    chosen on the (summed) counts."""
    data = {key: torch.from_numpy(value[rows]) for key, value in frames().items()}
    va, au = ConcordanceScore(), ActionUnitScore()
    for start in range(0, len(data["va_preds"]), 64):
        batch = {key: value[start : start + 64] for key, value in data.items()}
        va.update(batch["va_preds"], batch["va_target"])
        au.update(batch["au_probs"], batch["au_target"])
    at_half = au.compute()
    chosen = choose_thresholds(at_half["counts"])
    at_chosen = au.compute(chosen)
    out = {f"va/{k}": v for k, v in va.compute().items()}
    out.update({f"au/{k}": v for k, v in at_half.items() if k != "counts"})
    out.update({f"au_chosen/{k}": v for k, v in at_chosen.items() if k != "counts"})
    counts = at_half["counts"]
    out.update({"au/tp": counts.tp, "au/fp": counts.fp, "au/fn": counts.fn})
    out["au/thresholds"] = torch.from_numpy(chosen)
    return out


def on_two_processes(rank: int, store: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=2)  # fmt: skip
    try:
        rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, FRAMES)
        torch.save(scores(rows), Path(out, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_equal_one(tmp_path) -> None:
    one = scores(slice(0, FRAMES))
    args = (str(tmp_path / "store"), str(tmp_path))
    torch.multiprocessing.spawn(on_two_processes, args=args, nprocs=2)
    for rank in (0, 1):
        two = torch.load(tmp_path / f"rank{rank}.pt")
        assert two.keys() == one.keys()
        for key, value in one.items():
            if key.startswith("va/"):
                # float64 sums added in another order (each rank's, then the two): equal to
                # rounding, about 1e-16 relative, not necessarily to the bit
                torch.testing.assert_close(two[key], value, rtol=0, atol=1e-12, msg=key)
            else:  # integer counts: the same to the digit, and so the F1s and thresholds
                assert torch.equal(two[key], value), (rank, key)
    assert one["va/n"].item() == np.sum(frames()["va_target"][:, 0] != VA_MISSING)
