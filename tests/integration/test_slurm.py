"""Training on a real one-node Slurm cluster (scripts/slurm/up.sh; `make test-slurm`).

Jobs run the real entry point through ``sbatch``/``srun`` and Hydra's submitit launcher, on the
CPU with the tiny demo model. The interrupted jobs must end with the weights of an uninterrupted
job, bit for bit: a requeue (``scontrol requeue``) and a preemption signal
(``scancel --signal=USR1``), each mid-epoch. The jobs run side by side to keep the time short.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import make_image_tree, train_overrides

from fer_multires.results import load_training_results
from fer_multires.runs import hydra_record

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]

STEPS_PER_EPOCH = 4  # 36 training frames, batches of 8

EPOCHS = 3

#: The step the interrupted jobs are interrupted at: inside the second epoch.
INTERRUPT_AT = STEPS_PER_EPOCH + 2


class Progress(pl.Callback):
    """Test-only: write the global step to a file, and slow the first attempt's steps down.

    The pause gives the test time to interrupt the job at a known step; it changes no number.
    """

    def __init__(self, path: str, pause_s: float = 0.0) -> None:
        self.path, self.pause_s = Path(path), pause_s

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        self.path.write_text(f"{attempt} {trainer.global_step}\n")
        if attempt == 0:
            time.sleep(self.pause_s)


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """Start the cluster (idempotent); the environment its commands need."""
    proc = subprocess.run([str(REPO / "scripts/slurm/up.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"the local Slurm cluster did not start: {proc.stderr.strip()[-800:]}"
        if os.environ.get("FER_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    env = dict(os.environ, SLURM_CONF=proc.stdout.strip().splitlines()[-1])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # several jobs share two cores; and the same threads everywhere
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    return env


def slurm(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def job_field(env: dict[str, str], job: str, name: str) -> str:
    out = slurm(env, "scontrol", "show", "job", job, "--oneliner")
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return fields.get(name, "")


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    detail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{detail}")


def sbatch(env: dict[str, str], folder: Path, name: str, command: list[str], *options: str) -> str:
    """Submit ``srun <command>`` as a batch job; return its id."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={name}\n"
        f"#SBATCH --output={folder}/{name}-%j.out\n"
        "#SBATCH --open-mode=append\n"
        "#SBATCH --time=10\n"
        + "".join(f"#SBATCH {option}\n" for option in options)
        + f"cd {shlex.quote(str(REPO))}\n"
        + f"srun {shlex.join(command)}\n"
    )
    return slurm(env, "sbatch", "--parsable", str(script)).split(";")[0]


def job_finished(env: dict[str, str], job: str) -> bool:
    return job_field(env, job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def train_command(data_root: Path, root: Path, *extra: str) -> list[str]:
    overrides = [o for o in train_overrides(data_root, root) if not o.startswith("paths.root_dir")]
    return [sys.executable, "-m", "fer_multires.train", *overrides, f"paths.root_dir={root}",
            "logger=none", *extra]  # fmt: skip


def run_dir_of(root: Path, job: str) -> Path:
    (found,) = list(root.glob(f"logs/*/runs/{job}"))
    return found


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("data") / "d", train_videos=4, val_videos=5,
                           frames=9)  # fmt: skip


@pytest.fixture(scope="module")
def interrupted_jobs(cluster, data_root, tmp_path_factory) -> dict[str, dict]:
    """An uninterrupted job, one requeued mid-epoch and one sent USR1 mid-epoch, side by side."""
    base = tmp_path_factory.mktemp("slurm")
    jobs: dict[str, dict] = {}
    for name, pause in (("straight", 0.0), ("requeued", 1.0), ("signalled", 1.0)):
        root = base / name
        progress = root / "progress.txt"
        command = train_command(
            data_root, root, f"trainer.max_epochs={EPOCHS}", "eval_after_fit=false",
            "+callbacks.progress._target_=integration.test_slurm.Progress",
            f"+callbacks.progress.path={progress}", f"+callbacks.progress.pause_s={pause}",
        )  # fmt: skip
        job = sbatch(cluster, root, name, command, "--ntasks=1", "--cpus-per-task=1")
        jobs[name] = {
            "id": job,
            "root": root,
            "progress": progress,
            "log": root / f"{name}-{job}.out",
        }

    def reached(name: str) -> Callable[[], bool]:
        def check() -> bool:
            text = jobs[name]["progress"].read_text() if jobs[name]["progress"].exists() else ""
            return bool(text) and int(text.split()[1]) >= INTERRUPT_AT

        return check

    for name in ("requeued", "signalled"):
        wait_for(f"{name} to reach step {INTERRUPT_AT}", reached(name), 120, jobs[name]["log"])
    slurm(cluster, "scontrol", "requeue", jobs["requeued"]["id"])
    slurm(cluster, "scancel", "--signal=USR1", jobs["signalled"]["id"])
    for name, job in jobs.items():
        wait_for(f"{name} to finish", lambda j=job: job_finished(cluster, j["id"]), 240, job["log"])
        job["state"] = job_field(cluster, job["id"], "JobState")
        job["restarts"] = int(job_field(cluster, job["id"], "Restarts") or 0)
        job["run_dir"] = run_dir_of(job["root"], job["id"])
    return jobs


@pytest.mark.parametrize("name", ["requeued", "signalled"])
def test_interrupted_job_resumes_in_its_run_dir_with_identical_weights(
    interrupted_jobs, name
) -> None:
    job, straight = interrupted_jobs[name], interrupted_jobs["straight"]
    log = job["log"].read_text()
    assert job["state"] == "COMPLETED", log[-3000:]
    assert job["restarts"] == 1, log[-3000:]  # the second attempt finished it
    # the second attempt found the first one's checkpoint in the same directory
    assert "resuming from the earlier attempt's" in log
    assert str(job["run_dir"] / "checkpoints" / "last.ckpt") in log
    if name == "signalled":
        assert "SIGUSR1 received: saved" in log and "Slurm job requeued" in log
    else:
        assert "SIGTERM received: saved" in log  # Slurm ends the attempt it requeues
    a, b = final_weights(straight["run_dir"]), final_weights(job["run_dir"])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ckpt = torch.load(job["run_dir"] / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == EPOCHS * STEPS_PER_EPOCH


def test_two_task_ddp_job_metrics_equal_one_process(cluster, data_root, tmp_path) -> None:
    """``trainer=slurm_ddp`` under ``srun`` (2 CPU tasks, gloo): Lightning reads the ranks from
    Slurm; the validation metrics equal a one-process evaluation of the same checkpoint."""
    root = tmp_path / "ddp"
    command = train_command(
        data_root, root, "trainer=slurm_ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.num_nodes=1", "trainer.precision=32-true", "trainer.sync_batchnorm=false",
        "eval_after_fit=false",
    )  # fmt: skip
    job = sbatch(cluster, root, "ddp", command, "--nodes=1", "--ntasks-per-node=2",
                 "--cpus-per-task=1")  # fmt: skip
    log = root / f"ddp-{job}.out"
    wait_for("the DDP job", lambda: job_finished(cluster, job), 240, log)
    assert job_field(cluster, job, "JobState") == "COMPLETED", log.read_text()[-3000:]
    text = log.read_text()
    assert "GLOBAL_RANK: 1" in text or "global rank 1" in text.lower() or "rank: 1" in text.lower()
    run_dir = run_dir_of(root, job)  # both ranks chose the job's directory
    trained = load_training_results(run_dir).metrics
    out = tmp_path / "eval"
    subprocess.run([sys.executable, "-m", "fer_multires.evaluate", f"ckpt_path={run_dir}",
                    f"run_dir={out}", f"paths.root_dir={tmp_path}", "eval.resolutions=[8]",
                    "trainer.enable_progress_bar=false"],
                   cwd=REPO, check=True, capture_output=True, env=cluster_free_env())  # fmt: skip
    native = json.loads((out / "metrics.json").read_text())
    for split in ("val_select", "val_rest", "val_full"):
        entry = native[split]["native"]
        assert entry["challenge_score"] == pytest.approx(trained[f"{split}/score"], abs=1e-7)
        assert entry["accuracy"] == pytest.approx(trained[f"{split}/acc"], abs=1e-7)
    assert native["val_full"]["native"]["n"] == trained["val_full/n"] == 45


def cluster_free_env() -> dict[str, str]:
    """The environment without the Slurm job variables (a plain one-process run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def test_two_point_sweep_through_the_slurm_launcher(cluster, data_root, tmp_path) -> None:
    root = tmp_path / "sweep"
    overrides = [o for o in train_overrides(data_root, root) if not o.startswith("data.multires.p")]
    command = [
        sys.executable, "-m", "fer_multires.train", "-m", "hydra/launcher=slurm", *overrides,
        "logger=none", "data.multires.p=0.0,1.0", "hydra.launcher.partition=debug",
        "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={root / 'multirun'}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=cluster, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    points = sorted(p for p in (root / "multirun").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name[:2] for p in points] == ["0_", "1_"]
    assert "data.multires.p=0.0" in points[0].name and "data.multires.p=1.0" in points[1].name
    job_ids = set()
    for point in points:
        results = load_training_results(point)
        assert 0.0 <= results.metrics["val_full/score"] <= 1.0
        assert (point / "checkpoints" / "last.ckpt").is_file()
        # each point ran as its own Slurm job (Hydra records submitit's job id)
        job_ids.add(hydra_record(point, "job", "id"))
    assert len(job_ids) == 2 and all(str(j).split("_")[0].isdigit() for j in job_ids), job_ids
