"""Valence, arousal and action units of the synthetic faces: functions of what is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.readers.affwild2 import read_affwild2
from fer_multires.data.synthetic import SyntheticSpec, generate_synthetic_affwild2, plan
from fer_multires.data.synthetic.affect import AU_RULES, action_units, valence_arousal
from fer_multires.data.synthetic.faces import face_shape, make_identity, render_face
from fer_multires.data.synthetic.spec import STREAM_IDENTITY, make_rng
from fer_multires.tasks import AU_NAMES

TEETH = (228, 222, 205)
CLASS = {name: c for c, name in enumerate(EXPRESSIONS_7)}


def identity(seed: int):
    """The person :func:`render_face` draws for ``identity_seed=seed``."""
    return make_identity(make_rng(seed, 0, 0, STREAM_IDENTITY))


def units(shape: np.ndarray) -> dict[str, int]:
    return dict(zip(AU_NAMES, action_units(shape).tolist(), strict=True))


def test_the_rules_cover_the_units_in_header_order() -> None:
    assert tuple(AU_RULES) == AU_NAMES


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_au25_is_set_exactly_where_the_image_shows_the_inside_of_the_mouth(seed: int) -> None:
    """Teeth or tongue drawn (pixels of their exact colours, on a clean frame) iff lips part."""
    ident = identity(seed)
    for expression in range(7):
        for intensity in (0.0, 1.0):
            image = np.asarray(render_face(seed, expression, intensity, image_size=224))
            mouth = image[145:200, 78:146].reshape(-1, 3)  # below the nose, between the cheeks
            inside = (mouth == TEETH).all(axis=1) | (mouth == ident.tongue).all(axis=1)
            drawn_open = int(inside.sum() >= 4)
            label = units(face_shape(ident, expression, intensity))["AU25"]
            assert label == drawn_open, (EXPRESSIONS_7[expression], intensity, inside.sum())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_labels_follow_the_drawn_expression(seed: int) -> None:
    ident = identity(seed)

    def at(name: str, intensity: float = 1.0) -> np.ndarray:
        return face_shape(ident, CLASS[name], intensity)

    valence, arousal = valence_arousal(at("Happiness"))
    assert valence > 0.6 and arousal > 0.2
    assert {k: v for k, v in units(at("Happiness")).items() if k in ("AU6", "AU12", "AU25")} == {
        "AU6": 1, "AU12": 1, "AU25": 1,
    }  # fmt: skip
    assert valence_arousal(at("Sadness"))[0] < -0.4 and units(at("Sadness"))["AU15"] == 1
    assert valence_arousal(at("Surprise"))[1] > 0.8
    assert units(at("Surprise"))["AU26"] == units(at("Surprise"))["AU2"] == 1
    assert units(at("Anger"))["AU23"] == units(at("Anger"))["AU4"] == 1
    assert units(at("Disgust"))["AU10"] == 1
    # the resting face: small valence and arousal, the mouth closed, no smile or frown
    valence, arousal = valence_arousal(at("Neutral", 0.0))
    assert abs(valence) < 0.3 and abs(arousal) < 0.3
    rest = units(at("Neutral", 0.0))
    assert rest["AU12"] == rest["AU15"] == rest["AU25"] == rest["AU26"] == 0


def test_valence_and_arousal_follow_the_intensity_continuously() -> None:
    ident = identity(7)
    for expression in range(1, 7):
        values = np.array(
            [valence_arousal(face_shape(ident, expression, t)) for t in np.linspace(0, 1, 11)]
        )
        steps = np.diff(values, axis=0)
        # linear in the intensity (not clipped here): equal steps, up to the 4 decimals written
        assert np.abs(np.diff(steps, axis=0)).max() <= 2e-4, EXPRESSIONS_7[expression]
        assert np.abs(values[-1] - values[0]).max() > 0.1


def test_a_generated_set_labels_each_frame_as_drawn(tmp_path: Path) -> None:
    spec = SyntheticSpec(num_train_videos=3, num_val_videos=2, frames_per_video=40, image_size=48)
    generate_synthetic_affwild2(tmp_path / "synth", spec)
    index = read_affwild2(tmp_path / "synth", task="mtl")
    drawn = {video.name: video for video in plan.plan_videos(spec)}
    checked = {"va": 0, "au": 0}
    for split in index.splits.values():
        for i in range(len(split)):
            video = drawn[split.video_names[split.video_id[i]]]
            ident = make_identity(make_rng(spec.seed, video.split_id, video.key, STREAM_IDENTITY))
            frame = int(split.frame[i]) - 1
            shape = face_shape(ident, int(video.expression[frame]), float(video.intensity[frame]))
            if not np.isnan(split.va[i]).any():
                np.testing.assert_allclose(split.va[i], valence_arousal(shape), atol=1e-6)
                checked["va"] += 1
            annotated = split.au[i] >= 0
            assert (split.au[i][annotated] == action_units(shape)[annotated]).all()
            checked["au"] += annotated.any()
    assert checked["va"] > 100 and checked["au"] > 100
