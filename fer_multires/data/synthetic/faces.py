"""Drawing the faces: identities, expression shapes, frame conditions, rendering.

Lengths are in units of the drawing canvas side, with the face centre at 0. Every draw takes its
randomness from a generator handed in, so a face depends only on its RNG keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fer_multires.data.synthetic.spec import (
    NUM_CLASSES,
    STREAM_DYNAMICS,
    STREAM_FRAME,
    STREAM_IDENTITY,
    make_rng,
)

#: Shape parameters of the face: 0 everywhere is the neutral face.
SHAPE_KEYS: tuple[str, ...] = (
    "brow_raise",  # both brow ends up (+) or down (-)
    "brow_inner",  # inner brow ends up (+) or down (-)
    "brow_in",  # inner brow ends drawn towards the midline
    "eye_open",  # eyelid opening: narrowed (-) or wide (+)
    "eye_smile",  # lower lids pushed up (smiling eyes)
    "mouth_width",  # relative change of the mouth width
    "mouth_curve",  # corners up (+) or down (-)
    "mouth_open",  # lips parted: opening half-height in units of the mouth half-width
    "mouth_drop",  # jaw drop: the mouth moves down
    "teeth",  # share of the opening showing the upper teeth
    "lip_raise",  # upper lip raised on one side (snarl)
    "lip_press",  # lips pressed thin
    "nose_wrinkle",  # wrinkle lines on the nose bridge, flared nostrils
    "smile_fold",  # nasolabial folds
)
_K = {name: i for i, name in enumerate(SHAPE_KEYS)}


def _shape(**values: float) -> np.ndarray:
    vec = np.zeros(len(SHAPE_KEYS))
    for name, value in values.items():
        vec[_K[name]] = value
    return vec


# The face at full intensity of each expression, as offsets from the identity's resting face.
_EXPRESSION_SHAPES = np.stack(
    [
        _shape(),  # Neutral
        _shape(  # Anger: brows down and drawn in, tight flat mouth, tense lids
            brow_raise=-0.3,
            brow_inner=-0.6,
            brow_in=0.8,
            eye_open=-0.3,
            mouth_width=-0.15,
            mouth_curve=-0.1,
            lip_press=0.7,
        ),
        _shape(  # Disgust: raised upper lip on one side, nose wrinkles, narrowed eyes
            brow_raise=-0.25,
            brow_inner=-0.15,
            brow_in=0.3,
            eye_open=-0.45,
            mouth_curve=-0.2,
            teeth=1.0,
            lip_raise=0.55,
            nose_wrinkle=1.0,
            smile_fold=0.6,
        ),
        _shape(  # Fear: raised brows drawn together, wide eyes, open stretched mouth
            brow_raise=0.5,
            brow_inner=0.45,
            brow_in=0.45,
            eye_open=0.7,
            mouth_width=0.25,
            mouth_curve=-0.15,
            mouth_open=0.26,
            teeth=0.8,
        ),
        _shape(  # Happiness: upturned smile showing teeth, smiling narrowed eyes
            brow_raise=0.05,
            eye_open=-0.35,
            eye_smile=0.7,
            mouth_width=0.2,
            mouth_curve=0.45,
            mouth_open=0.15,
            teeth=1.0,
            smile_fold=0.9,
        ),
        _shape(  # Sadness: inner brows raised, drooping lids, downturned mouth
            brow_raise=-0.05,
            brow_inner=0.75,
            brow_in=0.2,
            eye_open=-0.2,
            mouth_width=-0.1,
            mouth_curve=-0.4,
        ),
        _shape(  # Surprise: raised arched brows, wide eyes, open round mouth
            brow_raise=0.85,
            brow_inner=0.1,
            eye_open=0.8,
            mouth_width=-0.45,
            mouth_open=0.5,
            mouth_drop=0.15,
        ),
    ]
)

_SKIN_TONES = np.array(
    [
        (255, 226, 200),
        (241, 194, 160),
        (224, 172, 135),
        (198, 140, 105),
        (160, 105, 75),
        (120, 80, 57),
        (88, 58, 42),
    ],
    dtype=float,
)
_HAIR_COLOURS = np.array(
    [
        (25, 20, 18),
        (60, 40, 28),
        (100, 68, 40),
        (165, 125, 75),
        (215, 185, 120),
        (140, 60, 30),
        (150, 150, 150),
    ],
    dtype=float,
)
_IRIS_COLOURS = np.array(
    [(70, 45, 30), (40, 28, 20), (70, 110, 150), (80, 110, 70), (110, 85, 50)], dtype=float
)


def _rgb(colour: np.ndarray | tuple[float, ...]) -> tuple[int, int, int]:
    r, g, b = (round(min(255.0, max(0.0, float(c)))) for c in colour)
    return r, g, b


@dataclass(frozen=True)
class Identity:
    """One person and their scene; lengths in units of the (drawing) canvas side."""

    face_a: float
    face_b: float
    face_power: float
    chin_taper: float
    skin: tuple[int, int, int]
    skin_shade: tuple[int, int, int]
    lip: tuple[int, int, int]
    mouth_inside: tuple[int, int, int]
    tongue: tuple[int, int, int]
    brow: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int  # 0 bald, 1 short, 2 long
    hairline: float
    hair_side_drop: float
    iris: tuple[int, int, int]
    clothes: tuple[int, int, int]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    background_angle: float
    background_blobs: tuple[tuple[float, float, float, tuple[int, int, int]], ...]
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris_r: float
    brow_gap: float
    brow_len: float
    brow_thick: float
    brow_arch: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_t: float
    snarl_side: float
    rest: np.ndarray = field(compare=False)


def make_identity(rng: np.random.Generator) -> Identity:
    """Draw one person and their scene: face shape, colours, hair, background, features."""
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(tone)
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    skin = _SKIN_TONES[lo] * (1 - (tone - lo)) + _SKIN_TONES[hi] * (tone - lo)
    skin = skin * rng.uniform(0.95, 1.05, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    brow = np.minimum(hair * 0.6 + skin * 0.15, skin * 0.45)
    face_b = rng.uniform(0.37, 0.42)
    eye_y = -rng.uniform(0.065, 0.1)
    eye_h = rng.uniform(0.019, 0.024)
    brow_gap = rng.uniform(0.045, 0.058)
    # The hairline stays clear of the highest brows (Surprise).
    hairline = min(-rng.uniform(0.24, 0.3), eye_y - brow_gap - 0.09)
    # Muted scene colours: a random colour pulled halfway to its grey.
    bg1 = rng.uniform(20, 235, 3)
    bg1 = 0.5 * bg1 + 0.5 * bg1.mean()
    bg2 = np.clip(bg1 + rng.normal(0, 35, 3), 0, 255)
    blobs = tuple(
        (
            float(rng.uniform(0, 1)),
            float(rng.uniform(0, 1)),
            float(rng.uniform(0.08, 0.3)),
            _rgb(np.clip(bg1 + rng.normal(0, 50, 3), 0, 255)),
        )
        for _ in range(int(rng.integers(0, 4)))
    )
    mouth_w = rng.uniform(0.072, 0.09)
    return Identity(
        face_a=rng.uniform(0.28, 0.33),
        face_b=face_b,
        face_power=rng.uniform(2.0, 2.8),
        chin_taper=rng.uniform(0.1, 0.35),
        skin=_rgb(skin),
        skin_shade=_rgb(skin * 0.8),
        lip=_rgb(skin * np.array([0.78, 0.52, 0.52])),
        mouth_inside=_rgb(skin * 0.36 + np.array([30, 6, 8])),
        tongue=_rgb(skin * np.array([0.7, 0.42, 0.42]) + np.array([25, 0, 0])),
        brow=_rgb(brow),
        hair=_rgb(hair),
        hair_style=int(rng.choice(3, p=[0.15, 0.5, 0.35])),
        hairline=hairline,
        hair_side_drop=rng.uniform(0.3, 0.8) * (eye_y - hairline),
        iris=_rgb(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]),
        clothes=_rgb(rng.uniform(20, 230, 3)),
        background=(_rgb(bg1), _rgb(bg2)),
        background_angle=rng.uniform(0, 2 * math.pi),
        background_blobs=blobs,
        eye_dx=rng.uniform(0.115, 0.14),
        eye_y=eye_y,
        eye_w=rng.uniform(0.048, 0.058),
        eye_h=eye_h,
        iris_r=rng.uniform(0.95, 1.15) * eye_h,
        brow_gap=brow_gap,
        brow_len=rng.uniform(0.95, 1.15),
        brow_thick=rng.uniform(0.022, 0.03),
        brow_arch=rng.uniform(0.004, 0.012),
        nose_y=rng.uniform(0.1, 0.125),
        nose_w=rng.uniform(0.022, 0.03),
        mouth_y=rng.uniform(0.195, 0.225),
        mouth_w=mouth_w,
        lip_t=rng.uniform(0.012, 0.017),
        snarl_side=float(rng.choice([-1.0, 1.0])),
        # The identity's resting face: small offsets of the neutral shape.
        rest=_shape(
            brow_raise=rng.normal(0, 0.1),
            brow_inner=rng.normal(0, 0.1),
            eye_open=rng.normal(0, 0.08),
            mouth_width=rng.normal(0, 0.05),
            mouth_curve=rng.normal(0, 0.05),
        ),
    )


@dataclass(frozen=True)
class Condition:
    """How one frame is captured."""

    angle: float = 0.0  # degrees, counter-clockwise
    scale: float = 1.0
    shift_x: float = 0.0  # canvas units
    shift_y: float = 0.0
    gaze: float = 0.0  # iris shift, in units of the iris travel
    light_angle: float = 0.0
    light_strength: float = 0.0  # gain difference between the image centre and its edge
    gain: float = 1.0
    contrast: float = 1.0
    blur: float = 0.0  # Gaussian radius at the output size
    noise: float = 0.0  # sensor noise standard deviation, grey levels
    noise_seed: int = 0
    jpeg_quality: int = 90


def _smooth_track(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """A slow random motion: two sinusoids with random periods (40-240 frames) and phases."""
    t = np.arange(n, dtype=float)
    track = np.zeros(n)
    for weight in (0.7, 0.3):
        period = rng.uniform(40, 240)
        track += weight * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
    return amplitude * track


def video_dynamics(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Slowly varying pose and lighting of one video, one value per frame."""
    return {
        "angle": rng.uniform(-3, 3) + _smooth_track(rng, n, 8.0),
        "scale": rng.uniform(0.95, 1.05) + _smooth_track(rng, n, 0.05),
        "shift_x": _smooth_track(rng, n, 0.03),
        "shift_y": _smooth_track(rng, n, 0.03),
        "gaze": _smooth_track(rng, n, 0.6),
        "light_angle": rng.uniform(0, 2 * math.pi) + _smooth_track(rng, n, 0.8),
        "light_strength": np.clip(rng.uniform(0, 0.3) + _smooth_track(rng, n, 0.1), 0, 0.45),
        "gain": rng.uniform(0.8, 1.15) * (1 + _smooth_track(rng, n, 0.08)),
        "contrast": rng.uniform(0.8, 1.15) * (1 + _smooth_track(rng, n, 0.06)),
        "noise": np.full(n, rng.uniform(0, 5)),
    }


def frame_condition(dynamics: dict[str, np.ndarray], i: int, rng: np.random.Generator) -> Condition:
    """The condition of frame ``i``: the video's slow motion plus per-frame jitter."""
    return Condition(
        angle=float(dynamics["angle"][i] + rng.normal(0, 0.7)),
        scale=float(dynamics["scale"][i] * (1 + rng.normal(0, 0.01))),
        shift_x=float(dynamics["shift_x"][i] + rng.normal(0, 0.004)),
        shift_y=float(dynamics["shift_y"][i] + rng.normal(0, 0.004)),
        gaze=float(np.clip(dynamics["gaze"][i] + rng.normal(0, 0.1), -1, 1)),
        light_angle=float(dynamics["light_angle"][i]),
        light_strength=float(dynamics["light_strength"][i]),
        gain=float(dynamics["gain"][i]),
        contrast=float(dynamics["contrast"][i]),
        blur=float(rng.uniform(0.3, 1.3)) if rng.random() < 0.5 else 0.0,
        noise=float(dynamics["noise"][i] + rng.uniform(0, 3)),
        noise_seed=int(rng.integers(2**31)),
        jpeg_quality=int(rng.integers(55, 96)),
    )


# Size of the face coordinates relative to the canvas: aligned crops are mostly face.
_FACE_SCALE = 1.12


class _Painter:
    """Draws polygons and lines given in face coordinates (canvas units, face centre at 0)."""

    def __init__(self, image: Image.Image, ident: Identity, cond: Condition) -> None:
        self.draw = ImageDraw.Draw(image)
        size = image.size[0]
        self.unit = size * cond.scale * _FACE_SCALE
        theta = math.radians(cond.angle)
        self.rot = np.array(
            [[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]]
        )
        self.origin = np.array([0.5 + cond.shift_x, 0.52 + cond.shift_y]) * size

    def _px(self, pts: np.ndarray) -> list[float]:
        return ((pts @ self.rot.T) * self.unit + self.origin).ravel().tolist()

    def polygon(self, pts: np.ndarray, fill: tuple[int, int, int]) -> None:
        self.draw.polygon(self._px(pts), fill=fill)

    def line(self, pts: np.ndarray, fill: tuple[int, int, int], width: float) -> None:
        px_width = max(1, round(width * self.unit))
        self.draw.line(self._px(pts), fill=fill, width=px_width, joint="curve")


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _face_outline(ident: Identity, grow: float = 1.0, n: int = 64) -> np.ndarray:
    """The face contour: a superellipse whose lower half tapers to the chin."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / ident.face_power
    x = ident.face_a * grow * np.sign(c) * np.abs(c) ** e
    y = ident.face_b * grow * np.sign(s) * np.abs(s) ** e
    lower = np.clip(y / (ident.face_b * grow), 0, 1)
    x = x * (1 - ident.chin_taper * lower**2)
    return np.stack([x, y], axis=1)


def _curve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x, y], axis=1)


_S13 = np.linspace(-1, 1, 13)


def _draw_eye(p: _Painter, ident: Identity, sh: np.ndarray, side: float, gaze: float) -> None:
    ex, ey, ew = side * ident.eye_dx, ident.eye_y, ident.eye_w
    open_ = sh[_K["eye_open"]]
    h_up = ident.eye_h * max(0.2, 1 + open_)
    h_lo = ident.eye_h * (0.85 * max(0.2, 1 + 0.5 * open_) - 1.1 * sh[_K["eye_smile"]])
    h_lo = max(h_lo, -0.6 * h_up)
    s = _S13
    bump = 1 - s**2
    x = ex + s * ew
    upper = ey - h_up * bump**0.8
    lower = ey + h_lo * bump
    white = (238, 234, 228)
    p.polygon(_curve(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]])), white)
    # Iris and pupil, clipped to the eye opening.
    cx = ex + gaze * 0.35 * ew
    for radius, colour in ((ident.iris_r, ident.iris), (0.45 * ident.iris_r, (12, 10, 10))):
        circle = _ellipse(cx, ey, radius, radius, 20)
        cxs = np.clip(circle[:, 0], ex - ew, ex + ew)
        sc = (cxs - ex) / ew
        b = 1 - sc**2
        top = ey - h_up * np.clip(b, 0, 1) ** 0.8
        bottom = ey + h_lo * b
        cys = np.clip(circle[:, 1], top, np.maximum(top, bottom))
        p.polygon(_curve(cxs, cys), colour)
    lash = (30, 22, 20)
    p.line(_curve(x, upper), lash, 0.011)
    p.line(_curve(x, lower), ident.skin_shade, 0.005)


def _draw_brow(p: _Painter, ident: Identity, sh: np.ndarray, side: float) -> None:
    unit = 0.04
    raise_ = sh[_K["brow_raise"]] * unit
    inner_x = side * (ident.eye_dx - 0.8 * ident.eye_w - sh[_K["brow_in"]] * 0.45 * ident.eye_w)
    outer_x = side * (ident.eye_dx + ident.brow_len * 1.15 * ident.eye_w)
    base = ident.eye_y - ident.brow_gap
    inner_y = base - raise_ - sh[_K["brow_inner"]] * unit
    outer_y = base - 0.8 * raise_ + 0.004
    arch = ident.brow_arch + max(0.0, sh[_K["brow_raise"]]) * 0.008
    t = np.linspace(0, 1, 11)
    x = inner_x + (outer_x - inner_x) * t
    y = inner_y + (outer_y - inner_y) * t - arch * 4 * t * (1 - t) * 1.2
    half = ident.brow_thick * (1 - 0.45 * t) / 2
    pts = _curve(np.concatenate([x, x[::-1]]), np.concatenate([y - half, (y + half)[::-1]]))
    p.polygon(pts, ident.brow)


def _draw_nose(p: _Painter, ident: Identity, sh: np.ndarray) -> None:
    wrinkle = sh[_K["nose_wrinkle"]]
    ny = ident.nose_y - 0.008 * wrinkle
    nw = ident.nose_w * (1 + 0.25 * wrinkle)
    for side in (-1.0, 1.0):
        p.polygon(_ellipse(side * nw, ny, 0.011, 0.0065, 14), _rgb(np.array(ident.skin) * 0.45))
    tip = np.linspace(-1, 1, 9)
    p.line(_curve(tip * nw * 0.75, ny - 0.012 + 0.006 * (1 - tip**2)), ident.skin_shade, 0.005)
    side_x = np.array([0.016, nw * 1.25])
    p.line(_curve(side_x, np.array([ident.eye_y + 0.035, ny - 0.01])), ident.skin_shade, 0.005)
    if wrinkle > 0.05:
        for k in range(3):
            half = 0.028 * wrinkle * (1 - 0.2 * k)
            wx = np.linspace(-half, half, 5)
            wy = ident.eye_y + 0.012 + 0.014 * k - 0.006 * (1 - (wx / max(half, 1e-6)) ** 2)
            p.line(_curve(wx, wy), _rgb(np.array(ident.skin) * 0.65), 0.008)


#: Where the mouth's outline is sampled, from one corner (-1) to the other (1).
_MOUTH_SAMPLES = np.linspace(-1, 1, 17)


def _lip_parting(
    sh: np.ndarray, s: np.ndarray, mw: float, snarl_side: float
) -> tuple[np.ndarray, np.ndarray]:
    """How far the lips part along the mouth: the opening (each lip) and the raised upper lip."""
    opening = sh[_K["mouth_open"]] * mw * np.sqrt(1 - s**2)
    snarl = sh[_K["lip_raise"]] * mw * 0.45
    snarl = snarl * np.clip(1 - ((s - 0.35 * snarl_side) / 0.6) ** 2, 0, 1)
    return opening, snarl


def lip_gap(shape: np.ndarray) -> float:
    """The widest gap between the drawn lips, in mouth half-widths (0: closed).

    The gap :func:`_draw_mouth` draws between the upper and lower lip: the parted lips (twice
    the opening) plus the raised side of the upper lip. It does not depend on the identity.
    """
    opening, snarl = _lip_parting(shape, _MOUTH_SAMPLES, 1.0, 1.0)
    return float((2 * opening + snarl).max())


def face_shape(ident: Identity, expression: int, intensity: float) -> np.ndarray:
    """The shape parameters (:data:`SHAPE_KEYS`) :func:`render` draws: rest plus expression."""
    return ident.rest + float(intensity) * _EXPRESSION_SHAPES[expression]


def _draw_mouth(p: _Painter, ident: Identity, sh: np.ndarray) -> None:
    mw = ident.mouth_w
    w = mw * (1 + sh[_K["mouth_width"]])
    my = ident.mouth_y + sh[_K["mouth_drop"]] * mw
    s = _MOUTH_SAMPLES
    x = s * w
    centre = my - sh[_K["mouth_curve"]] * mw * s**2
    opening, snarl = _lip_parting(sh, s, mw, ident.snarl_side)
    upper = centre - opening - snarl
    lower = centre + opening
    # Pressed lips thin out; parted lips stretch.
    press = (1 - 0.65 * sh[_K["lip_press"]]) * (1 - 0.4 * min(1.0, sh[_K["mouth_open"]]))
    lip_up = ident.lip_t * press * (0.55 + 0.45 * np.sqrt(1 - s**2))
    lip_up = lip_up * (1 - 0.35 * np.exp(-((s / 0.12) ** 2)))  # cupid's bow
    lip_lo = ident.lip_t * 1.3 * press * np.sqrt(1 - s**2)
    outline = _curve(
        np.concatenate([x, x[::-1]]), np.concatenate([upper - lip_up, (lower + lip_lo)[::-1]])
    )
    p.polygon(outline, ident.lip)
    gap = lower - upper
    if gap.max() > 0.002:
        p.polygon(
            _curve(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]])),
            ident.mouth_inside,
        )
        tongue_top = np.maximum(centre + 0.35 * opening, upper)
        p.polygon(
            _curve(np.concatenate([x, x[::-1]]), np.concatenate([tongue_top, lower[::-1]])),
            ident.tongue,
        )
        teeth = sh[_K["teeth"]]
        if teeth > 0.02:
            keep = np.abs(s) <= 0.8
            tx = x[keep]
            t_top = upper[keep]
            t_bottom = np.minimum(t_top + teeth * np.maximum(gap[keep], 0) * 0.7, lower[keep])
            t_bottom = np.maximum(t_bottom, t_top)
            p.polygon(
                _curve(np.concatenate([tx, tx[::-1]]), np.concatenate([t_top, t_bottom[::-1]])),
                (228, 222, 205),
            )
    p.line(
        _curve(x, (upper + lower) / 2 if gap.max() <= 0.002 else upper),
        ident.mouth_inside,
        0.006 * (1 + 0.7 * sh[_K["lip_press"]]),  # pressed lips: a firmer line
    )
    fold = sh[_K["smile_fold"]]
    if fold > 0.05:
        for side in (-1.0, 1.0):
            t = np.linspace(0, min(1.0, fold), 7)
            fx = side * (
                ident.nose_w * 1.5
                + t * (w + 0.02 - ident.nose_w * 1.5)
                + 0.012 * np.sin(math.pi * t)
            )
            fy = ident.nose_y - 0.005 + t * (centre[0] - ident.nose_y + 0.01)
            p.line(_curve(fx, fy), ident.skin_shade, 0.007)


def _draw_head(p: _Painter, ident: Identity, sh: np.ndarray, cond: Condition) -> None:
    a, b = ident.face_a, ident.face_b
    # Shoulders and neck.
    p.polygon(_ellipse(0, b + 0.42, 0.55, 0.3, 32), ident.clothes)
    neck = np.array([[-0.11, 0.1], [0.11, 0.1], [0.12, b + 0.2], [-0.12, b + 0.2]])
    p.polygon(neck, ident.skin_shade)
    if ident.hair_style == 2:
        back = _face_outline(ident, 1.12)
        back[:, 1] = np.where(back[:, 1] > 0, back[:, 1] * 1.35, back[:, 1])
        p.polygon(back, ident.hair)
    for side in (-1.0, 1.0):
        p.polygon(_ellipse(side * a * 0.97, ident.eye_y + 0.04, 0.03, 0.055, 16), ident.skin_shade)
    p.polygon(_face_outline(ident), ident.skin)
    if ident.hair_style > 0:
        hair = _face_outline(ident, 1.06)
        ratio = np.abs(hair[:, 0]) / (a * 1.06)
        hairline = ident.hairline + ident.hair_side_drop * ratio**4
        hair[:, 1] = np.minimum(hair[:, 1], hairline)
        p.polygon(hair, ident.hair)
    for side in (-1.0, 1.0):
        _draw_eye(p, ident, sh, side, cond.gaze)
        _draw_brow(p, ident, sh, side)
    _draw_nose(p, ident, sh)
    _draw_mouth(p, ident, sh)


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        c = np.linspace(-1, 1, size, dtype=np.float32)
        _GRIDS[size] = (c[None, :].repeat(size, 0), c[:, None].repeat(size, 1))
    return _GRIDS[size]


def draw_background(ident: Identity, size: int) -> Image.Image:
    """The identity's scene behind the face, drawn once per video at the drawing size."""
    xx, yy = _grid(size)
    ramp = (xx * math.cos(ident.background_angle) + yy * math.sin(ident.background_angle) + 1) / 2
    c1, c2 = (np.array(c, dtype=np.float32) for c in ident.background)
    arr = c1 + (c2 - c1) * ramp[..., None]
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for bx, by, br, colour in ident.background_blobs:
        box = [(bx - br) * size, (by - br) * size, (bx + br) * size, (by + br) * size]
        draw.ellipse(box, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(size / 40))


def render(
    ident: Identity,
    expression: int,
    intensity: float,
    cond: Condition,
    image_size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """Draw one frame at twice ``image_size``, shrink it, then blur, light and add noise."""
    canvas_size = 2 * image_size
    if background is None:
        background = draw_background(ident, canvas_size)
    canvas = background.copy()
    shape = face_shape(ident, expression, intensity)
    _draw_head(_Painter(canvas, ident, cond), ident, shape, cond)
    image = canvas.reduce(2)  # 2x2 supersampling: antialiased edges
    if cond.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(cond.blur))
    arr = np.asarray(image, dtype=np.float32)
    xx, yy = _grid(image_size)
    light = cond.gain * (
        1
        + cond.light_strength * (xx * math.cos(cond.light_angle) + yy * math.sin(cond.light_angle))
    )
    arr = (arr * light[..., None] - 128.0) * cond.contrast + 128.0
    if cond.noise > 0:
        noise = np.random.default_rng(cond.noise_seed).standard_normal(arr.shape, np.float32)
        arr += cond.noise * noise
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def render_face(
    identity_seed: int,
    expression: int,
    intensity: float = 1.0,
    *,
    condition_seed: int | None = None,
    image_size: int = 112,
) -> Image.Image:
    """Render one face as the generator draws it (before JPEG compression).

    The same ``identity_seed`` and ``condition_seed`` give the same person, pose, lighting, blur
    and noise whatever the expression, so that images differ only by the expression's geometry.

    Args:
        identity_seed: seed of the person (face, colours, scene); it is the identity of training
            video 0 of a spec with ``seed=identity_seed``.
        expression: class index 0..6 (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise).
        intensity: 0 (resting face) to 1 (full expression).
        condition_seed: seed of a random frame condition (pose, scale, lighting, blur, noise);
            ``None`` for a frontal, evenly lit, clean frame.
        image_size: side of the returned image.

    Returns:
        An RGB image of ``image_size`` x ``image_size`` pixels.

    Raises:
        ValueError: for an expression outside 0..6 or an intensity outside [0, 1].
    """
    if not 0 <= expression < NUM_CLASSES:
        raise ValueError(f"expression must be in 0..{NUM_CLASSES - 1}, got {expression}")
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"intensity must be in [0, 1], got {intensity}")
    ident = make_identity(make_rng(identity_seed, 0, 0, STREAM_IDENTITY))
    if condition_seed is None:
        cond = Condition()
    else:
        dynamics = video_dynamics(make_rng(condition_seed, 0, 0, STREAM_DYNAMICS), 1)
        cond = frame_condition(dynamics, 0, make_rng(condition_seed, 0, 0, STREAM_FRAME))
    return render(ident, expression, intensity, cond, image_size)
