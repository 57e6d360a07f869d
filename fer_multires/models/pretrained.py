"""Pretrained weights by name: where ``model.pretrained`` comes from, checked and recorded.

``model.pretrained`` is one of

* a local file: a timm/PyTorch state dict or the VGGFace2 pickle (:mod:`.backbone`);
* ``timm:<model>.<tag>``: one of timm's pretrained tags (``timm.list_pretrained()``), resolved
  by timm's own registry (its ``pretrained_cfg``) to the Hugging Face Hub repository that holds
  the weights (``timm/<model>.<tag>`` for most);
* ``hf-hub:<org>/<repo>[@<revision>]``: a timm-format repository on the Hub (``config.json``,
  and ``model.safetensors`` or ``pytorch_model.bin``), e.g. one written by
  ``python -m fer_multires.export export.hub=true``.

Names go through ``huggingface_hub.hf_hub_download``, so its standard cache (``HF_HOME``,
``HF_HUB_CACHE``) and offline mode (``HF_HUB_OFFLINE=1``) work as users know them; nothing is
downloaded where the cache is only read (:func:`resolve_weights` with ``download=False``, which
is how :func:`~.backbone.create_backbone` reads names). No pickle is executed: ``.safetensors``
first, and ``pytorch_model.bin`` only through ``torch.load(weights_only=True)`` (timm's loader).

Training calls :func:`record_initial_weights` before reading any data: global rank 0 fetches a
name (the other ranks wait until the cache holds it and never reach the network), every rank
checks that the weights fit ``model.backbone``, and rank 0 records what the run starts from
(:class:`WeightsSource`: the name, the Hub revision, the file and its sha256) in the run
directory (``runs.INITIAL_WEIGHTS_FILE``). ``python -m fer_multires.weights`` fetches names ahead
of time and says whether they are cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fer_multires.runs import initial_weights_file
from fer_multires.utils.io import read_json, write_json_atomic

log = logging.getLogger(__name__)

#: The config key whose value is resolved here.
KEY = "model.pretrained"
#: Prefix of timm's pretrained tags (``timm:seresnet50.a1_in1k``).
TIMM_PREFIX = "timm:"
#: Prefix of Hub repositories (``hf-hub:timm/seresnet50.a1_in1k``), as timm spells it.
HUB_PREFIX = "hf-hub:"
#: The weights files of a timm-format repository, in the order they are tried (no pickles:
#: safetensors first; ``.bin`` read with ``torch.load(weights_only=True)``).
HUB_WEIGHTS_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
#: A timm-format repository's architecture file.
HUB_CONFIG_FILE = "config.json"
#: What a user runs on a machine with internet to fill the cache.
FETCH_COMMAND = "python -m fer_multires.weights fetch"
#: How long ranks other than 0 wait for rank 0 to fetch a name into the cache.
RANK_ZERO_WAIT_S = 900.0
#: How often they look.
POLL_S = 1.0
#: The environment variables a process's global rank is read from before the process group
#: exists, in Lightning's order (``lightning_fabric.utilities.rank_zero._get_rank``).
RANK_ENV_KEYS: tuple[str, ...] = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PretrainedError(ValueError):
    """``model.pretrained`` cannot be resolved, is not cached, or does not fit the model."""


class NotCachedError(PretrainedError):
    """A name is not in the Hugging Face cache and was not (or could not be) fetched."""


@dataclass(frozen=True)
class WeightsName:
    """A parsed ``model.pretrained`` value.

    Attributes:
        name: the value as given.
        kind: ``file``, ``timm`` or ``hf-hub``.
        repo_id: the Hub repository (names only).
        revision: the branch, tag or commit asked for (None: ``main``).
        filenames: the weights files to try, in order (names only).
        architecture: the timm architecture the name holds weights of, when known before
            reading the repository (``timm:`` names).
    """

    name: str
    kind: str
    repo_id: str | None = None
    revision: str | None = None
    filenames: tuple[str, ...] = HUB_WEIGHTS_FILES
    architecture: str | None = None


@dataclass(frozen=True)
class WeightsSource:
    """Where a run's initial weights came from: the record in the run directory.

    Attributes:
        name: ``model.pretrained`` as given (None: random initial weights).
        kind: ``none``, ``file``, ``timm`` or ``hf-hub``.
        file: the weights file read (absolute; in the Hub cache for names).
        sha256: the file's sha256.
        size: the file's size in bytes.
        repo_id: the Hub repository (names only).
        revision: the commit hash of the Hub snapshot the file is from (names only).
        filename: the file's name in the repository (names only).
        architecture: the timm architecture of the weights, when the name says it.
    """

    name: str | None
    kind: str
    file: str | None = None
    sha256: str | None = None
    size: int | None = None
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None
    architecture: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WeightsSource:
        """Read :meth:`to_json`'s dict (unknown keys are ignored)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: data.get(k) for k in fields if k in data or k in ("name", "kind")})

    def describe(self) -> str:
        """Return one line: the name, the revision and the file's sha256."""
        return describe_initial_weights(self.to_json())


def describe_initial_weights(record: Mapping[str, Any] | None) -> str:
    """Return one line saying where a run's initial weights came from (a record's dict, or None).

    E.g. ``hf-hub:timm/seresnet50.a1_in1k (revision 0f3c..., model.safetensors, sha256 9a1e...)``.
    """
    if not record:
        return "not recorded"
    if record.get("kind") == "none" or record.get("name") is None:
        return "random (model.pretrained=null)"
    parts = []
    if record.get("revision"):
        parts.append(f"revision {record['revision']}")
    if record.get("filename"):
        parts.append(str(record["filename"]))
    elif record.get("file") and record.get("file") != record.get("name"):
        parts.append(str(record["file"]))
    if record.get("sha256"):
        parts.append(f"sha256 {record['sha256']}")
    return f"{record['name']}" + (f" ({', '.join(parts)})" if parts else "")


# ------------------------------------------------------------------------------ names


def is_weights_name(value: str) -> bool:
    """Whether ``model.pretrained`` is a name (``timm:`` or ``hf-hub:``) rather than a file."""
    return value.startswith((TIMM_PREFIX, HUB_PREFIX))


def fetch_hint(name: str) -> str:
    """Return the words that say how to put a name into the cache."""
    return (
        f"on a machine with internet, run `{FETCH_COMMAND} {name}` with the same HF_HOME (or "
        "HF_HUB_CACHE) as this job, then rerun"
    )


def _split_revision(repo: str, value: str, key: str) -> tuple[str, str | None]:
    repo_id, _, revision = repo.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or "@" in revision:
        raise PretrainedError(
            f"{key}={value}: expected hf-hub:<org>/<repo> or hf-hub:<org>/<repo>@<revision>"
        )
    return repo_id, revision or None


def parse_weights_name(value: str, key: str = KEY) -> WeightsName:
    """Parse ``model.pretrained``: a file, ``timm:<model>.<tag>`` or ``hf-hub:<org>/<repo>``.

    A ``timm:`` name is resolved with timm's registry (``get_pretrained_cfg``): its Hub
    repository (``hf_hub_id``), its weights file when the registry names one, its architecture.

    Raises:
        PretrainedError: naming ``key``, for an unknown timm tag, a timm tag whose weights are
            not on the Hub, or a malformed ``hf-hub:`` name.
    """
    if value.startswith(HUB_PREFIX):
        repo_id, revision = _split_revision(value[len(HUB_PREFIX) :], value, key)
        return WeightsName(value, "hf-hub", repo_id, revision)
    if not value.startswith(TIMM_PREFIX):
        return WeightsName(value, "file")
    import timm
    from timm.models import get_pretrained_cfg

    model_tag = value[len(TIMM_PREFIX) :]
    try:
        cfg = get_pretrained_cfg(model_tag) if model_tag else None
    except RuntimeError:  # timm: "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        arch = model_tag.split(".", 1)[0]
        known = timm.list_pretrained(f"{arch}.*") if arch else []
        if known:
            hint = f"{arch}'s are: {', '.join(known)}"
        elif timm.is_model(arch):
            hint = f"timm has none for {arch} at all"
        else:
            hint = f"timm has no model {arch!r}"
        raise PretrainedError(
            f"{key}={value}: timm has no pretrained weights named {model_tag!r} ({hint}); list "
            "them with python -c \"import timm; print(timm.list_pretrained('seresnet*'))\""
        )
    if not cfg.hf_hub_id:
        raise PretrainedError(
            f"{key}={value}: timm's weights for {model_tag} are not on the Hugging Face Hub "
            f"({cfg.url or 'no address'}); download the file and set {key}=<its path>"
        )
    repo_id, revision = _split_revision(cfg.hf_hub_id, value, key)
    filenames = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_WEIGHTS_FILES
    return WeightsName(value, "timm", repo_id, revision, filenames, cfg.architecture)


# ------------------------------------------------------------------------------ the cache


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Return a file's sha256 (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _hub_file(name: WeightsName, filename: str, download: bool, key: str) -> Path | None:
    """Return a repository file's path in the cache (fetched when ``download``), or None.

    None means the repository has no such file (or, with ``download=False``, that it is not
    cached); the caller decides what that means.

    Raises:
        PretrainedError: naming ``key``, for a repository or revision that does not exist.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = hf_hub_download(
            name.repo_id, filename, revision=name.revision, local_files_only=not download,
            library_name="fer_multires",
        )  # fmt: skip
    except RepositoryNotFoundError as err:  # GatedRepoError included
        raise PretrainedError(
            f"{key}={name.name}: the Hub repository {name.repo_id} does not exist, or is private "
            f"or gated (log in with `hf auth login` if you have access): {type(err).__name__}"
        ) from err
    except RevisionNotFoundError as err:
        raise PretrainedError(
            f"{key}={name.name}: the Hub repository {name.repo_id} has no revision "
            f"{name.revision!r}"
        ) from err
    except (EntryNotFoundError, OfflineModeIsEnabled):  # LocalEntryNotFoundError included
        return None
    return Path(path)


def _revision_of(path: Path) -> str:
    """Return the commit hash of the snapshot a cached file is in (``snapshots/<commit>/...``)."""
    parts = path.parts
    return parts[len(parts) - 1 - parts[::-1].index("snapshots") + 1]


def _check_blob(path: Path, digest: str, name: str, key: str) -> None:
    """Refuse a cached file whose content is not the sha256 its blob is named by (LFS files)."""
    blob = path.resolve().name
    if _SHA256.fullmatch(blob) and blob != digest:
        raise PretrainedError(
            f"{key}={name}: the cached file {path} is damaged (sha256 {digest}, the Hub's "
            f"{blob}); delete {path.resolve()} and fetch it again: {FETCH_COMMAND} {name}"
        )


def _not_cached(name: WeightsName, download: bool, key: str) -> NotCachedError:
    from huggingface_hub import constants

    if download and not constants.HF_HUB_OFFLINE:
        why = "could not be fetched (no connection to the Hub?) and is not in the cache"
    elif download:
        why = "is not in the cache and HF_HUB_OFFLINE=1 forbids fetching it"
    else:
        why = "is not in the cache"
    return NotCachedError(
        f"{key}={name.name}: {name.repo_id} {why} ({constants.HF_HUB_CACHE}); "
        + fetch_hint(name.name)
    )


def _architecture_of_repo(name: WeightsName, download: bool, key: str) -> str:
    """Read a ``hf-hub:`` repository's ``config.json`` and return its timm architecture.

    Raises:
        NotCachedError: if ``config.json`` is neither cached nor fetched.
        PretrainedError: if the repository has no ``config.json`` with an ``architecture``.
    """
    path = _hub_file(name, HUB_CONFIG_FILE, download, key)
    if path is None:
        if download and _reachable():
            raise PretrainedError(
                f"{key}={name.name}: {name.repo_id} has no {HUB_CONFIG_FILE}: not a timm-format "
                f"repository ({HUB_CONFIG_FILE} and {' or '.join(HUB_WEIGHTS_FILES)})"
            )
        raise _not_cached(name, download, key)
    try:
        architecture = json.loads(path.read_text(encoding="utf-8"))["architecture"]
    except (ValueError, KeyError, TypeError) as err:
        raise PretrainedError(
            f"{key}={name.name}: {path} has no timm 'architecture' ({type(err).__name__}: {err})"
        ) from err
    return str(architecture)


def _reachable() -> bool:
    """Whether the Hub may be asked (not in offline mode)."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE


def resolve_weights(value: str, download: bool = False, key: str = KEY) -> WeightsSource:
    """Return the file ``model.pretrained`` names, with its revision and sha256.

    Args:
        value: a file path, ``timm:<model>.<tag>`` or ``hf-hub:<org>/<repo>[@<revision>]``.
        download: fetch a name missing from the cache (``hf_hub_download``; online, this also
            asks the Hub whether ``main`` moved); False reads the cache only.
        key: the config key, for the messages.

    Raises:
        FileNotFoundError: for a file that does not exist.
        NotCachedError: for a name that is not cached and was not fetched.
        PretrainedError: for a repository or revision that does not exist, one without weights,
            or a damaged cache file.
    """
    name = parse_weights_name(value, key)
    if name.kind == "file":
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{key}={value}: no such weights file")
        path = path.resolve()
        return WeightsSource(value, "file", str(path), sha256_of(path), path.stat().st_size)
    architecture = name.architecture
    if name.kind == "hf-hub":
        architecture = _architecture_of_repo(name, download, key)
    for filename in name.filenames:
        path = _hub_file(name, filename, download, key)
        if path is not None:
            break
    else:
        if download and _reachable() and _hub_file(name, HUB_CONFIG_FILE, False, key):
            raise PretrainedError(
                f"{key}={value}: {name.repo_id} has none of {', '.join(name.filenames)}: not a "
                "timm-format repository"
            )
        raise _not_cached(name, download, key)
    digest = sha256_of(path)
    _check_blob(path, digest, value, key)
    return WeightsSource(
        value, name.kind, str(path), digest, path.stat().st_size, name.repo_id,
        _revision_of(path), path.name, architecture,
    )  # fmt: skip


# ------------------------------------------------------------------------------ training


def env_global_rank(env: Mapping[str, str] | None = None) -> int:
    """Return this process's global rank as Lightning reads it before the process group exists.

    The first of :data:`RANK_ENV_KEYS` that is set; 0 when none is (a single process).
    """
    env = os.environ if env is None else env
    for name in RANK_ENV_KEYS:
        if env.get(name) is not None:
            return int(env[name])
    return 0


def wait_for_cache(value: str, wait_s: float = RANK_ZERO_WAIT_S, key: str = KEY) -> WeightsSource:
    """Return a name from the cache once rank 0 has put it there; never reaches the network.

    Raises:
        NotCachedError: if it is still not cached after ``wait_s`` seconds.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return resolve_weights(value, download=False, key=key)
        except NotCachedError as err:
            if time.monotonic() >= deadline:
                raise NotCachedError(
                    f"{err} (waited {wait_s:g} s for rank 0 to fetch it; did rank 0 fail?)"
                ) from None
        time.sleep(POLL_S)


def check_fits(source: WeightsSource, backbone: str, key: str = KEY) -> None:
    """Check, without building the real model, that the weights fit ``model.backbone``.

    The architecture a name states (``timm:`` names, a repository's ``config.json``) must be
    the backbone's, and the file's keys and shapes must fit it apart from the head (compared
    with the model built on the meta device: no memory, no initialisation). VGGFace2 pickles
    are left to :func:`~.backbone.create_backbone`, which checks them on loading.

    Raises:
        PretrainedError: naming ``key``, ``model.backbone`` and what differs.
    """
    import timm
    import torch

    from fer_multires.models.backbone import (
        WeightsFormatError,
        detect_weights_format,
        fit_state_dict,
    )

    if source.file is None:
        return
    wanted = backbone.split(".", 1)[0]
    if source.architecture and source.architecture.split(".", 1)[0] != wanted:
        raise PretrainedError(
            f"{key}={source.name} holds {source.architecture} weights; model.backbone={backbone}. "
            f'Use weights of {wanted} (python -c "import timm; print(timm.list_pretrained('
            f"'{wanted}.*'))\") or set model.backbone={source.architecture}"
        )
    if source.kind == "file" and detect_weights_format(source.file) == "vggface2":
        return
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = timm.create_model(backbone, pretrained=False)
    except Exception:  # a model whose construction needs real tensors
        model = timm.create_model(backbone, pretrained=False)
    try:
        fit_state_dict(timm.models.load_state_dict(source.file), model, source.name)
    except WeightsFormatError as err:
        raise PretrainedError(
            f"{key}: {err}. model.backbone={backbone}: use weights of {wanted}, or set "
            "model.backbone to the weights' architecture"
        ) from err
    except Exception as err:  # unreadable file: timm's loader raises many kinds
        raise PretrainedError(
            f"{key}={source.name}: cannot read {source.file} as a timm state dict "
            f"(.safetensors, or .pth/.bin read with weights_only=True): {type(err).__name__}: {err}"
        ) from err


def prepare_weights(
    value: str | None, backbone: str, rank: int | None = None, wait_s: float = RANK_ZERO_WAIT_S
) -> WeightsSource:
    """Resolve ``model.pretrained`` for training and check it fits ``model.backbone``.

    Global rank 0 fetches a name missing from the cache (online; offline it reads the cache
    only); the other ranks wait for the cache to hold it and never reach the network.

    Args:
        value: ``model.pretrained`` (None: random initial weights).
        backbone: ``model.backbone``.
        rank: the global rank; None reads it from the environment (:func:`env_global_rank`).
        wait_s: how long the other ranks wait for rank 0.

    Raises:
        PretrainedError: naming ``model.pretrained`` and what to run.
        FileNotFoundError: for a local file that does not exist.
    """
    if value is None:
        return WeightsSource(None, "none")
    rank = env_global_rank() if rank is None else rank
    if rank == 0:
        source = resolve_weights(str(value), download=True)
    else:
        source = wait_for_cache(str(value), wait_s)
    check_fits(source, backbone)
    return source


def record_initial_weights(model_cfg: Mapping[str, Any], run_dir: Path) -> WeightsSource:
    """Resolve, check and record (rank 0) where a run's initial weights come from.

    Called by training before any data is read. The record
    (``<run dir>/``:data:`~fer_multires.runs.INITIAL_WEIGHTS_FILE`) of a resumed run is kept:
    it says what the run started from.

    Args:
        model_cfg: the ``model`` node (``pretrained``, ``backbone``).
        run_dir: the run directory.

    Raises:
        PretrainedError: naming ``model.pretrained``, before any training.
    """
    source = prepare_weights(model_cfg.get("pretrained"), str(model_cfg["backbone"]))
    path = initial_weights_file(run_dir)
    if env_global_rank() == 0:
        if path.is_file():
            log.info("initial weights recorded by the run's start: %s", path)
        else:
            write_json_atomic(path, source.to_json())
    log.info("initial weights: %s", source.describe())
    return source


def read_initial_weights(run_dir: Path) -> dict[str, Any] | None:
    """Return a run's initial-weights record (:meth:`WeightsSource.to_json`), or None."""
    data = read_json(initial_weights_file(run_dir))
    return data if isinstance(data, dict) else None
