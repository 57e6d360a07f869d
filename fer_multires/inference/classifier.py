"""The batch classifier of face crops: a checkpoint with PyTorch, or an exported ONNX file.

Both prepare the crops exactly as the evaluation prepares its frames: an optional resize to
``data.image_size`` (as the dataset does when it reads an image), then the data module's
:meth:`BatchTransform.eval <fer_multires.data.batch_transforms.BatchTransform.eval>` (resize the
shorter side, centre crop, normalise), with the training run's sizes and normalisation. A
checkpoint takes them from its run's ``config.yaml``; an ONNX file carries them in its metadata
(:data:`METADATA_KEYS`), so it needs no other file.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_multires.data.batch_transforms import BatchTransform
from fer_multires.data.transforms import Normalize, resize
from fer_multires.runs import ModelInput, model_input_of_run
from fer_multires.utils.checkpoints import checkpoint_class_names

log = logging.getLogger(__name__)

#: ``predict.device`` values.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Prefix of the metadata keys of an exported ONNX file.
METADATA_PREFIX = "fer_multires."
#: The metadata an exported ONNX file carries (each under :data:`METADATA_PREFIX`), JSON values.
METADATA_KEYS: tuple[str, ...] = (
    "class_names", "model_input", "expected_scores", "checkpoint", "backbone",
)  # fmt: skip
#: Distinct crop sizes whose preprocessing operators are kept (bounded memory on long videos).
OPERATOR_CACHE_SIZES = 32


class CropPreprocessor:
    """Crops -> the model's input batch, exactly as the evaluation prepares its frames.

    Args:
        model_input: the training run's image settings.
    """

    def __init__(self, model_input: ModelInput) -> None:
        self.model_input = model_input
        self.normalize = Normalize(model_input.normalization)
        # One transform per crop size, least recently used dropped: a transform caches its
        # operators per image size, and a video's faces come in many sizes.
        self._transforms: OrderedDict[tuple[int, int], BatchTransform] = OrderedDict()

    def transform(self, height: int, width: int) -> BatchTransform:
        """Return the evaluation's batch transform for crops of one size."""
        key = (height, width)
        if key in self._transforms:
            self._transforms.move_to_end(key)
        else:
            m = self.model_input
            self._transforms[key] = BatchTransform(m.resize_size, m.crop_size, self.normalize)
            if len(self._transforms) > OPERATOR_CACHE_SIZES:
                self._transforms.popitem(last=False)
        return self._transforms[key]

    def __call__(self, crops: list[np.ndarray], device: torch.device) -> torch.Tensor:
        """Return the normalised float32 ``(N, 3, crop, crop)`` batch of ``(H, W, 3)`` crops."""
        size = self.model_input.crop_size
        out = torch.empty((len(crops), 3, size, size), dtype=torch.float32, device=device)
        images = [torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1) for c in crops]
        if self.model_input.image_size is not None:
            side = self.model_input.image_size
            images = [resize(img, side, side) for img in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault((int(img.shape[1]), int(img.shape[2])), []).append(i)
        for (height, width), rows in groups.items():
            batch = torch.stack([images[i] for i in rows]).to(device)
            out[rows] = self.transform(height, width).eval(batch)
        return out


def resolve_device(device: str, key: str = "predict.device") -> torch.device:
    """Return the torch device ``predict.device`` names (``auto``: CUDA when present).

    Raises:
        ValueError: naming ``key``, for an unknown device or ``cuda`` without a GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"{key}={device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}=cuda but torch sees no CUDA device; use cpu or auto")
    return torch.device(device)


class Classifier:
    """Common part of the two classifiers: crops in, class probabilities out.

    Attributes:
        class_names: the model's classes, in output order.
        model_input: the image settings its crops are prepared with.
        expected_scores: ``{resolution key: val_rest score}`` from the run's evaluation, if any.
        source: the checkpoint or ONNX file.
        device: where the preprocessing runs.
    """

    def __init__(
        self,
        class_names: list[str],
        model_input: ModelInput,
        source: Path,
        device: torch.device,
        expected_scores: dict[str, Any] | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.model_input = model_input
        self.source = source
        self.device = device
        self.expected_scores = expected_scores
        self.preprocess = CropPreprocessor(model_input)

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """Return the ``(N, C)`` float32 logits of a prepared batch."""
        raise NotImplementedError

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """Return the ``(N, C)`` float64 softmax probabilities of ``(H, W, 3)`` uint8 crops."""
        if not crops:
            return np.zeros((0, len(self.class_names)))
        logits = torch.from_numpy(self.logits(self.preprocess(crops, self.device))).double()
        return torch.softmax(logits, dim=1).numpy()


class TorchClassifier(Classifier):
    """A fer_multires checkpoint or Hub-ready folder, run with PyTorch on ``device``.

    A folder (``export.hub=true``) carries its classes, image settings and evaluated scores in
    its ``config.json``; a checkpoint takes them from its run.

    Raises:
        ValueError: if the checkpoint is not a fer_multires one or has no run config, or the
            folder is not one ``export`` wrote.
    """

    def __init__(self, ckpt_path: Path, device: torch.device, key: str = "ckpt_path") -> None:
        from fer_multires.models.hub import is_hub_folder, load_trained, read_hub_model

        if is_hub_folder(ckpt_path):
            hub = read_hub_model(ckpt_path, key)
            super().__init__(hub.class_names, hub.model_input, ckpt_path, device,
                             hub.expected_scores)  # fmt: skip
            module = hub.load_module()
        else:
            class_names = checkpoint_class_names(ckpt_path, key)
            model_input, _ = model_input_of_run(ckpt_path, key)
            super().__init__(class_names, model_input, ckpt_path, device)
            module = load_trained(ckpt_path, key)
        self.model = module.eval().to(device)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """Return the model's logits."""
        return self.model(batch).float().cpu().numpy()


def onnx_metadata(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Read the fer_multires metadata of an exported ONNX file.

    Raises:
        ValueError: naming ``key`` and the file, if it is not a fer_multires export.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others
        raise ValueError(f"{key}: {path} is not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in ("class_names", "model_input") if METADATA_PREFIX + k not in props]
    if missing:
        raise ValueError(
            f"{key}: {path} lacks the metadata {', '.join(METADATA_PREFIX + k for k in missing)}: "
            "export it with python -m fer_multires.export"
        )
    return {k: json.loads(props[METADATA_PREFIX + k]) for k in METADATA_KEYS
            if METADATA_PREFIX + k in props}  # fmt: skip


def onnx_providers(device: torch.device | str, key: str = "predict.device") -> list[str]:
    """Return the ONNX Runtime execution providers for a device.

    Raises:
        ValueError: naming ``key`` for ``cuda`` when ONNX Runtime has no CUDA provider.
    """
    import onnxruntime as ort

    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"{key}=cuda: this onnxruntime has no CUDAExecutionProvider (install "
                "onnxruntime-gpu), or run the .ckpt with PyTorch on the GPU"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxClassifier(Classifier):
    """An ONNX file written by ``python -m fer_multires.export``, run with ONNX Runtime.

    The crops are prepared with torch on the CPU (or on the GPU when ``device`` is cuda).

    Raises:
        ValueError: if the file is not a fer_multires export.
    """

    def __init__(self, onnx_path: Path, device: torch.device, key: str = "ckpt_path") -> None:
        import onnxruntime as ort

        meta = onnx_metadata(onnx_path, key)
        super().__init__(meta["class_names"], ModelInput.from_json(meta["model_input"]),
                         onnx_path, device, meta.get("expected_scores"))  # fmt: skip
        self.session = ort.InferenceSession(str(onnx_path), providers=onnx_providers(device))
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """Return the exported model's logits."""
        array = batch.detach().cpu().numpy()
        return np.asarray(self.session.run(None, {self.input_name: array})[0], dtype=np.float32)


def load_classifier(path: Path, device: torch.device, key: str = "ckpt_path") -> Classifier:
    """Return the classifier of a checkpoint (``.ckpt``), a Hub folder or an ``.onnx`` file."""
    if path.suffix.lower() == ".onnx":
        return OnnxClassifier(path, device, key)
    return TorchClassifier(path, device, key)
