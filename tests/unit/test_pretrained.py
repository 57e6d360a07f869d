"""Pretrained weights by name (issue 26): the Hugging Face cache, offline, checked and recorded.

Every test reads a cache written in the exact layout ``hf_hub_download`` leaves
(``conftest.write_hub_repo``; checked with huggingface_hub's own ``scan_cache_dir``), with
``HF_HUB_OFFLINE=1`` and sockets refused: nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from conftest import FakeHub, timm_repo_files, write_hub_repo
from huggingface_hub import constants
from lightning_fabric.utilities.rank_zero import _get_rank

from fer_multires.models import pretrained
from fer_multires.models.backbone import create_backbone
from fer_multires.models.pretrained import (
    NotCachedError,
    PretrainedError,
    WeightsSource,
    env_global_rank,
    parse_weights_name,
    prepare_weights,
    read_initial_weights,
    record_initial_weights,
    resolve_weights,
)
from fer_multires.runs import initial_weights_file
from unit.test_backbone import no_network  # noqa: F401 (fixture)

TAG = "timm:test_resnet.r160_in1k"
COMMIT = "1" * 40


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network) -> Path:  # noqa: F811
    """An empty Hugging Face cache, offline, as HF_HUB_CACHE and HF_HUB_OFFLINE=1 make it."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for name in pretrained.RANK_ENV_KEYS:
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture
def source_model() -> torch.nn.Module:
    """The weights the cache holds: a seeded test_resnet, not timm's default initialisation."""
    torch.manual_seed(26)
    model = timm.create_model("test_resnet", pretrained=False)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor))
    return model


@pytest.fixture
def cached_tag(hub_cache: Path, source_model: torch.nn.Module) -> Path:
    """timm's test_resnet.r160_in1k as timm's registry names it, in the cache."""
    repo = timm.models.get_pretrained_cfg("test_resnet.r160_in1k").hf_hub_id
    return write_hub_repo(hub_cache, repo, timm_repo_files(source_model, "test_resnet"), COMMIT)


def test_the_written_cache_is_the_layout_huggingface_hub_reads(cached_tag, hub_cache) -> None:
    (repo,) = huggingface_hub.scan_cache_dir(hub_cache).repos
    assert repo.repo_id == "timm/test_resnet.r160_in1k"
    (revision,) = repo.revisions
    assert revision.commit_hash == COMMIT and revision.refs == frozenset({"main"})
    found = huggingface_hub.try_to_load_from_cache(repo.repo_id, "model.safetensors")
    assert Path(found) == cached_tag / "model.safetensors"


def test_timm_tag_resolves_through_timms_registry() -> None:
    name = parse_weights_name("timm:seresnet50.a1_in1k")
    cfg = timm.models.get_pretrained_cfg("seresnet50.a1_in1k")
    assert (name.kind, name.repo_id, name.architecture) == ("timm", cfg.hf_hub_id, "seresnet50")
    assert name.filenames == ("model.safetensors", "pytorch_model.bin")
    hub = parse_weights_name("hf-hub:me/fer@v1")
    assert (hub.kind, hub.repo_id, hub.revision) == ("hf-hub", "me/fer", "v1")
    assert parse_weights_name("/data/w.pth").kind == "file"


@pytest.mark.parametrize(
    "value, words",
    [
        ("timm:seresnet18.nope", "timm has no pretrained weights named 'seresnet18.nope'"),
        ("timm:nomodel.x", "timm has no pretrained weights"),
        ("hf-hub:no-org", "expected hf-hub:<org>/<repo>"),
        ("hf-hub:a/b/c", "expected hf-hub:<org>/<repo>"),
    ],
)
def test_malformed_names_are_errors_naming_the_key(value, words) -> None:
    with pytest.raises(PretrainedError, match="model.pretrained") as err:
        parse_weights_name(value)
    assert words in str(err.value)


def test_backbone_starts_from_exactly_the_cached_weights(cached_tag, source_model) -> None:
    model = create_backbone("test_resnet", 7, TAG)
    expected = source_model.state_dict()
    got = model.state_dict()
    for key, value in expected.items():
        if not key.startswith("fc."):  # a 7-class head replaces the 1000-class one
            assert torch.equal(got[key], value), key
    assert model.fc.out_features == 7
    same_head = create_backbone("test_resnet", 1000, TAG)
    assert torch.equal(same_head.fc.weight, expected["fc.weight"])


def test_source_records_revision_file_and_sha256(cached_tag) -> None:
    source = prepare_weights(TAG, "test_resnet")
    data = (cached_tag / "model.safetensors").read_bytes()
    assert source.revision == COMMIT
    assert source.repo_id == "timm/test_resnet.r160_in1k"
    assert source.filename == "model.safetensors" and source.size == len(data)
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert Path(source.file) == cached_tag / "model.safetensors"
    assert WeightsSource.from_json(json.loads(json.dumps(source.to_json()))) == source
    line = source.describe()
    assert TAG in line and COMMIT in line and source.sha256 in line


def test_hf_hub_repo_and_a_pinned_revision(hub_cache) -> None:
    old = timm.create_model("test_resnet", pretrained=False)
    new = timm.create_model("test_resnet", pretrained=False)
    write_hub_repo(hub_cache, "me/fer", timm_repo_files(old, "test_resnet"), "a" * 40)
    write_hub_repo(hub_cache, "me/fer", timm_repo_files(new, "test_resnet"), "b" * 40)
    assert resolve_weights("hf-hub:me/fer").revision == "b" * 40  # refs/main
    pinned = resolve_weights(f"hf-hub:me/fer@{'a' * 40}")
    assert pinned.revision == "a" * 40 and pinned.architecture == "test_resnet"
    model = create_backbone("test_resnet", 1000, f"hf-hub:me/fer@{'a' * 40}")
    assert torch.equal(model.conv1[0].weight, old.conv1[0].weight)


def test_pytorch_model_bin_is_read_weights_only(hub_cache, monkeypatch) -> None:
    src = timm.create_model("test_resnet", pretrained=False)
    buffer = torch.nn.Module()  # a pickle that would need code to run: refused by weights_only
    files = timm_repo_files(src, "test_resnet")
    del files["model.safetensors"]
    path = hub_cache / "weights.bin"
    torch.save(src.state_dict(), path)
    files["pytorch_model.bin"] = path.read_bytes()
    write_hub_repo(hub_cache, "me/bin", files)
    assert resolve_weights("hf-hub:me/bin").filename == "pytorch_model.bin"
    model = create_backbone("test_resnet", 1000, "hf-hub:me/bin")
    assert torch.equal(model.fc.weight, src.fc.weight)

    torch.save({"model": buffer}, path)
    write_hub_repo(hub_cache, "me/code", {**files, "pytorch_model.bin": path.read_bytes()})
    with pytest.raises(PretrainedError, match="weights_only"):
        prepare_weights("hf-hub:me/code", "test_resnet")


def test_name_not_cached_offline_says_what_to_run(hub_cache) -> None:
    with pytest.raises(NotCachedError) as err:
        prepare_weights("timm:seresnet50.a1_in1k", "seresnet50")
    message = str(err.value)
    assert message.startswith("model.pretrained=timm:seresnet50.a1_in1k")
    assert "HF_HUB_OFFLINE=1" in message and str(hub_cache) in message
    assert "python -m fer_multires.weights fetch timm:seresnet50.a1_in1k" in message


@pytest.fixture
def online(hub_cache, fake_hub, monkeypatch) -> FakeHub:
    """huggingface_hub online, against a Hub on 127.0.0.1 (sockets elsewhere refused)."""
    monkeypatch.undo()  # the no_network fixture's socket patches: loopback only instead
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    fake_hub.patch(monkeypatch)
    connect = socket.socket.connect

    def loopback_only(self, address):
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"network access attempted: {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return fake_hub


def test_rank_zero_fetches_into_the_standard_cache(online, hub_cache, source_model) -> None:
    online.repos["timm/test_resnet.r160_in1k"] = (COMMIT, timm_repo_files(source_model, "x"))
    source = prepare_weights(TAG, "test_resnet", rank=0)
    assert source.revision == COMMIT and source.filename == "model.safetensors"
    (repo,) = huggingface_hub.scan_cache_dir(hub_cache).repos  # written by huggingface_hub
    assert repo.repo_id == "timm/test_resnet.r160_in1k"
    model = create_backbone("test_resnet", 1000, TAG)  # from the cache
    assert torch.equal(model.fc.weight, source_model.fc.weight)


def test_a_nonexistent_repository_is_an_error_naming_it(online) -> None:
    with pytest.raises(PretrainedError, match="model.pretrained=hf-hub:nobody/nothing: the Hub "
                       "repository nobody/nothing does not exist"):  # fmt: skip
        prepare_weights("hf-hub:nobody/nothing", "test_resnet")
    online.repos["me/fer"] = (COMMIT, {"README.md": b"no weights"})
    with pytest.raises(PretrainedError, match="has no config.json: not a timm-format"):
        prepare_weights("hf-hub:me/fer", "test_resnet")
    online.repos["me/fer"] = (COMMIT, {"config.json": b'{"architecture": "test_resnet"}'})
    with pytest.raises(PretrainedError, match="has none of model.safetensors, pytorch_model.bin"):
        prepare_weights("hf-hub:me/fer", "test_resnet")
    with pytest.raises(PretrainedError, match="has no revision 'v9'"):
        prepare_weights("hf-hub:me/fer@v9", "test_resnet")


def test_weights_of_another_architecture_are_refused(cached_tag, hub_cache) -> None:
    words = "holds test_resnet weights; model.backbone=resnet10t"
    with pytest.raises(PretrainedError, match=words):
        prepare_weights(TAG, "resnet10t")
    # a repository whose config.json names the backbone but whose weights are another model's
    lying = timm_repo_files(timm.create_model("resnet10t"), "test_resnet")
    write_hub_repo(hub_cache, "me/lying", lying)
    with pytest.raises(PretrainedError, match="do not fit test_resnet") as err:
        prepare_weights("hf-hub:me/lying", "test_resnet")
    assert str(err.value).startswith("model.pretrained: Weights in hf-hub:me/lying")


def test_a_damaged_cache_file_is_refused(cached_tag) -> None:
    blob = (cached_tag / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b" ")
    with pytest.raises(PretrainedError, match="is damaged"):
        resolve_weights(TAG)


@pytest.mark.parametrize(
    "env",
    [{}, {"RANK": "3"}, {"LOCAL_RANK": "1"}, {"SLURM_PROCID": "2"},
     {"RANK": "0", "LOCAL_RANK": "1"}, {"LOCAL_RANK": "0", "SLURM_PROCID": "5"}],
)  # fmt: skip
def test_rank_is_read_from_the_environment_as_lightning_reads_it(env, monkeypatch) -> None:
    for name in pretrained.RANK_ENV_KEYS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env_global_rank() == (_get_rank() or 0)


def test_other_ranks_never_fetch_and_wait_for_rank_zero(hub_cache, source_model, monkeypatch):
    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append(kwargs.get("local_files_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    monkeypatch.setattr(pretrained, "POLL_S", 0.05)
    files = timm_repo_files(source_model, "test_resnet")
    writer = threading.Timer(0.5, write_hub_repo, (hub_cache, "timm/test_resnet.r160_in1k", files))
    writer.start()
    start = time.monotonic()
    source = prepare_weights(TAG, "test_resnet", rank=1, wait_s=30)
    writer.join()
    assert time.monotonic() - start >= 0.5 and source.revision is not None
    assert calls and all(calls)  # local_files_only=True on every call: no network

    with pytest.raises(NotCachedError, match="waited 0.2 s for rank 0"):
        prepare_weights("hf-hub:me/never", "test_resnet", rank=2, wait_s=0.2)


def test_rank_zero_records_where_the_weights_came_from(cached_tag, tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model_cfg = {"pretrained": TAG, "backbone": "test_resnet"}
    source = record_initial_weights(model_cfg, run_dir)
    assert read_initial_weights(run_dir) == source.to_json()
    # a resumed run keeps what it started from
    initial_weights_file(run_dir).write_text(json.dumps({"name": "earlier", "kind": "file"}))
    record_initial_weights(model_cfg, run_dir)
    assert read_initial_weights(run_dir)["name"] == "earlier"
    # other ranks do not write
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("RANK", "1")
    record_initial_weights(model_cfg, other)
    assert not initial_weights_file(other).exists()


def test_random_initial_weights_are_recorded_as_such(tmp_path, hub_cache) -> None:
    source = record_initial_weights({"pretrained": None, "backbone": "test_resnet"}, tmp_path)
    assert source == WeightsSource(None, "none")
    assert source.describe() == "random (model.pretrained=null)"
    assert read_initial_weights(tmp_path) == source.to_json()


def test_local_file_is_recorded_with_its_sha256(tmp_path, hub_cache, source_model) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(timm_repo_files(source_model, "test_resnet")["model.safetensors"])
    source = prepare_weights(str(path), "test_resnet")
    assert (source.kind, source.file, source.revision) == ("file", str(path), None)
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(PretrainedError, match="do not fit resnet10t"):
        prepare_weights(str(path), "resnet10t")
