"""Backbone creation: timm models, local pretrained weights, the VGGFace2 SE-ResNet-50 conversion.

Nothing here downloads: models are always built with ``pretrained=False`` unless weights come from
a local file. Two local formats are supported:

* a timm/PyTorch state dict (``.pth``, ``.pt``, ``.bin``, ``.safetensors``; a checkpoint dict
  holding ``state_dict``/``model`` also works), loaded through timm's own local-file mechanism;
* the VGGFace2 SE-ResNet-50 weights ``senet50_ft_weight.pkl`` (a pickled dict name -> float32 numpy
  array, originally converted from Caffe). Their key names are mapped onto timm's ``seresnet50`` and
  the two architectural differences of the Caffe model are patched in (see `apply_caffe_patches`).

In both cases the classifier is a new ``num_classes``-way head unless the file holds a head of
exactly that size (timm format only), in which case it is kept.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import timm
import torch
from torch import nn

__all__ = [
    "apply_caffe_patches",
    "create_backbone",
    "detect_weights_format",
    "fit_state_dict",
    "load_vggface2_state_dict",
]

log = logging.getLogger(__name__)

#: The only timm architecture the VGGFace2 weights fit.
VGGFACE2_ARCH = "seresnet50"
#: Suffixes treated as the VGGFace2 pickle without looking inside the file.
_PICKLE_SUFFIXES = (".pkl", ".pickle")
#: How many offending keys an error message lists before summarising the rest.
_MAX_KEYS_SHOWN = 12

_SE_RENAMES = (
    (re.compile(r"^(layer\d+\.\d+)\.conv4\.(weight|bias)$"), r"\1.se.fc1.\2"),
    (re.compile(r"^(layer\d+\.\d+)\.conv5\.(weight|bias)$"), r"\1.se.fc2.\2"),
)
_VGGFACE2_HEAD_KEYS = ("fc.weight", "fc.bias")


class WeightsFormatError(ValueError):
    """A weights file could not be read, or does not fit the model it is loaded into."""


# --------------------------------------------------------------------------------------------------
# Restricted unpickling of the VGGFace2 pickle
# --------------------------------------------------------------------------------------------------


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickle of plain numpy arrays needs, under their numpy 1.x and 2.x names."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
        from numpy.core.numeric import _frombuffer
    import codecs

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles of bytes at protocol < 3 go through _codecs.encode.
        ("_codecs", "encode"): codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (and plain containers): no arbitrary code runs."""

    _allowed = _numpy_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global only if it is one of the numpy array reconstruction helpers."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only numpy arrays are expected)"
            ) from None


def _unpickle_numpy(path: Path) -> Any:
    with path.open("rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def _format_keys(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    if len(keys) > _MAX_KEYS_SHOWN:
        shown += f", ... ({len(keys) - _MAX_KEYS_SHOWN} more)"
    return shown


def _check_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Pretrained weights file not found: {path}")
    return path


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def detect_weights_format(path: str | Path) -> Literal["timm", "vggface2"]:
    """Tell the VGGFace2 pickle from a timm-format state dict file.

    A ``.pkl``/``.pickle`` file is taken to be the VGGFace2 pickle. A file with another name is
    VGGFace2 only if it is a plain pickle of a dict of numpy arrays with SE keys named ``conv4``;
    anything else (torch zip or legacy files, safetensors, unreadable files) is reported as ``timm``
    and left to the timm loader to accept or reject.

    Args:
        path: The weights file.

    Returns:
        ``"vggface2"`` or ``"timm"``.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file.
    """
    path = _check_file(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return "vggface2"
    if path.suffix.lower() == ".safetensors" or zipfile.is_zipfile(path):
        return "timm"
    with path.open("rb") as f:
        head = f.read(2)
    if len(head) < 2 or head[0] != 0x80:  # not a pickle (protocol >= 2)
        return "timm"
    try:
        obj = _unpickle_numpy(path)
    except Exception:  # not a plain numpy pickle: legacy torch.save files land here or below
        return "timm"
    if (
        isinstance(obj, dict)
        and obj
        and all(isinstance(v, np.ndarray) for v in obj.values())
        and any(isinstance(k, str) and "conv4" in k for k in obj)
    ):
        return "vggface2"
    return "timm"


def load_vggface2_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the VGGFace2 SE-ResNet-50 pickle as a state dict in timm ``seresnet50`` naming.

    The squeeze-excite convolutions ``layerX.Y.conv4``/``conv5`` become ``layerX.Y.se.fc1``/``fc2``
    and the 8631-way identity classifier (``fc.weight``, ``fc.bias``) is dropped. All other names
    are kept as they are. The file is unpickled with a restricted unpickler that only builds numpy
    arrays, so a malicious pickle cannot run code.

    Args:
        path: ``senet50_ft_weight.pkl`` or a file in the same format (a pickled dict
            name -> float numpy array, Python 2 pickles included).

    Returns:
        Parameter and buffer name -> float32 tensor, without ``num_batches_tracked`` entries and
        without the classifier.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file.
        ValueError: If the file is not a pickled dict of string -> numeric numpy array.
    """
    path = _check_file(path)
    expected = "a pickled dict name -> float32 numpy array (VGGFace2 senet50_ft_weight.pkl)"
    try:
        raw = _unpickle_numpy(path)
    except Exception as err:
        raise WeightsFormatError(
            f"Cannot read VGGFace2 weights from {path}: expected {expected}; "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(raw, dict) or not raw:
        raise WeightsFormatError(
            f"Cannot read VGGFace2 weights from {path}: expected {expected}, "
            f"got {type(raw).__name__}{' (empty)' if isinstance(raw, dict) else ''}"
        )
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise WeightsFormatError(f"VGGFace2 weights {path}: key {key!r} is not a string")
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise WeightsFormatError(
                f"VGGFace2 weights {path}: entry '{key}' is {kind}, expected a float numpy array"
            )
        if key in _VGGFACE2_HEAD_KEYS:
            continue
        name = key
        for pattern, repl in _SE_RENAMES:
            name = pattern.sub(repl, name)
        state_dict[name] = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
    return state_dict


def apply_caffe_patches(model: nn.Module) -> None:
    """Make a timm SE-ResNet compute what the Caffe (VGGFace2) SE-ResNet-50 computes.

    The Caffe model differs from timm's in two ways that parameter shapes do not reveal:

    1. In the first block of ``layer2``, ``layer3`` and ``layer4`` the stride 2 sits on the 1x1
       ``conv1`` rather than on the 3x3 ``conv2`` (the downsample branch is the same in both).
    2. The stem max-pool is ``MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)``
       instead of ``MaxPool2d(3, 2, padding=1)``.

    Output sizes are unchanged, only the sampling positions move. The model is checked completely
    before anything is changed; patching an already patched model is a no-op.

    Args:
        model: A timm ``ResNet`` with ``Bottleneck`` blocks (e.g. ``seresnet50``); modified in
            place.

    Raises:
        ValueError: If the model does not have the expected timm ResNet structure (stem
            ``maxpool`` a ``MaxPool2d``; first blocks of ``layer2``-``layer4`` with a 1x1 ``conv1``
            and an undilated 3x3 ``conv2`` carrying the stride, no anti-aliasing).
    """
    name = type(model).__name__
    maxpool = getattr(model, "maxpool", None)
    if not isinstance(maxpool, nn.MaxPool2d):
        raise ValueError(
            f"apply_caffe_patches: expected {name}.maxpool to be nn.MaxPool2d (timm ResNet stem), "
            f"got {type(maxpool).__name__}"
        )
    to_patch: list[tuple[nn.Conv2d, nn.Conv2d]] = []
    for stage in ("layer2", "layer3", "layer4"):
        layer = getattr(model, stage, None)
        if not isinstance(layer, nn.Sequential) or len(layer) == 0:
            raise ValueError(
                f"apply_caffe_patches: expected {name}.{stage} to be a non-empty nn.Sequential of "
                f"blocks, got {type(layer).__name__}"
            )
        block = layer[0]
        where = f"{name}.{stage}[0] ({type(block).__name__})"
        conv1, conv2 = getattr(block, "conv1", None), getattr(block, "conv2", None)
        if not (isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)):
            raise ValueError(f"apply_caffe_patches: {where} has no nn.Conv2d conv1/conv2")
        if conv1.kernel_size != (1, 1) or conv2.kernel_size != (3, 3):
            raise ValueError(
                f"apply_caffe_patches: {where} needs a 1x1 conv1 and a 3x3 conv2 (a Bottleneck "
                f"block), got {conv1.kernel_size} and {conv2.kernel_size}"
            )
        if conv2.dilation != (1, 1) or not isinstance(getattr(block, "aa", None), nn.Identity):
            raise ValueError(
                f"apply_caffe_patches: {where} is dilated or anti-aliased; the Caffe layout is not"
            )
        strides = (tuple(conv1.stride), tuple(conv2.stride))
        if strides == ((1, 1), (2, 2)):
            to_patch.append((conv1, conv2))
        elif strides != ((2, 2), (1, 1)):  # anything but "already patched"
            raise ValueError(
                f"apply_caffe_patches: {where} has conv1/conv2 strides {strides}, expected "
                "((1, 1), (2, 2)) (timm) or ((2, 2), (1, 1)) (already patched)"
            )
    for conv1, conv2 in to_patch:
        conv1.stride = (2, 2)
        conv2.stride = (1, 1)
    model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)


def create_backbone(name: str, num_classes: int, pretrained: str | Path | None = None) -> nn.Module:
    """Create a timm classifier with a new ``num_classes``-way head, optionally with weights.

    Nothing is downloaded: the model is built with ``pretrained=False``, from a local file, or
    from a name already in the Hugging Face cache (training fetches names first:
    :func:`~fer_multires.models.pretrained.prepare_weights`).

    Args:
        name: A timm model name, e.g. ``seresnet50`` (the paper's) or ``seresnet18``/``seresnet34``
            (small CPU variants).
        num_classes: Size of the new classification head.
        pretrained: ``None`` for random initialisation; a timm-format state dict file
            (``.pth``/``.pt``/``.bin``/``.safetensors``), whose backbone must match ``name``
            exactly and whose head is kept only if it has ``num_classes`` outputs (otherwise the
            head stays randomly initialised); the VGGFace2 ``senet50_ft_weight.pkl`` (only with
            ``name="seresnet50"``), converted with `load_vggface2_state_dict` and patched with
            `apply_caffe_patches`; or a name, ``timm:<model>.<tag>`` or
            ``hf-hub:<org>/<repo>`` (:mod:`fer_multires.models.pretrained`), read from the cache
            like a timm-format file.

    Returns:
        The model (a timm ``ResNet`` for the SE-ResNet names), in training mode.

    Raises:
        FileNotFoundError: If ``pretrained`` does not exist.
        ValueError: If the file cannot be read, or its keys or shapes do not fit the model
            (the message names the file and the keys), or VGGFace2 weights are used with a model
            other than ``seresnet50``; for a name that is not cached
            (:class:`~fer_multires.models.pretrained.PretrainedError`).
    """
    if not timm.is_model(name):
        raise ValueError(f"Unknown timm model name '{name}'")
    if pretrained is None:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
        log.info(
            "Backbone %s: random initial weights, %d-class head (a checkpoint given with "
            "ckpt_path replaces them when it is loaded)",
            name,
            num_classes,
        )
        return model

    from fer_multires.models.pretrained import is_weights_name, resolve_weights

    if is_weights_name(str(pretrained)):  # never a pickle: safetensors or weights-only torch.load
        source = resolve_weights(str(pretrained), download=False)
        path, fmt, origin = Path(source.file), "timm", source.describe()
    else:
        path = _check_file(pretrained)
        fmt, origin = detect_weights_format(path), str(path)
    if fmt == "vggface2":
        model = _create_from_vggface2(name, num_classes, path)
        log.info(
            "Backbone %s: loaded VGGFace2 SE-ResNet-50 weights from %s (Caffe stride/pool "
            "patches applied, new random %d-class head)",
            name,
            origin,
            num_classes,
        )
    else:
        model, head_kept = _create_from_timm_file(name, num_classes, path)
        log.info(
            "Backbone %s: loaded timm-format weights from %s (%s %d-class head)",
            name,
            origin,
            "head loaded from the file," if head_kept else "new random",
            num_classes,
        )
    return model


# --------------------------------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------------------------------


def _head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's classifier (empty if it has none)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    classifiers = cfg.get("classifier") or ()
    if isinstance(classifiers, str):
        classifiers = (classifiers,)
    return {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}


def _check_keys(
    state_dict: dict[str, torch.Tensor],
    model: nn.Module,
    path: str | Path,
    allowed_missing: set[str],
) -> None:
    """Raise if ``state_dict`` does not fit ``model`` apart from the ``allowed_missing`` keys.

    ``num_batches_tracked`` buffers may always be missing (batch norm fills them in on load).
    """
    target = model.state_dict()
    missing = {
        k
        for k in target.keys() - state_dict.keys()
        if k not in allowed_missing and not k.endswith("num_batches_tracked")
    }
    unexpected = state_dict.keys() - target.keys()
    mismatched = [
        f"{k} {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in state_dict.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_format_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_format_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_format_keys(mismatched)}")
    if problems:
        arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        raise WeightsFormatError(f"Weights in {path} do not fit {arch}: " + "; ".join(problems))


def _create_from_vggface2(name: str, num_classes: int, path: Path) -> nn.Module:
    if name.split(".", 1)[0] != VGGFACE2_ARCH:
        raise ValueError(
            f"VGGFace2 weights ({path}) are SE-ResNet-50 weights and need "
            f"name='{VGGFACE2_ARCH}', got name='{name}'"
        )
    state_dict = load_vggface2_state_dict(path)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    head = _head_keys(model)
    _check_keys(state_dict, model, path, allowed_missing=head)
    result = model.load_state_dict(state_dict, strict=False)
    leftover = [
        k for k in result.missing_keys if k not in head and not k.endswith("num_batches_tracked")
    ]
    if leftover or result.unexpected_keys:  # pragma: no cover - guarded by _check_keys
        raise WeightsFormatError(
            f"Weights in {path} did not load: {leftover + result.unexpected_keys}"
        )
    apply_caffe_patches(model)
    return model


def fit_state_dict(
    state_dict: Any, model: nn.Module, source: str | Path
) -> tuple[dict[str, torch.Tensor], bool]:
    """Check that a timm-format state dict fits ``model``, leaving out a head of another size.

    Args:
        state_dict: the weights read from ``source``.
        model: the model they are for (may live on the meta device: only shapes are compared).
        source: the file or name the weights came from, for the messages.

    Returns:
        The state dict to load (without the head if its size differs from the model's), and
        whether the head is kept.

    Raises:
        WeightsFormatError: naming ``source``, if it is not a dict of tensors, or its keys or
            shapes do not fit the model apart from the head.
    """
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise WeightsFormatError(
            f"Weights in {source} are not a state dict of tensors (expected a timm/PyTorch "
            "state dict, or a checkpoint dict holding one under 'state_dict' or 'model')"
        )
    head = _head_keys(model)
    target = model.state_dict()
    fits = all(
        k in state_dict and k in target and state_dict[k].shape == target[k].shape for k in head
    )
    if not fits:
        state_dict = {k: v for k, v in state_dict.items() if k not in head}
    _check_keys(state_dict, model, source, allowed_missing=head)
    return state_dict, bool(head) and fits


def _timm_filter(
    path: Path, head_kept: list[bool]
) -> Callable[[dict[str, Any], nn.Module], dict[str, Any]]:
    """A timm ``pretrained_filter_fn`` that validates the file and drops a head of another size."""

    def filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        state_dict, kept = fit_state_dict(state_dict, model, path)
        head_kept.append(kept)
        return state_dict

    return filter_fn


def _create_from_timm_file(name: str, num_classes: int, path: Path) -> tuple[nn.Module, bool]:
    """Build ``name`` with timm's local-file loading; returns the model and whether the head loaded.

    timm by itself decides to drop the file's head by comparing ``num_classes`` with the
    *configured* class count of the architecture (1000), not with the file, and then loads
    non-strictly (a mismatching backbone would only be logged). So the configured class count is
    overlaid to ``num_classes`` (timm leaves the head alone) and a filter function validates every
    key and drops the head only when its size differs.
    """
    head_kept: list[bool] = []
    try:
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(path), num_classes=num_classes),
            num_classes=num_classes,
            pretrained_filter_fn=_timm_filter(path, head_kept),
            pretrained_strict=False,
        )
    except WeightsFormatError:
        raise
    except Exception as err:
        raise WeightsFormatError(
            f"Cannot read weights from {path}: expected a timm/PyTorch state dict file "
            "(.pth/.pt/.bin saved with torch.save, or .safetensors) or the VGGFace2 .pkl; "
            f"{type(err).__name__}: {err}"
        ) from err
    if not head_kept:  # pragma: no cover - timm did not call the filter: never load silently
        raise RuntimeError(f"timm did not load {path} through the expected path")
    return model, head_kept[0]
