"""Training from weights by name (issue 26), offline, from a Hugging Face cache in a temp HF_HOME.

The cache is written in the layout ``hf_hub_download`` leaves (``conftest.write_hub_repo``);
``HF_HUB_OFFLINE=1`` everywhere: nothing reaches the network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from conftest import make_image_tree, run_train, timm_repo_files, train_overrides, write_hub_repo
from huggingface_hub import constants

from fer_multires.models.pretrained import NotCachedError, PretrainedError
from fer_multires.runs import initial_weights_file
from fer_multires.sweeps import write_report

TAG = "timm:test_resnet.r160_in1k"
COMMIT = "2" * 40


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF_HOME whose cache holds timm's test_resnet.r160_in1k (seeded weights)."""
    home = tmp_path_factory.mktemp("hf_home")
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False)
    write_hub_repo(home / "hub", "timm/test_resnet.r160_in1k",
                   timm_repo_files(model, "test_resnet"), COMMIT)  # fmt: skip
    return home


def test_train_from_a_cached_name_offline_records_it(hf_home, tmp_path) -> None:
    """Trained by name offline; the record is shown by the evaluation and the sweep report.

    Under DDP as on GPUs (``strategy=ddp``: rank 1 is the script run again with LOCAL_RANK=1,
    before any process group), rank 1 reads the name from the cache and writes no record.
    """
    data_root = make_image_tree(tmp_path / "data", train_videos=2, val_videos=3, frames=4)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.train", *train_overrides(data_root, tmp_path),
         f"run_dir={run_dir}", "model.backbone=test_resnet", f"model.pretrained={TAG}",
         "logger=none", "eval_after_fit=true", "eval.resolutions=[8]", "eval.plots=false",
         "trainer=ddp_sim", "trainer.strategy=ddp", "data.batch_size=2"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(initial_weights_file(run_dir).read_text())
    weights = hf_home / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / COMMIT
    assert record["name"] == TAG and record["revision"] == COMMIT
    assert Path(record["file"]) == weights / "model.safetensors"
    assert len(record["sha256"]) == 64
    line = f"{TAG} (revision {COMMIT}, model.safetensors, sha256 {record['sha256']})"
    assert f"initial weights: {line}" in (run_dir / "train_ddp_process_1.log").read_text()
    evaluation = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert evaluation["initial_weights"] == record
    assert (
        f"- initial weights (model.pretrained): {line}"
        in (run_dir / "eval" / "report.md").read_text()
    )
    write_report(run_dir, tmp_path / "report")
    assert (
        f"Initial weights (model.pretrained), all jobs: {line}"
        in (tmp_path / "report" / "report.md").read_text()
    )
    (row,) = csv.DictReader(io.StringIO((tmp_path / "report" / "jobs.csv").read_text()))
    assert row["initial_weights"] == line


@pytest.fixture
def offline_cache(hf_home, monkeypatch) -> Path:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home / "hub"


@pytest.mark.parametrize(
    ("backbone", "name", "error", "words"),
    [
        ("seresnet50", "timm:seresnet50.a1_in1k", NotCachedError,
         "python -m fer_multires.weights fetch timm:seresnet50.a1_in1k"),
        ("seresnet18", TAG, PretrainedError,
         "holds test_resnet weights; model.backbone=seresnet18"),
        ("test_resnet", "hf-hub:nobody/nothing", NotCachedError, "is not in the cache"),
    ],
)  # fmt: skip
def test_bad_names_stop_training_before_any_data_is_read(
    offline_cache, tmp_path, backbone, name, error, words
) -> None:
    absent = tmp_path / "no_data_here"  # reading data would fail with another error
    run_dir = tmp_path / "run"
    with pytest.raises(error, match="model.pretrained") as err:
        run_train(absent, tmp_path, run_dir, f"model.backbone={backbone}",
                  f"model.pretrained={name}")  # fmt: skip
    assert words in str(err.value)
    assert not initial_weights_file(run_dir).exists()
    assert not (run_dir / "config.yaml").exists()


def run_weights(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_multires.weights", *args],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def test_fetch_fills_a_cache_that_show_reads_offline(fake_hub, tmp_path) -> None:
    """The cluster workflow: fetch on a login node (a Hub on 127.0.0.1), then offline."""
    model = timm.create_model("test_resnet", pretrained=False)
    fake_hub.repos["me/fer"] = (COMMIT, timm_repo_files(model, "test_resnet"))
    home = tmp_path / "hf_home"
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": fake_hub.url}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    offline = {**env, "HF_HUB_OFFLINE": "1"}

    fetched = run_weights(env, "fetch", "hf-hub:me/fer", "hf-hub:nobody/nothing")
    assert fetched.returncode == 1  # one of the two does not exist
    assert "the Hub repository nobody/nothing does not exist" in fetched.stderr
    snapshot = home / "hub" / "models--me--fer" / "snapshots" / COMMIT
    assert f"file:     {snapshot / 'model.safetensors'}" in fetched.stdout
    assert f"revision: {COMMIT}" in fetched.stdout
    requests = len(fake_hub.requests)
    shown = run_weights(offline, "show", "hf-hub:me/fer", "hf-hub:me/other")
    assert len(fake_hub.requests) == requests  # offline: the Hub is not asked
    assert shown.returncode == 1  # me/other is not cached
    assert "cached (usable offline): hf-hub:me/fer" in shown.stdout
    assert "not cached: NAME=hf-hub:me/other" in shown.stderr
    assert "python -m fer_multires.weights fetch hf-hub:me/other" in shown.stderr
    sha256 = fetched.stdout.split("sha256:")[1].split()[0]
    assert sha256 == shown.stdout.split("sha256:")[1].split()[0]
    blob = (snapshot / "model.safetensors").resolve()
    assert blob.name == sha256 == hashlib.sha256(blob.read_bytes()).hexdigest()
