"""Valence-arousal and action units of a drawn face: functions of the shape the renderer draws.

Every label here is computed from the face's shape parameters (:func:`faces.face_shape`: the
identity's resting face plus the expression at its intensity), the same numbers
:func:`faces.render` draws, so a model can read the labels off the image, and they fade with the
drawn features when the face is shrunk or blurred. Nothing depends on what is not drawn (the
class name, the frame's position in its segment).

Valence and arousal are linear in the shape (so they follow an expression's onset and offset
continuously), clipped to [-1, 1]; see :data:`VALENCE_WEIGHTS` and :data:`AROUSAL_WEIGHTS`. At full
intensity (resting face aside) valence is about +0.82 for Happiness, 0 for Neutral and Surprise,
-0.36 for Fear, -0.56 for Sadness, -0.65 for Anger and -0.66 for Disgust; arousal about +0.96
for Surprise, +0.75 for Fear, +0.35 for Happiness, +0.32 for Anger, +0.13 for Disgust, 0 for
Neutral and -0.18 for Sadness.

An action unit is present where the feature that shows it is drawn past a threshold
(:data:`AU_RULES`), e.g. AU12 (lip corner puller) where the mouth corners curve up, AU25 (lips
part) where the lips are drawn apart.
"""

from __future__ import annotations

import numpy as np

from fer_multires.data.synthetic.faces import SHAPE_KEYS, lip_gap

#: Valence: the drawn face's weights (shape parameter -> weight); smiles, smiling eyes up; frowns,
#: drawn-in brows, pressed lips and nose wrinkles down.
VALENCE_WEIGHTS: dict[str, float] = {
    "mouth_curve": 1.2,
    "eye_smile": 0.4,
    "brow_in": -0.4,
    "lip_press": -0.3,
    "nose_wrinkle": -0.3,
}
#: Arousal: wide eyes, an open mouth, raised brows and the tension of pressed lips, drawn-in
#: brows, smiling eyes and nose wrinkles up; narrowed eyes and a downturned mouth down.
AROUSAL_WEIGHTS: dict[str, float] = {
    "eye_open": 0.5,
    "mouth_open": 0.6,
    "brow_raise": 0.3,
    "lip_press": 0.5,
    "brow_in": 0.3,
    "eye_smile": 0.4,
    "nose_wrinkle": 0.4,
    "mouth_curve": 0.3,
}
#: Valence and arousal are written with this many decimals.
VA_DECIMALS = 4

#: Each action unit (in :data:`~fer_multires.tasks.AU_NAMES` order): the drawn feature that
#: shows it (see :func:`drawn_features`), and the value from which it counts as present
#: (``>=``; a negative threshold: ``<=``).
AU_RULES: dict[str, tuple[str, float]] = {
    "AU1": ("inner_brow_raise", 0.35),  # inner brow raiser: the inner brow ends drawn higher
    "AU2": ("brow_raise", 0.3),  # outer brow raiser: the whole brow raised
    "AU4": ("brow_in", 0.25),  # brow lowerer: the brows drawn together
    "AU6": ("eye_smile", 0.3),  # cheek raiser: the lower lids pushed up
    "AU7": ("eye_open", -0.25),  # lid tightener: the eyes narrowed
    "AU10": ("lip_raise", 0.25),  # upper lip raiser: one side of the upper lip raised
    "AU12": ("mouth_curve", 0.2),  # lip corner puller: the corners curve up
    "AU15": ("mouth_curve", -0.25),  # lip corner depressor: the corners curve down
    "AU23": ("lip_press", 0.3),  # lip tightener: the lips drawn thinner
    "AU24": ("lip_press", 0.55),  # lip pressor: the lips pressed thinner still
    "AU25": ("lip_gap", 0.12),  # lips part: a gap between the lips (mouth half-widths)
    "AU26": ("mouth_drop", 0.07),  # jaw drop: the mouth drawn lower
}


def drawn_features(shape: np.ndarray) -> dict[str, float]:
    """The features the action units are read from: the shape parameters, and two combined.

    ``inner_brow_raise`` is how far the inner brow ends are drawn up (the brow's raise plus its
    inner end's, as :func:`faces._draw_brow` adds them); ``lip_gap`` the widest gap between the
    lips (:func:`faces.lip_gap`).
    """
    features = {name: float(value) for name, value in zip(SHAPE_KEYS, shape, strict=True)}
    features["inner_brow_raise"] = features["brow_raise"] + features["brow_inner"]
    features["lip_gap"] = lip_gap(shape)
    return features


def valence_arousal(shape: np.ndarray) -> tuple[float, float]:
    """Return a drawn face's valence and arousal, in [-1, 1], rounded to the file's decimals."""
    features = drawn_features(shape)
    values = []
    for weights in (VALENCE_WEIGHTS, AROUSAL_WEIGHTS):
        value = sum(weight * features[name] for name, weight in weights.items())
        values.append(round(min(1.0, max(-1.0, value)), VA_DECIMALS))
    return values[0], values[1]


def action_units(shape: np.ndarray) -> np.ndarray:
    """Return which action units a drawn face shows (int8 0/1, in ``AU_NAMES`` order)."""
    features = drawn_features(shape)
    return np.array(
        [
            features[name] >= threshold if threshold >= 0 else features[name] <= threshold
            for name, threshold in AU_RULES.values()
        ],
        dtype=np.int8,
    )
