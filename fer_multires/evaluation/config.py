"""Evaluation settings: the checked ``eval`` node and the data config of the checkpoint's run.

The data settings are those of the checkpoint's run (``<run dir>/config.yaml``, the run directory
being the parent of ``checkpoints/``), with any ``data.*`` key given on the command line applied on
top (e.g. ``data.root=/other/copy``). A checkpoint without a run config needs the data config on
the command line.

Naming a data config on the command line (``data=rafdb data.root=...``) evaluates on that
dataset instead (cross-dataset evaluation): its own settings, with the image processing the model
was trained with (:data:`MODEL_INPUT_KEYS`) taken from the run unless given on the command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these annotations

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fer_multires.data.batch_transforms import DEGRADATIONS, TRAINING_KERNEL
from fer_multires.runs import hydra_record, missing_run_config, resolve_checkpoint, run_config_of
from fer_multires.smoothing import check_smoothing
from fer_multires.uncertainty import BootstrapSettings
from fer_multires.utils.config import required, schema_of

log = logging.getLogger(__name__)

#: The data keys that define what the model sees: kept from the training run when another
#: dataset is evaluated on.
MODEL_INPUT_KEYS: tuple[str, ...] = ("resize_size", "crop_size", "normalization")


#: ``eval.bootstrap``'s schema: :class:`~fer_multires.uncertainty.BootstrapSettings`'s fields.
BootstrapConfig = schema_of(BootstrapSettings, "BootstrapConfig", __name__)


@dataclass
class EvalConfig:
    """The ``eval`` node's schema, shared by ``evaluate`` and training's ``eval_after_fit``.

    Attributes:
        resolutions: pixels (shorter side) each image is degraded to and scaled back from, as in
            training; the native resolution is always evaluated too.
        smoothing: temporal smoothing of the native-resolution class probabilities within each
            video: ``none``, ``mean`` (centred moving average) or ``gaussian`` (sigma = window / 6).
        smoothing_windows: windows (odd, in frame numbers) to try; the best on ``val_select`` is
            reported on ``val_rest``.
        plots: write ``resolution_robustness.png`` and ``confusion_matrix.png``.
        degradations: ways of making each low resolution (the training's, bilinear, is always
            evaluated first): ``bilinear``, ``area`` (box-filter down), ``bicubic``, ``jpeg``
            (bilinear down-up, then JPEG at ``jpeg_quality``), ``blur`` (Gaussian, sigma =
            (native/resolution - 1) / 2, no resampling); e.g.
            ``eval.degradations=[bilinear,area,bicubic,jpeg,blur]``.
        jpeg_quality: the ``jpeg`` degradation's quality, 1..100.
        compile: ``torch.compile`` the backbone for the evaluation: null = as the checkpoint was
            trained (``model.compile``); pays off for long evaluations
            (``docs/performance.md``, "torch.compile").
        bootstrap: the intervals: a percentile bootstrap over whole videos (images for
            still-image datasets), the same draws for every point of a split; ``samples: 0``
            switches them off (``docs/evaluation.md``, "Intervals").
    """

    resolutions: List[int] = field(default_factory=lambda: [8, 12, 16, 24, 32, 48, 64, 96])  # noqa: UP006
    smoothing: str = "mean"
    smoothing_windows: List[int] = field(default_factory=lambda: [5, 15, 31, 61])  # noqa: UP006
    plots: bool = True
    degradations: List[str] = field(default_factory=lambda: [TRAINING_KERNEL])  # noqa: UP006
    jpeg_quality: int = 30
    compile: Optional[bool] = None  # noqa: UP045
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass(frozen=True)
class EvalSettings:
    """The checked ``eval`` settings.

    Attributes:
        ckpt_path: the checkpoint file.
        resolutions: degraded resolutions, ascending, without duplicates.
        smoothing: ``none``, ``mean`` or ``gaussian``.
        windows: smoothing windows to try (window 1, no smoothing, is always scored too).
        plots: whether to draw the PNG figures.
        degradations: the ways of making each low resolution (:data:`DEGRADATIONS`), the
            training's (``bilinear``) first.
        jpeg_quality: the JPEG quality of the ``jpeg`` degradation.
        compile: compile the backbone (``torch.compile``) for the evaluation; None: as the
            checkpoint was trained (its ``model.compile``).
        bootstrap: the intervals' bootstrap over videos (``eval.bootstrap``).
    """

    ckpt_path: Path
    resolutions: tuple[int, ...]
    smoothing: str
    windows: tuple[int, ...]
    plots: bool
    degradations: tuple[str, ...] = (TRAINING_KERNEL,)
    jpeg_quality: int = 30
    compile: bool | None = None
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)


def check_bootstrap(node: Any) -> BootstrapSettings:
    """Validate ``eval.bootstrap``: ``samples``, ``seed`` and ``confidence``.

    ``samples``: 0 (no intervals) or >= 100; ``seed``: >= 0; ``confidence``: a whole percent
    from 0.50 to 0.99. A missing node or key takes the default (2,000 resamples, seed 0, 95%).

    Raises:
        ValueError: naming the ``eval.bootstrap.*`` key.
    """
    if node is None:
        return BootstrapSettings()
    if not (OmegaConf.is_dict(node) or isinstance(node, dict)):
        raise ValueError(f"eval.bootstrap={node!r} must be a mapping (samples, seed, confidence)")
    unknown = sorted(set(node) - {"samples", "seed", "confidence"})
    if unknown:
        raise ValueError(f"eval.bootstrap: unknown key(s) {', '.join(map(str, unknown))}; "
                         "expected samples, seed, confidence")  # fmt: skip
    default = BootstrapSettings()
    samples = node.get("samples", default.samples)
    if (
        isinstance(samples, bool)
        or not isinstance(samples, int)
        or not (samples == 0 or samples >= 100)
    ):
        raise ValueError(
            f"eval.bootstrap.samples={samples!r} must be an integer >= 100 (0: no intervals)"
        )
    seed = node.get("seed", default.seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"eval.bootstrap.seed={seed!r} must be an integer >= 0")
    confidence = node.get("confidence", default.confidence)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.5 <= confidence <= 0.99
        or abs(confidence * 100 - round(confidence * 100)) > 1e-9
    ):
        raise ValueError(
            f"eval.bootstrap.confidence={confidence!r} must be a whole percent from 0.50 to 0.99 "
            "(e.g. 0.95)"
        )
    return BootstrapSettings(int(samples), int(seed), float(confidence))


def check_compile(value: Any) -> bool | None:
    """Validate ``eval.compile``: null (as the checkpoint was trained), true or false.

    Raises:
        ValueError: naming ``eval.compile``.
    """
    if value is not None and not isinstance(value, bool):
        raise ValueError(
            f"eval.compile={value!r} must be true, false or null (as the checkpoint was trained)"
        )
    return value


def check_resolutions(values: Any) -> tuple[int, ...]:
    """Validate ``eval.resolutions``: a list of integers >= 1.

    Returns:
        The resolutions, ascending, without duplicates.

    Raises:
        ValueError: naming ``eval.resolutions``.
    """
    if not (OmegaConf.is_list(values) or isinstance(values, list | tuple)):
        raise ValueError(f"eval.resolutions={values!r} must be a list of integers >= 1")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"eval.resolutions: {value!r} is not an integer")
        if value < 1:
            raise ValueError(f"eval.resolutions: resolution {value} must be >= 1 (pixels)")
    return tuple(sorted(set(int(v) for v in values)))


def check_degradations(values: Any) -> tuple[str, ...]:
    """Validate ``eval.degradations``: names from :data:`DEGRADATIONS`.

    Returns:
        The kernels without duplicates, the training's (``bilinear``) first: it is always
        evaluated, since ``metrics.json``'s per-split results are the training kernel's.

    Raises:
        ValueError: naming ``eval.degradations``.
    """
    if values is None:
        values = [TRAINING_KERNEL]
    if not (OmegaConf.is_list(values) or isinstance(values, list | tuple)):
        raise ValueError(
            f"eval.degradations={values!r} must be a list of {', '.join(DEGRADATIONS)}"
        )
    unknown = [str(v) for v in values if v not in DEGRADATIONS]
    if unknown:
        raise ValueError(
            f"eval.degradations: unknown {', '.join(unknown)}; expected {', '.join(DEGRADATIONS)}"
        )
    return tuple(dict.fromkeys([TRAINING_KERNEL, *(str(v) for v in values)]))


def check_jpeg_quality(value: Any) -> int:
    """Validate ``eval.jpeg_quality``: an integer in 1..100.

    Raises:
        ValueError: naming ``eval.jpeg_quality``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError(f"eval.jpeg_quality={value!r} must be an integer in 1..100")
    return int(value)


def check_eval_node(node: DictConfig, ckpt_path: Path) -> EvalSettings:
    """Check an ``eval`` node (resolutions, smoothing, plots) for evaluating ``ckpt_path``.

    Raises:
        ValueError: for an invalid ``eval.*`` value, naming the key.
    """
    windows = list(node.get("smoothing_windows") or [])
    check_smoothing(node.smoothing, windows)
    return EvalSettings(
        ckpt_path=Path(ckpt_path),
        resolutions=check_resolutions(node.resolutions),
        smoothing=node.smoothing,
        windows=tuple(sorted(set(windows))),
        plots=bool(node.get("plots", True)),
        degradations=check_degradations(node.get("degradations")),
        jpeg_quality=check_jpeg_quality(node.get("jpeg_quality", 30)),
        compile=check_compile(node.get("compile")),
        bootstrap=check_bootstrap(node.get("bootstrap")),
    )


def check_trainer_node(node: DictConfig) -> None:
    """Check that the trainer leaves the partitioning of the evaluation data to the data module.

    Raises:
        ValueError: naming ``trainer.use_distributed_sampler`` if it is on.
    """
    if node.get("use_distributed_sampler"):
        raise ValueError(
            "trainer.use_distributed_sampler=true would pad the evaluation partitions and count "
            "samples twice; fer_multires partitions the data itself: set it to false"
        )


def check_settings(cfg: DictConfig) -> EvalSettings:
    """Check the checkpoint, the ``eval`` and the trainer nodes before any data is read.

    Raises:
        ValueError: for a missing ``ckpt_path`` or an invalid ``eval.*`` value, naming the key.
        FileNotFoundError: if the checkpoint does not exist.
    """
    usage = "python -m fer_multires.evaluate ckpt_path=PATH"
    ckpt_path = resolve_checkpoint(str(required(cfg, "ckpt_path", usage)))
    check_trainer_node(cfg.trainer)
    return check_eval_node(cfg.eval, ckpt_path)


def apply_data_overrides(
    run_data: DictConfig, cfg: DictConfig, task_overrides: Sequence[str]
) -> list[str]:
    """Apply the ``data.*`` keys overridden on the command line to a run's data config.

    The values are taken from the composed ``cfg`` (so interpolations are resolved there).

    Args:
        run_data: the run's ``data`` node, changed in place.
        cfg: the evaluation's composed config.
        task_overrides: the command-line overrides (``HydraConfig.get().overrides.task``).

    Returns:
        The overrides applied.
    """
    applied = []
    for override in OverridesParser.create().parse_overrides(list(task_overrides)):
        key = override.key_or_group
        if not key.startswith("data."):
            continue
        sub_key = key[len("data.") :]
        if override.is_delete():
            parent_key, _, leaf = sub_key.rpartition(".")
            parent = OmegaConf.select(run_data, parent_key) if parent_key else run_data
            if parent is not None and leaf in parent:
                del parent[leaf]
        else:
            value = OmegaConf.select(cfg, key)
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(run_data, sub_key, value, merge=False, force_add=True)
        applied.append(override.input_line)
    return applied


def anchor_relative_root(run_data: DictConfig, run_config: Path) -> None:
    """Make a relative ``data.root`` of a run config absolute, against the training's cwd.

    Training resolves ``data.root`` against its working directory (``./data/...`` by default),
    which Hydra records in ``<run dir>/.hydra/hydra.yaml``; the evaluation may run elsewhere.
    """
    root = run_data.get("root")
    if root is None or Path(str(root)).is_absolute():
        return
    cwd = hydra_record(run_config.parent, "runtime", "cwd")
    if cwd is None:
        log.warning("data.root=%s in %s is relative: read from the current directory", root,
                    run_config)  # fmt: skip
        return
    run_data.root = os.path.normpath(Path(cwd) / str(root))
    log.info("data.root=%s in %s is relative to the training's directory: %s", root, run_config,
             run_data.root)  # fmt: skip


def data_group_override(task_overrides: Sequence[str]) -> str | None:
    """Return the data config named on the command line (``data=NAME``), or None."""
    for override in OverridesParser.create().parse_overrides(list(task_overrides)):
        if override.key_or_group == "data" and not override.is_delete():
            return str(override.value())
    return None


def given_data_keys(task_overrides: Sequence[str]) -> set[str]:
    """Return the ``data.*`` keys given on the command line (without ``data.``)."""
    return {
        o.key_or_group[len("data.") :]
        for o in OverridesParser.create().parse_overrides(list(task_overrides))
        if o.key_or_group.startswith("data.")
    }


def hub_folder_data_config(
    cfg: DictConfig, folder: Path, task_overrides: Sequence[str]
) -> DictConfig:
    """Return the command line's data config with a Hub folder's image settings.

    A folder has no training run to take the data from: ``data=NAME data.root=PATH`` name it;
    :data:`MODEL_INPUT_KEYS` come from the folder's ``config.json`` unless given too.

    Raises:
        ValueError: naming ``data.root`` if it was not given.
    """
    from fer_multires.models.hub import read_hub_model

    if OmegaConf.is_missing(cfg.data, "root"):
        raise ValueError(
            f"data.root: ckpt_path is a Hub folder ({folder}), without the training run's data "
            "config: give the data on the command line, data=NAME data.root=PATH (the image "
            "sizes and normalisation come from the folder)"
        )
    model_input = read_hub_model(folder).model_input.to_json()
    given = given_data_keys(task_overrides)
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    kept = [f"{k}={model_input[k]}" for k in MODEL_INPUT_KEYS if k not in given]
    for key in MODEL_INPUT_KEYS:
        if key not in given:
            data[key] = model_input[key]
    log.info("data config from the command line; from %s: %s", folder, ", ".join(kept) or "nothing")
    return data


def other_dataset_config(
    cfg: DictConfig, run_data: DictConfig, run_config: Path, task_overrides: Sequence[str]
) -> DictConfig:
    """Return the command line's data config, with the run's :data:`MODEL_INPUT_KEYS`.

    Keys given on the command line (``data.crop_size=...``) win over the run's.
    """
    given = given_data_keys(task_overrides)
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    kept = []
    for key in MODEL_INPUT_KEYS:
        if key not in given and key in run_data:
            data[key] = run_data[key]
            kept.append(f"{key}={run_data[key]}")
    group = data_group_override(task_overrides)
    log.info("evaluating on data=%s (not the training's data); from %s: %s", group, run_config,
             ", ".join(kept) or "nothing")  # fmt: skip
    return data


def resolve_data_config(
    cfg: DictConfig, ckpt_path: Path, task_overrides: Sequence[str]
) -> tuple[DictConfig, Path | None]:
    """Return the data config to evaluate on, and the run config it came from (or None).

    Raises:
        ValueError: if the checkpoint has no run config (or is a Hub folder) and ``data.root``
            was not given.
    """
    from fer_multires.models.hub import is_hub_folder

    if is_hub_folder(ckpt_path):
        return hub_folder_data_config(cfg, ckpt_path, task_overrides), None
    run_config = run_config_of(ckpt_path)
    if run_config is None:
        if OmegaConf.is_missing(cfg.data, "root"):
            raise ValueError(
                f"data.root: {missing_run_config(ckpt_path)}, so the data config must come from "
                "the command line: "
                "data.root=PATH (data=affwild2 by default) and the training's data.resize_size, "
                "data.crop_size and data.normalization"
            )
        log.warning(
            "no config.yaml next to %s: the data config comes from the command line "
            "(resize %s, crop %s, normalization %s); they must match the training's",
            ckpt_path,
            cfg.data.get("resize_size"),
            cfg.data.get("crop_size"),
            cfg.data.get("normalization"),
        )
        return cfg.data, None
    run_data = OmegaConf.load(run_config).get("data")
    if run_data is None:
        raise ValueError(f"{run_config} has no data node; pass the data config on the command line")
    if data_group_override(task_overrides) is not None:
        return other_dataset_config(cfg, run_data, run_config, task_overrides), run_config
    anchor_relative_root(run_data, run_config)
    applied = apply_data_overrides(run_data, cfg, task_overrides)
    log.info("data config from %s%s", run_config, f", with {' '.join(applied)}" if applied else "")
    return run_data, run_config
