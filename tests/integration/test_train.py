"""Training through the real entry point's code path, on generated data, on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_image_tree, run_train, train_overrides


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 40 training frames; 45 validation frames (an odd number) in 5 videos.
    return make_image_tree(tmp_path_factory.mktemp("data") / "d", train_videos=4, val_videos=5,
                           frames=9)  # fmt: skip


def test_run_directory_holds_config_checkpoints_logs_metrics(data_root, tmp_path) -> None:
    run_dir = tmp_path / "run"
    paper_optimizer = ["model.head_lr=1e-3", "model.backbone_lr=1e-4", "model.scheduler=null"]
    metrics, objects = run_train(data_root, tmp_path, run_dir, *paper_optimizer)
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best_epoch*.ckpt"))
    assert list((run_dir / "csv").glob("version_*/metrics.csv"))
    assert (run_dir / "metrics.json").is_file()
    for split in ("val_select", "val_rest", "val_full"):
        for name in ("acc", "f1", "score"):
            assert 0.0 <= metrics[f"{split}/{name}"] <= 1.0
    assert metrics["val_full/n"] == 45
    assert "val_full/f1_Neutral" in metrics
    # the loss is weighted by 1 - training class frequency
    counts = objects["datamodule"].train_class_counts
    weights = objects["model"].loss_weights.numpy()
    assert weights == pytest.approx(1 - counts / counts.sum(), abs=1e-6)
    # the optimizer has the paper's named groups
    groups = {g["name"]: g for g in objects["trainer"].optimizers[0].param_groups}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == 1e-4
    assert groups["head"]["weight_decay"] == 1e-4


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)  # fmt: skip
    return ckpt["state_dict"]


@pytest.mark.parametrize(
    ("workers", "p"),
    # p=1 makes the second epoch's score no better than the first, so the stopped run's
    # last.ckpt must be refreshed by an epoch that is not the best (it was not, before the
    # separate last-checkpoint callback)
    [(0, 0.5), (2, 0.5), (0, 1.0)],
)
def test_resume_gives_bit_identical_weights(data_root, tmp_path, workers, p) -> None:
    extra = [f"data.num_workers={workers}", f"data.multires.p={p}"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run_train(data_root, tmp_path, straight, "trainer.max_epochs=2", *extra)
    run_train(data_root, tmp_path, stopped, "trainer.max_epochs=1", *extra)
    run_train(data_root, tmp_path, stopped, "trainer.max_epochs=2", "ckpt_path=last", *extra)
    a, b = final_weights(straight), final_weights(stopped)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and a resumed run is not a fresh start with the same seed
    ckpt = torch.load(stopped / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)  # fmt: skip
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 8  # 36 frames: 4 full batches of 8


def test_ckpt_path_last_with_nothing_to_resume_is_an_error(data_root, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ckpt_path=last: nothing to resume"):
        run_train(data_root, tmp_path, tmp_path / "fresh", "ckpt_path=last")


def test_checkpoint_for_other_classes_is_an_error(data_root, tmp_path) -> None:
    run_dir = tmp_path / "seven"
    run_train(data_root, tmp_path, run_dir)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    ckpt["hyper_parameters"]["class_names"] = ckpt["hyper_parameters"]["class_names"] + ["Other"]
    bad = tmp_path / "eight.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(ValueError, match="trained for 8 classes .* but the data has 7"):
        run_train(data_root, tmp_path, tmp_path / "other", f"ckpt_path={bad}")


def test_missing_data_root_is_an_error(tmp_path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.train", "+experiment=demo", "data=affwild2",
         f"paths.root_dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "data.root" in result.stderr


def test_ddp_validation_counts_every_sample_once(data_root, tmp_path) -> None:
    """2 simulated processes on 45 samples give exactly the numbers of one process."""
    run_dir = tmp_path / "one"
    run_train(data_root, tmp_path, run_dir)
    best = run_dir / "checkpoints" / "last.ckpt"
    results = {}
    for trainer in ("cpu", "ddp_sim"):
        metrics, _ = run_train(
            data_root, tmp_path, tmp_path / trainer, f"trainer={trainer}", "trainer.max_epochs=0",
            "trainer.limit_train_batches=0", f"ckpt_path={best}",
        )  # fmt: skip
        results[trainer] = metrics
    assert results["ddp_sim"]["val_full/n"] == 45
    assert results["cpu"] == results["ddp_sim"]


def test_multirun_sweep_names_job_dirs_and_survives_a_bad_combination(data_root, tmp_path) -> None:
    overrides = [o for o in train_overrides(data_root, tmp_path) if not o.startswith("trainer.")]
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.train", "-m", *overrides,
         "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=none",
         "data.multires.min_res=4,16", "data.multires.max_res=8",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert jobs[0].startswith("0_") and "data.multires.max_res=8,data.multires.min_res=4" in jobs[0]
    assert (
        jobs[1].startswith("1_") and "data.multires.max_res=8,data.multires.min_res=16" in jobs[1]
    )
    # paths stay out of the names (their "/" would nest directories), and so do experiments
    assert "data.root" not in jobs[0] and "experiment" not in jobs[0]
    good, bad = (tmp_path / "sweep" / job for job in jobs)
    assert (good / "checkpoints" / "last.ckpt").is_file()
    error = (bad / "error.txt").read_text()
    assert "ValueError: data.multires.min_res=16 must not exceed max_res=8" in error
    assert "data.multires.min_res=16" in result.stderr + result.stdout
    assert "1 of 2 sweep jobs failed" in result.stderr + result.stdout


def test_a_sweep_in_which_every_job_failed_exits_non_zero(data_root, tmp_path) -> None:
    """It used to exit 0, as if the sweep had trained something."""
    overrides = [o for o in train_overrides(data_root, tmp_path) if not o.startswith("trainer.")]
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.train", "-m", *overrides, "logger=none",
         "data.multires.min_res=16,32", "data.multires.max_res=8", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "every job of the sweep failed (2 of 2)" in output, output[-3000:]
    assert f"python -m fer_multires.report {sweep}" in output
    assert all((job / "error.txt").is_file() for job in sweep.iterdir() if job.is_dir())


def test_sweep_evaluates_every_job_and_the_report_needs_no_manual_step(data_root, tmp_path) -> None:
    from fer_multires.sweeps.jobs import load_jobs
    from fer_multires.sweeps.summary import common_overrides, curves

    overrides = [o for o in train_overrides(data_root, tmp_path) if not o.startswith("trainer.")]
    overrides = [o for o in overrides if not o.startswith("eval_after_fit")]
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.train", "-m", *overrides,
         "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
         "eval_after_fit=true", "eval.resolutions=[8,16]", "eval.smoothing_windows=[3]",
         "data.multires.min_res=4,8", "data.multires.max_res=8", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "fer_multires.report", str(sweep), "--low-res", "8-16"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    jobs = load_jobs(sweep)
    assert [job.status for job in jobs] == ["ok", "ok"]
    assert all(job.eval_dir == (job.run_dir / "eval").resolve() for job in jobs)
    assert len(curves(jobs, common_overrides(jobs))) == 2
    assert all(set(job.eval_scores["val_rest"]) == {"8", "16", "native"} for job in jobs)
    text = (sweep / "report.md").read_text()
    assert "Not evaluated yet" not in text
    assert "the mean over the evaluated 8-16 px (evaluations)" in text  # the low-res heatmap panel
    assert "native resolution (evaluations)" in text  # beside the native one
    assert "evaluated:" in text  # the selected job's val_rest scores from its evaluation


def run_cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)  # fmt: skip


def test_invalid_multires_value_names_its_key_on_the_command_line(tmp_path) -> None:
    overrides = ["+experiment=demo_multires", "data.multires.p=1.5", "trainer.max_epochs=1"]
    result = run_cli("fer_multires.train", *overrides, f"paths.root_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode != 0
    assert "ValueError: data.multires.p=1.5 must be in [0, 1]" in result.stderr


@pytest.mark.parametrize("module", ["fer_multires.train", "fer_multires.evaluate"])
def test_deprecated_enabled_false_still_works_on_the_command_line(module, tmp_path) -> None:
    experiment = ["+experiment=paper_multires"] if module == "fer_multires.train" else []
    result = run_cli(module, *experiment, "ckpt_path=x", "data.multires.enabled=false",
                     "data.multires.p=0.5", "--cfg", "job", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\n  multires: null\n" in result.stdout
    assert "data.multires.enabled=false is deprecated" in result.stderr


def test_validation_with_every_image_unreadable_is_an_error(tmp_path) -> None:
    # under data.on_bad_image=skip a model would be chosen on 0 samples, scored 0
    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=4)
    for image in (root / "cropped_aligned").glob("val_*/*.jpg"):
        image.write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match=r"val_full: none of its images could be read \(8 "):
        run_train(root, tmp_path, tmp_path / "run", "data.on_bad_image=skip",
                  "data.val_select_fraction=0.5")  # fmt: skip
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_summary_counts_the_images_skipped_as_unreadable(tmp_path, capsys) -> None:
    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=4)
    for image in ("train_000/00002.jpg", "val_001/00003.jpg"):
        (root / "cropped_aligned" / image).write_bytes(b"not a jpeg")
    run_train(root, tmp_path, tmp_path / "run", "data.on_bad_image=skip",
              "data.val_select_fraction=0.5")  # fmt: skip
    assert (
        "skipped as unreadable (data.on_bad_image=skip; the log names each file): 1 "
        "validation images, 1 training images in the last epoch"
    ) in capsys.readouterr().out


def test_fresh_start_in_the_run_directory_of_an_earlier_run_is_an_error(data_root, tmp_path):
    run = tmp_path / "run"
    run_train(data_root, tmp_path, run)
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(
        FileExistsError, match=f"run_dir={run} already holds a run .*ckpt_path=last"
    ):
        run_train(data_root, tmp_path, run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before  # its resume point kept
