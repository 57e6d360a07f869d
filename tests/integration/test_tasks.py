"""Training for the valence-arousal, action-unit and multi-task tracks (issue 23), on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_train

from fer_multires.tasks import AU_NAMES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: A smaller demo: 40 synthetic identities of 40 frames at 48 px, 10 epochs (about two minutes).
QUICK_DEMO = [
    "+experiment=demo",
    "data.synthetic.num_train_videos=40",
    "data.synthetic.num_val_videos=10",
    "data.synthetic.frames_per_video=40",
    "data.resize_size=50",
    "data.crop_size=48",
    "trainer.max_epochs=10",
    "trainer.enable_progress_bar=false",
    "eval_after_fit=false",
    "logger=none",
]


def constant_au_f1(au: np.ndarray) -> float:
    """The mean AU F1 of the best constant guess (always present: 2p / (1 + p); never: 0)."""
    scores = []
    for column in au.T:
        labelled = column[column >= 0]
        p = float((labelled == 1).mean()) if len(labelled) else 0.0
        scores.append(2 * p / (1 + p))
    return float(np.mean(scores))


def test_the_demo_learns_every_head_of_the_multi_task_model(tmp_path) -> None:
    """`+experiment=demo task=mtl` learns valence-arousal, AUs and expressions from the drawing."""
    from fer_multires.train import train

    run_dir = tmp_path / "run"
    overrides = [
        *QUICK_DEMO,
        "task=mtl",
        f"data.root={tmp_path / 'synthetic'}",
        f"run_dir={run_dir}",
    ]
    metrics, objects = train(compose_train(overrides, run_dir))
    val_au = objects["datamodule"].splits["val_full"].au
    chance_au = constant_au_f1(val_au)
    # chance: a constant valence and arousal has CCC 0; 7 classes, one of them 60%: macro F1 ~0.11
    scores = {k: round(v, 3) for k, v in metrics.items() if k.startswith("val_full/")}
    assert metrics["val_full/ccc_valence"] > 0.1 and metrics["val_full/ccc_arousal"] > 0.1, scores
    assert metrics["val_full/au_score"] > chance_au + 0.05, (chance_au, scores)
    assert metrics["val_full/f1"] > 0.2, scores
    assert metrics["val_full/score"] == pytest.approx(
        metrics["val_full/va_score"] + metrics["val_full/f1"] + metrics["val_full/au_score"]
    )
    assert len(AU_NAMES) == val_au.shape[1]


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_validation_on_two_processes_gives_the_digits_of_one(task_runs, task, tmp_path) -> None:
    """Every head's metrics come from sums across processes: 2 simulated processes, one's digits.

    Expression and AU metrics are integer counts: equal to the digit. Valence-arousal sums are
    exact given the outputs, but a frame's float32 output changes in its last bits with the batch
    it lands in (the two processes batch other frames together): equal to 1e-6.
    """
    from conftest import run_train

    ckpt = task_runs(task) / "checkpoints" / "last.ckpt"
    results = {}
    for trainer in ("cpu", "ddp_sim"):
        metrics, _ = run_train(
            task_runs.data_root, tmp_path, tmp_path / trainer, f"task={task}", f"trainer={trainer}",
            "trainer.max_epochs=0", "trainer.limit_train_batches=0", f"ckpt_path={ckpt}",
            "eval_after_fit=false",
        )  # fmt: skip
        results[trainer] = metrics
    one, two = results["cpu"], results["ddp_sim"]
    assert one.keys() == two.keys()
    for key, value in one.items():
        if "va_score" in key or "ccc" in key or (task != "au" and key.endswith("/score")):
            assert two[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert two[key] == value, key
    heads = {"va": ["val_full/va_score"], "au": ["val_full/f1_AU12", "val_full/au_score"],
             "mtl": ["val_full/va_score", "val_full/au_score", "val_full/f1"]}[task]  # fmt: skip
    assert all(key in results["cpu"] for key in heads)


def test_a_multi_task_run_resumed_mid_epoch_has_the_weights_of_one_not_stopped(task_runs, tmp_path):
    """Every head trains through the resumable loader: a crash inside epoch 2, then a resume."""
    from conftest import run_train

    from integration.test_resume import STEPS_PER_EPOCH, assert_same_weights, weights

    data = task_runs.data_root
    common = ["task=mtl", "trainer.max_epochs=2", "eval_after_fit=false"]
    run_train(data, tmp_path, tmp_path / "straight", *common)
    crash = [
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "+callbacks.crash._target_=integration.test_resume.CrashAtStep",
        f"+callbacks.crash.step={STEPS_PER_EPOCH + 2}",
    ]
    with pytest.raises(RuntimeError, match="injected failure"):
        run_train(data, tmp_path, tmp_path / "run", *common, *crash)
    run_train(data, tmp_path, tmp_path / "run", *common, "ckpt_path=last")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "run"))


def test_a_compiled_valence_arousal_model_trains_and_validates(task_runs, tmp_path) -> None:
    from conftest import run_train

    metrics, objects = run_train(
        task_runs.data_root, tmp_path, tmp_path / "run", "task=va", "model.compile=true",
        "model.compile_backend=aot_eager", "eval_after_fit=false",
    )  # fmt: skip
    assert objects["model"].compiled
    assert -1 <= metrics["val_full/va_score"] <= 1 and "val_full/ccc_arousal" in metrics
