"""The spec of the synthetic set, and the constants its modules share.

The folder names and skip-count names come from the Aff-Wild2 reader
(:mod:`fer_multires.data.readers.affwild2`), so that the set is written as the reader reads it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.affwild2 import EXPR_SET_LAYOUT, SKIP_COUNT_NAMES

NUM_CLASSES = len(EXPRESSIONS_7)
#: Smallest ``frames_per_video``: room for a few expression segments and neutral gaps per video.
MIN_FRAMES_PER_VIDEO = 40
#: Smallest ``image_size``: below it the facial features are no longer drawn distinctly.
MIN_IMAGE_SIZE = 32

#: Each split with its annotation folder (ABAW 2020-21 layout) and its RNG split id. The ids are
#: part of every RNG key, so they are fixed here rather than taken from the reader's split order.
SPLITS: tuple[tuple[str, str, int], ...] = tuple(
    (split, EXPR_SET_LAYOUT.split_dirs[split], split_id)
    for split, split_id in (("train", 0), ("val", 1))
)
#: The skip counts the manifest holds: the reader's, less ``unrecognised_name`` (every ``.jpg``
#: the set writes is named by its frame number).
SKIP_KEYS: tuple[str, ...] = tuple(name for name in SKIP_COUNT_NAMES if name != "unrecognised_name")

# RNG keys are [seed, split id, video, stream, frame]: the stream tag keeps the streams apart.
STREAM_IDENTITY = 1
STREAM_DYNAMICS = 2
STREAM_FRAME = 3
STREAM_PLAN = 4
STREAM_AFFECT = 5  # the valence-arousal and action-unit files' missing markers


def make_rng(
    seed: int, split_id: int, video: int, stream: int, frame: int = 0
) -> np.random.Generator:
    """Return the random generator of one stream of draws (see the ``STREAM_*`` tags)."""
    return np.random.default_rng([seed, split_id, video, stream, frame])


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Equal specs give byte-identical datasets.

    Attributes:
        num_train_videos: training videos with frames (the two-person video counts as two).
        num_val_videos: validation videos with frames (at least 2, so that the validation videos
            can be split into a selection and a report subset).
        frames_per_video: label lines per video.
        image_size: side of the square JPEGs, in pixels.
        seed: base seed of every random draw.
        class_proportions: target share of each class among the included frames, in the order
            Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise.
    """

    num_train_videos: int = 24
    num_val_videos: int = 10
    frames_per_video: int = 120
    image_size: int = 112
    seed: int = 0
    class_proportions: tuple[float, ...] = (0.60, 0.05, 0.04, 0.04, 0.13, 0.09, 0.05)

    def __post_init__(self) -> None:
        # Configs hand lists over (Hydra, JSON); keep the dataclass hashable and comparable.
        try:
            proportions = tuple(float(p) for p in self.class_proportions)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"class_proportions must be a sequence of {NUM_CLASSES} numbers, "
                f"got {self.class_proportions!r}"
            ) from err
        object.__setattr__(self, "class_proportions", proportions)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.integer):
                object.__setattr__(self, f.name, int(value))
        self.validate()

    def validate(self) -> None:
        """Check every field.

        Raises:
            ValueError: naming the first field that is out of range.
        """
        minimums = {
            "num_train_videos": 2,
            "num_val_videos": 2,
            "frames_per_video": MIN_FRAMES_PER_VIDEO,
            "image_size": MIN_IMAGE_SIZE,
            "seed": 0,
        }
        why = {
            "num_train_videos": "(the two-person video alone takes 2)",
            "num_val_videos": "(validation is split into a selection and a report subset)",
            "frames_per_video": "(room for expression segments with onset and offset)",
            "image_size": "(smaller faces lose their features)",
            "seed": "",
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"{name}={value} must be >= {minimum} {why[name]}".rstrip())
        props = self.class_proportions
        if len(props) != NUM_CLASSES:
            raise ValueError(
                f"class_proportions must have {NUM_CLASSES} entries "
                f"({', '.join(EXPRESSIONS_7)}), got {len(props)}"
            )
        if any(not math.isfinite(p) or p < 0 for p in props):
            raise ValueError(f"class_proportions must be finite and >= 0, got {props}")
        if abs(sum(props) - 1.0) > 1e-6:
            raise ValueError(f"class_proportions must sum to 1 (within 1e-6), got {sum(props)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict (as stored in the manifest)."""
        data = asdict(self)
        data["class_proportions"] = list(self.class_proportions)
        return data
