"""Synthetic pedestrian dataset in Market-1501 layout.

The generator draws crude but recognisable pedestrians (head, hair, torso, arms, legs, shoes and an
optional bag) on camera-specific street-like backgrounds. Every identity has its own clothing colours,
top pattern, sleeve/trouser style, bag and body proportions; every camera has its own background,
illumination (gain, colour cast, gamma), viewpoint (horizontal scale, shear, mirroring, preferred
facing direction) and blur/noise level. Each image further jitters the person's position, scale,
pose and brightness, and is stored as a JPEG. Identities are therefore distinguishable by their
clothes, but only through camera changes, which makes it a small, fast, offline stand-in for a real
Re-ID benchmark (a small CNN trained from scratch reaches a clearly non-trivial Rank-1).

The folder written by :func:`make_synthetic_market1501` is read unchanged by torchreid's own
``Market1501`` dataset::

    <root>/market1501/Market-1501-v15.09.15/
        bounding_box_train/0001_c1s1_000000_00.jpg
        query/...
        bounding_box_test/...
        synthetic.json

All randomness comes from local :class:`numpy.random.Generator` objects seeded from the config seed;
the global numpy / Python / torch RNGs are never touched, so the output is byte-identical for a seed.
"""
from __future__ import annotations

import colorsys
import dataclasses
import functools
import io
import json
import logging
import os
import pathlib
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "SyntheticConfig",
    "PersonIdentity",
    "CameraStyle",
    "sample_identity",
    "sample_camera",
    "render_person",
    "make_synthetic_market1501",
    "make_synthetic_images",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the drawing changes, so a cached dataset from an older generator is rebuilt.
GENERATOR_VERSION = 1

DATASET_DIR = "market1501"
DATA_SUBDIR = "Market-1501-v15.09.15"
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
MANIFEST = "synthetic.json"
_IN_PROGRESS = ".synthetic_in_progress"
JPEG_QUALITY = 95

PATTERNS = ("plain", "hstripes", "vstripes", "checks")
BAGS = ("none", "backpack", "shoulder")

RGB = tuple[int, int, int]

# Stream tags so that identities, cameras and images draw from independent, order-free streams.
_TAG_IDENTITY = 1
_TAG_CAMERA = 2
_TAG_IMAGE = 3
_TAG_SPLIT = 4
_TAG_BACKGROUND = 5


# --------------------------------------------------------------------------------------------------
# Configuration and sampled attributes
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of a synthetic Market-1501-style dataset.

    Attributes:
        num_train_ids: Number of training identities (pids ``1 .. num_train_ids``).
        num_test_ids: Number of test identities (the following pids), disjoint from training.
        images_per_id_per_camera: Images of every identity in every camera (at least 2, so that
            each query has a gallery match in every other camera).
        num_cameras: Number of cameras (2 .. 6; Market-1501 readers accept camera ids 1 .. 6).
        height: Height of the written images in pixels.
        width: Width of the written images in pixels (person crops are tall: ``height = 2 * width``).
        seed: Seed of every random choice; equal configs give byte-identical datasets.
    """

    num_train_ids: int = 60
    num_test_ids: int = 30
    images_per_id_per_camera: int = 4
    num_cameras: int = 2
    height: int = 128
    width: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_train_ids < 1 or self.num_test_ids < 1:
            raise ValueError("num_train_ids and num_test_ids must be >= 1")
        if self.num_train_ids + self.num_test_ids > 1501:
            raise ValueError("Market-1501 readers accept at most 1501 identities")
        if not 2 <= self.num_cameras <= 6:
            raise ValueError("num_cameras must be in 2..6 (Market-1501 camera ids are 1..6)")
        if self.images_per_id_per_camera < 2:
            raise ValueError("images_per_id_per_camera must be >= 2 (one query + gallery)")
        if self.height < 16 or self.width < 8:
            raise ValueError("images must be at least 16x8 pixels")
        if self.total_images > 999_999:
            raise ValueError("too many images for 6-digit frame numbers")

    @property
    def total_images(self) -> int:
        """Number of images written over all three splits."""
        return (
            (self.num_train_ids + self.num_test_ids)
            * self.num_cameras
            * self.images_per_id_per_camera
        )

    @property
    def num_query(self) -> int:
        """Number of query images (one per test identity and camera)."""
        return self.num_test_ids * self.num_cameras

    @property
    def num_gallery(self) -> int:
        """Number of gallery images (the remaining test images)."""
        return self.num_test_ids * self.num_cameras * (self.images_per_id_per_camera - 1)

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return self.num_train_ids * self.num_cameras * self.images_per_id_per_camera


@dataclass(frozen=True)
class PersonIdentity:
    """Appearance of one person, sampled once per identity (see :func:`sample_identity`).

    Colours are ``(r, g, b)`` in 0..255. Lengths are in units of the person's height.

    Attributes:
        pid: Identity number.
        skin: Skin colour.
        hair: Hair colour.
        long_hair: Whether the hair reaches the shoulders.
        top: Main colour of the top (torso and sleeves).
        pattern: Top pattern, one of :data:`PATTERNS`.
        pattern_colour: Second colour of the pattern (unused for ``"plain"``).
        pattern_period: Stripe / check period in person heights.
        long_sleeves: Long sleeves (else short sleeves with bare forearms).
        trousers: Trousers colour.
        shorts: Shorts (bare lower legs) instead of long trousers.
        shoes: Shoe colour.
        bag: One of :data:`BAGS`.
        bag_colour: Bag colour (unused when ``bag == "none"``).
        bag_side: ``-1`` (person's left in the image) or ``+1`` for a shoulder bag.
        body_width: Width factor of shoulders/hips/limbs (about 0.85 .. 1.2).
        leg_length: Leg length factor (about 0.93 .. 1.07).
    """

    pid: int
    skin: RGB
    hair: RGB
    long_hair: bool
    top: RGB
    pattern: str
    pattern_colour: RGB
    pattern_period: float
    long_sleeves: bool
    trousers: RGB
    shorts: bool
    shoes: RGB
    bag: str
    bag_colour: RGB
    bag_side: int
    body_width: float
    leg_length: float


@dataclass(frozen=True)
class CameraStyle:
    """Imaging conditions of one camera, sampled once per camera (see :func:`sample_camera`).

    Attributes:
        camid: Camera number (1-based, as in Market-1501 file names).
        wall_top: Background colour at the top of the frame.
        wall_bottom: Background colour just above the floor.
        floor: Floor colour.
        horizon: Height of the floor line as a fraction of the image height.
        background_seed: Seed of the background layout (rectangles, texture).
        gain: Global illumination gain.
        colour_cast: Per-channel (r, g, b) multipliers.
        gamma: Tone curve exponent.
        person_scale: Typical person height as a fraction of the image height.
        hscale: Horizontal stretch of the person (viewpoint / aspect).
        shear: Horizontal shear of the person (slanted viewpoint).
        mirrored: Whether the person is mirrored left-right.
        front_prob: Probability that the person faces the camera (else seen from the back).
        blur: Gaussian blur radius in pixels at 128-pixel image height.
        noise: Standard deviation of the additive pixel noise (0..255 scale).
    """

    camid: int
    wall_top: RGB
    wall_bottom: RGB
    floor: RGB
    horizon: float
    background_seed: int
    gain: float
    colour_cast: tuple[float, float, float]
    gamma: float
    person_scale: float
    hscale: float
    shear: float
    mirrored: bool
    front_prob: float
    blur: float
    noise: float


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _clothing_colour(rng: np.random.Generator) -> RGB:
    """A clothing colour: mostly saturated hues from the full circle, some neutrals."""
    kind = rng.random()
    if kind < 0.18:  # neutral: black .. white
        return _hsv(rng.random(), rng.uniform(0.0, 0.12), rng.choice([0.12, 0.35, 0.6, 0.9]) + rng.uniform(-0.06, 0.06))
    return _hsv(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.4, 0.95))


def _trousers_colour(rng: np.random.Generator) -> RGB:
    kind = rng.random()
    if kind < 0.3:  # dark
        return _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.1, 0.3))
    if kind < 0.5:  # denim
        return _hsv(rng.uniform(0.56, 0.64), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.65))
    if kind < 0.62:  # khaki / beige
        return _hsv(rng.uniform(0.08, 0.14), rng.uniform(0.25, 0.5), rng.uniform(0.5, 0.8))
    return _clothing_colour(rng)


_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 94], [141, 85, 54], [92, 56, 36]],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [[20, 17, 15], [45, 30, 20], [85, 55, 35], [150, 105, 60], [210, 175, 110], [150, 150, 150], [120, 45, 25]],
    dtype=np.float64,
)


def sample_identity(pid: int, rng: np.random.Generator) -> PersonIdentity:
    """Samples the appearance of one person.

    Args:
        pid: Identity number stored in the result.
        rng: Generator the attributes are drawn from.

    Returns:
        The sampled identity.
    """
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = int(t)
    skin = _SKIN_TONES[i] * (1 - (t - i)) + _SKIN_TONES[min(i + 1, len(_SKIN_TONES) - 1)] * (t - i)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    top = _clothing_colour(rng)
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.15, 0.2]))
    pattern_colour = _clothing_colour(rng)
    top_hsv = colorsys.rgb_to_hsv(*(c / 255 for c in top))
    pat_hsv = colorsys.rgb_to_hsv(*(c / 255 for c in pattern_colour))
    if abs(top_hsv[2] - pat_hsv[2]) < 0.25:  # keep the pattern visible: contrast in brightness
        v = top_hsv[2] - 0.4 if top_hsv[2] > 0.55 else top_hsv[2] + 0.4
        pattern_colour = _hsv(pat_hsv[0], pat_hsv[1], v)
    shoe_kind = rng.random()
    if shoe_kind < 0.55:
        shoes = _hsv(rng.random(), 0.1, rng.uniform(0.05, 0.2))
    elif shoe_kind < 0.8:
        shoes = _hsv(rng.random(), 0.05, rng.uniform(0.8, 0.95))
    else:
        shoes = _clothing_colour(rng)
    bag = str(rng.choice(BAGS, p=[0.45, 0.3, 0.25]))
    return PersonIdentity(
        pid=pid,
        skin=tuple(int(round(c)) for c in skin),  # type: ignore[arg-type]
        hair=tuple(int(min(255, round(c))) for c in hair),  # type: ignore[arg-type]
        long_hair=bool(rng.random() < 0.3),
        top=top,
        pattern=pattern,
        pattern_colour=pattern_colour,
        pattern_period=float(rng.uniform(0.045, 0.08)),
        long_sleeves=bool(rng.random() < 0.6),
        trousers=_trousers_colour(rng),
        shorts=bool(rng.random() < 0.2),
        shoes=shoes,
        bag=bag,
        bag_colour=_clothing_colour(rng),
        bag_side=int(rng.choice([-1, 1])),
        body_width=float(rng.uniform(0.85, 1.2)),
        leg_length=float(rng.uniform(0.93, 1.07)),
    )


def sample_camera(camid: int, rng: np.random.Generator) -> CameraStyle:
    """Samples the imaging conditions of one camera.

    Args:
        camid: Camera number (1-based) stored in the result.
        rng: Generator the attributes are drawn from.

    Returns:
        The sampled camera style.
    """
    wall_h = rng.random()
    wall_top = _hsv(wall_h, rng.uniform(0.05, 0.4), rng.uniform(0.45, 0.9))
    wall_bottom = _hsv(wall_h + rng.uniform(-0.1, 0.1), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.75))
    floor = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.65))
    cast = rng.uniform(0.82, 1.18, size=3)
    cast = cast / cast.mean()
    return CameraStyle(
        camid=camid,
        wall_top=wall_top,
        wall_bottom=wall_bottom,
        floor=floor,
        horizon=float(rng.uniform(0.5, 0.78)),
        background_seed=int(rng.integers(2**31)),
        gain=float(rng.uniform(0.75, 1.25)),
        colour_cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        gamma=float(rng.uniform(0.8, 1.25)),
        person_scale=float(rng.uniform(0.8, 0.9)),
        hscale=float(rng.uniform(0.85, 1.12)),
        shear=float(rng.uniform(-0.12, 0.12)),
        mirrored=bool(rng.random() < 0.5),
        front_prob=float(rng.choice([0.2, 0.5, 0.8])),
        blur=float(rng.uniform(0.0, 0.9)),
        noise=float(rng.uniform(1.5, 6.0)),
    )


def _identity_rng(seed: int, pid: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TAG_IDENTITY, pid])


def _camera_rng(seed: int, camid: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TAG_CAMERA, camid])


def _image_rng(seed: int, pid: int, camid: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TAG_IMAGE, pid, camid, index])


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
# Labels of the person label map; 0 is transparent.
_SKIN, _HAIR, _TOP, _TOP2, _TROUSERS, _SHOES, _BAG = range(1, 8)
_NUM_LABELS = 8


@functools.lru_cache(maxsize=32)
def _background(camera: CameraStyle, height: int, width: int) -> np.ndarray:
    """The camera's (cached) background canvas, larger than the image by a margin for cropping."""
    rng = np.random.default_rng([camera.background_seed, _TAG_BACKGROUND])
    mh, mw = max(2, height // 16), max(2, width // 8)
    bh, bw = height + 2 * mh, width + 2 * mw
    horizon = int(round(mh + camera.horizon * height))
    img = Image.new("RGB", (bw, bh), camera.floor)
    draw = ImageDraw.Draw(img)
    top, bottom = np.array(camera.wall_top, float), np.array(camera.wall_bottom, float)
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line([(0, y), (bw, y)], fill=tuple(int(c) for c in top * (1 - t) + bottom * t))
    # Façades / doors / windows / posters above the floor line.
    for _ in range(int(rng.integers(4, 9))):
        x0 = rng.uniform(-0.2, 1.0) * bw
        w = rng.uniform(0.12, 0.5) * bw
        y1 = horizon - rng.uniform(0.0, 0.05) * bh
        y0 = y1 - rng.uniform(0.15, 0.6) * bh
        base = np.array(camera.wall_top, float) * rng.uniform(0.5, 1.1) + rng.normal(0, 25, 3)
        colour = tuple(int(c) for c in np.clip(base, 0, 255))
        draw.rectangle([x0, y0, x0 + w, y1], fill=colour)
        if rng.random() < 0.6:  # windows
            wc = tuple(int(c) for c in np.clip(np.array(colour) * rng.uniform(0.4, 1.5), 0, 255))
            n = int(rng.integers(1, 4))
            for k in range(n):
                wx = x0 + (k + 0.2) * w / n
                draw.rectangle([wx, y0 + 0.1 * (y1 - y0), wx + 0.55 * w / n, y0 + 0.4 * (y1 - y0)], fill=wc)
    # Poles.
    for _ in range(int(rng.integers(0, 3))):
        x = rng.uniform(0, bw)
        draw.rectangle([x, rng.uniform(0, 0.3) * bh, x + max(1, 0.03 * bw), horizon], fill=_hsv(rng.random(), 0.2, rng.uniform(0.2, 0.6)))
    # Floor tiles / perspective lines.
    floor_line = tuple(int(c * 0.8) for c in camera.floor)
    for k in range(1, 6):
        y = horizon + (bh - horizon) * (k / 6) ** 1.5
        draw.line([(0, y), (bw, y)], fill=floor_line, width=1)
    for k in range(-4, 5):
        draw.line([(bw / 2 + k * 0.12 * bw, horizon), (bw / 2 + k * 0.6 * bw, bh)], fill=floor_line, width=1)
    arr = np.asarray(img, dtype=np.float32)
    # Low-frequency texture so that the background is not flat.
    coarse = Image.fromarray(rng.integers(0, 256, size=(6, 4), dtype=np.uint8))
    texture = np.asarray(coarse.resize((bw, bh), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0 - 0.5
    arr = arr * (1.0 + 0.25 * texture[..., None]) + rng.normal(0, 3.0, size=arr.shape).astype(np.float32)
    arr = np.clip(arr, 0, 255)
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=8)
def _canvas_grids(ch: int, cw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-coordinate grids and a cylindrical shading map of a person canvas."""
    ys = np.arange(ch, dtype=np.float32)[:, None]
    xs = np.arange(cw, dtype=np.float32)[None, :]
    unit = ch / 1.06
    rel = (xs - cw / 2) / (0.22 * unit)
    shade = np.clip(1.05 - 0.35 * rel**2, 0.62, 1.05) * (1.04 - 0.1 * ys / ch)
    return ys, xs, shade.astype(np.float32)


def _draw_person(identity: PersonIdentity, front: bool, rng: np.random.Generator, unit: float) -> np.ndarray:
    """Draws the person's label map on a canvas where the person is ``unit`` pixels tall.

    Returns:
        ``(ch, cw)`` uint8 label map (0 = transparent).
    """
    ch, cw = int(round(1.06 * unit)), int(round(0.64 * unit))
    cx, y0 = cw / 2.0, 0.03 * unit
    bw = identity.body_width
    leg = identity.leg_length
    img = Image.new("L", (cw, ch), 0)
    d = ImageDraw.Draw(img)

    def p(x: float, y: float) -> tuple[float, float]:
        return (cx + x * unit, y0 + y * unit)

    def quad(x0: float, y0_: float, x1: float, y1: float, w0: float, w1: float) -> list[tuple[float, float]]:
        """Limb polygon from (x0, y0_) to (x1, y1) with half-widths w0 / w1 (person units)."""
        dx, dy = x1 - x0, y1 - y0_
        n = max(1e-6, (dx * dx + dy * dy) ** 0.5)
        nx, ny = -dy / n, dx / n
        return [p(x0 + nx * w0, y0_ + ny * w0), p(x1 + nx * w1, y1 + ny * w1),
                p(x1 - nx * w1, y1 - ny * w1), p(x0 - nx * w0, y0_ - ny * w0)]

    def ellipse(x: float, y: float, rx: float, ry: float, label: int) -> None:
        (ax, ay), (bx, by) = p(x - rx, y - ry), p(x + rx, y + ry)
        d.ellipse([ax, ay, bx, by], fill=label)

    # Proportions (person units; head top at y=0, soles at y=1).
    shoulder_y, ankle_y = 0.17, 0.955
    hip_y = ankle_y - 0.425 * leg
    waist_y = hip_y - 0.03
    shoulder_w, waist_w = 0.125 * bw, 0.1 * bw
    hip_x = 0.055 * bw
    bag_side = identity.bag_side if front else -identity.bag_side

    # Pose jitter: legs spread / step, arms swing, slight torso lean.
    lean = rng.normal(0, 0.012)
    spread = rng.uniform(-0.02, 0.05)
    step = rng.uniform(-0.04, 0.04)
    arm_l = rng.uniform(0.04, 0.2)
    arm_r = rng.uniform(0.04, 0.2)
    arm_len_l = rng.uniform(0.3, 0.36)
    arm_len_r = rng.uniform(0.3, 0.36)

    # Long hair and backpack seen from the front sit behind the body.
    if identity.long_hair:
        d.polygon([p(-0.065 + lean, 0.06), p(0.065 + lean, 0.06), p(0.075 + lean, 0.24), p(-0.075 + lean, 0.24)], fill=_HAIR)
    if identity.bag == "backpack" and front:
        d.rectangle([*p(-shoulder_w - 0.03, shoulder_y + 0.03), *p(shoulder_w + 0.03, 0.45)], fill=_BAG)

    # Legs.
    for side, dy in ((-1, step), (1, -step)):
        top = (side * hip_x, hip_y)
        foot = (side * (hip_x + spread), ankle_y + min(0.0, dy))
        d.polygon(quad(top[0], top[1], foot[0], foot[1], 0.05 * bw, 0.033 * bw), fill=_TROUSERS)
        if identity.shorts:
            knee_t = 0.42
            kx, ky = top[0] + (foot[0] - top[0]) * knee_t, top[1] + (foot[1] - top[1]) * knee_t
            d.polygon(quad(kx, ky, foot[0], foot[1], 0.036 * bw, 0.028 * bw), fill=_SKIN)
        fx, fy = foot
        ellipse(fx, fy + 0.018, 0.042 * bw, 0.026, _SHOES)
    # Hips (trousers) and torso (top).
    d.polygon([p(-waist_w - 0.005 + lean, waist_y - 0.04), p(waist_w + 0.005 + lean, waist_y - 0.04),
               p(hip_x + 0.052 * bw, hip_y + 0.04), p(-hip_x - 0.052 * bw, hip_y + 0.04)], fill=_TROUSERS)
    d.polygon([p(-shoulder_w + lean, shoulder_y), p(shoulder_w + lean, shoulder_y),
               p(waist_w + lean, waist_y + 0.02), p(-waist_w + lean, waist_y + 0.02)], fill=_TOP)
    ellipse(-shoulder_w + 0.025 + lean, shoulder_y + 0.02, 0.03, 0.022, _TOP)
    ellipse(shoulder_w - 0.025 + lean, shoulder_y + 0.02, 0.03, 0.022, _TOP)
    # Backpack from behind covers the back; straps of a backpack from the front.
    if identity.bag == "backpack":
        if front:
            for side in (-1, 1):
                d.polygon(quad(side * 0.065 * bw + lean, shoulder_y, side * 0.075 * bw + lean, 0.36, 0.014, 0.014), fill=_BAG)
        else:
            d.rectangle([*p(-0.085 * bw + lean, shoulder_y + 0.03), *p(0.085 * bw + lean, 0.43)], fill=_BAG)
    # Neck and head.
    d.rectangle([*p(-0.022 + lean, 0.12), *p(0.022 + lean, shoulder_y + 0.01)], fill=_SKIN)
    hx = lean * 1.3
    if front:
        ellipse(hx, 0.068, 0.058, 0.068, _HAIR)
        ellipse(hx, 0.085, 0.05, 0.058, _SKIN)
    else:
        ellipse(hx, 0.075, 0.057, 0.071, _HAIR)
    # Arms (sleeves in the top colour, forearms bare with short sleeves) and hands.
    for side, angle, length in ((-1, arm_l, arm_len_l), (1, arm_r, arm_len_r)):
        sx, sy = side * (shoulder_w - 0.01) + lean, shoulder_y + 0.02
        hx_, hy_ = sx + side * np.sin(angle) * length, sy + np.cos(angle) * length
        d.polygon(quad(sx, sy, hx_, hy_, 0.03 * bw, 0.022 * bw), fill=_TOP)
        if not identity.long_sleeves:
            t = 0.38
            ex, ey = sx + (hx_ - sx) * t, sy + (hy_ - sy) * t
            d.polygon(quad(ex, ey, hx_, hy_, 0.024 * bw, 0.02 * bw), fill=_SKIN)
        ellipse(hx_, hy_ + 0.01, 0.022, 0.026, _SKIN)
    # Shoulder bag: strap across the torso and the bag at the hip.
    if identity.bag == "shoulder":
        s = bag_side
        d.line([p(-s * shoulder_w * 0.8 + lean, shoulder_y), p(s * (waist_w + 0.01) + lean, 0.47)], fill=_BAG, width=max(1, int(0.018 * unit)))
        bx = s * (waist_w + 0.045) + lean
        d.rounded_rectangle([*p(bx - 0.055, 0.44), *p(bx + 0.055, 0.56)], radius=0.012 * unit, fill=_BAG)
    return np.asarray(img)


def _colour_person(identity: PersonIdentity, labels: np.ndarray, unit: float) -> np.ndarray:
    """Turns a label map into premultiplied RGBA (uint8) with the pattern and shading applied."""
    ch, cw = labels.shape
    ys, xs, shade = _canvas_grids(ch, cw)
    labels = labels.copy()
    if identity.pattern != "plain":
        period = identity.pattern_period * unit
        if identity.pattern == "hstripes":
            mask = ((ys / period) % 1.0) < 0.45
            mask = np.broadcast_to(mask, labels.shape)
        elif identity.pattern == "vstripes":
            mask = np.broadcast_to((((xs - cw / 2) / period) % 1.0) < 0.45, labels.shape)
        else:
            mask = ((((xs - cw / 2) / period) % 1.0) < 0.5) ^ (((ys / period) % 1.0) < 0.5)
        labels[(labels == _TOP) & mask] = _TOP2
    lut = np.zeros((_NUM_LABELS, 3), dtype=np.float32)
    lut[_SKIN], lut[_HAIR], lut[_TOP] = identity.skin, identity.hair, identity.top
    lut[_TOP2], lut[_TROUSERS], lut[_SHOES] = identity.pattern_colour, identity.trousers, identity.shoes
    lut[_BAG] = identity.bag_colour
    rgb = lut[labels] * shade[..., None]
    alpha = (labels > 0).astype(np.float32)
    out = np.empty((ch, cw, 4), dtype=np.uint8)
    out[..., :3] = np.clip(rgb * alpha[..., None], 0, 255)
    out[..., 3] = alpha * 255
    return out


def render_person(
    identity: PersonIdentity,
    camera: CameraStyle,
    rng: np.random.Generator,
    height: int,
    width: int,
) -> np.ndarray:
    """Renders one image of ``identity`` seen by ``camera``.

    The per-image nuisance (facing direction, pose, position, scale, brightness, background crop and
    noise) is drawn from ``rng``; identity and camera attributes are fixed.

    Args:
        identity: Appearance of the person.
        camera: Imaging conditions (background, illumination, viewpoint, blur, noise).
        rng: Generator of the per-image randomness.
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        ``(height, width, 3)`` uint8 RGB image (before JPEG compression).
    """
    front = bool(rng.random() < camera.front_prob)
    scale = camera.person_scale * rng.uniform(0.93, 1.07)
    # Draw at about twice the output resolution and box-downsample (anti-aliasing).
    unit = max(24.0, 2.0 * scale * height)
    labels = _draw_person(identity, front, rng, unit)
    rgba = _colour_person(identity, labels, unit)
    ch, cw = labels.shape
    k = scale * height / unit
    pw = max(1, int(round(cw * k * camera.hscale * rng.uniform(0.96, 1.04))))
    ph = max(1, int(round(ch * k)))
    person = Image.frombytes("RGBa", (cw, ch), rgba.tobytes()).resize((pw, ph), Image.Resampling.BOX)
    feet_in = (0.03 + 1.0) * unit * k  # soles in the resized person image
    # Place the feet near the bottom centre with a small random translation; shear and mirror.
    ox = width / 2 + rng.uniform(-0.07, 0.07) * width
    fy = height * (0.5 + scale / 2) + rng.uniform(-0.04, 0.03) * height
    m = -1.0 if camera.mirrored else 1.0
    sh = camera.shear + rng.normal(0, 0.02)
    coeffs = (m, -m * sh, pw / 2 - m * ox + m * sh * fy, 0.0, 1.0, feet_in - fy)
    person = person.transform((width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    pm = np.asarray(person, dtype=np.float32)

    bg = _background(camera, height, width)
    oy = int(rng.integers(0, bg.shape[0] - height + 1))
    ox_bg = int(rng.integers(0, bg.shape[1] - width + 1))
    bg = bg[oy : oy + height, ox_bg : ox_bg + width]
    alpha = pm[..., 3:] / 255.0
    img = bg * (1.0 - alpha) + pm[..., :3]

    # Camera photometry and per-image brightness jitter.
    img = np.clip(img / 255.0, 0.0, 1.0) ** camera.gamma
    gain = camera.gain * rng.uniform(0.85, 1.15)
    img = img * (gain * np.asarray(camera.colour_cast, dtype=np.float32)) * 255.0
    radius = camera.blur * height / 128.0
    if radius > 0.15:
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * camera.noise
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Dataset writing
# --------------------------------------------------------------------------------------------------
def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _manifest(config: SyntheticConfig) -> dict:
    return {
        "generator": "torchreid_pixelfade.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "counts": {
            "bounding_box_train": config.num_train,
            "query": config.num_query,
            "bounding_box_test": config.num_gallery,
        },
    }


def _is_complete(data_dir: pathlib.Path, config: SyntheticConfig) -> bool:
    """Whether ``data_dir`` holds a complete dataset made with ``config``."""
    try:
        recorded = json.loads((data_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    expected = _manifest(config)
    if recorded != expected:
        return False
    for split, count in expected["counts"].items():
        try:
            names = os.listdir(data_dir / split)
        except OSError:
            return False
        if sum(1 for n in names if n.endswith(".jpg")) != count:
            return False
    return True


def _prepare_dir(data_dir: pathlib.Path) -> None:
    """Empties the split folders of an earlier synthetic dataset; refuses to touch foreign data."""
    ours = (data_dir / MANIFEST).exists() or (data_dir / _IN_PROGRESS).exists()
    existing = [data_dir / s for s in SPLITS if (data_dir / s).is_dir() and any((data_dir / s).iterdir())]
    if existing and not ours:
        raise FileExistsError(
            f"{data_dir} already holds a Market-1501 dataset that was not made by the synthetic "
            "generator; refusing to overwrite it (choose another root)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MANIFEST).unlink(missing_ok=True)  # an interrupted rebuild must not look complete
    _atomic_write(data_dir / _IN_PROGRESS, b"")
    for split in SPLITS:
        if (data_dir / split).is_dir():
            shutil.rmtree(data_dir / split)
        (data_dir / split).mkdir()


def make_synthetic_market1501(
    root: str | os.PathLike, config: SyntheticConfig = SyntheticConfig()
) -> pathlib.Path:
    """Writes a synthetic pedestrian dataset in Market-1501 layout under ``root``.

    The images go to ``<root>/market1501/Market-1501-v15.09.15/{bounding_box_train,query,
    bounding_box_test}/PPPP_cCs1_FFFFFF_00.jpg``, which torchreid's ``Market1501`` dataset reads
    with ``root=<root>``. Identities ``1 .. num_train_ids`` are for training, the next
    ``num_test_ids`` for testing. Every identity has ``images_per_id_per_camera`` images in every
    camera; for the test identities one image per camera is the query and the rest is the gallery,
    so each query has gallery matches in all other cameras.

    The call is idempotent: when a complete dataset made with the same config (and generator
    version) is already there, recorded in ``synthetic.json`` which is written last, it returns
    without rewriting anything. Otherwise an earlier synthetic dataset at that place is replaced;
    a Market-1501 folder that the generator did not make is never overwritten. Every file is
    written atomically (temporary file + ``os.replace``).

    Args:
        root: Dataset root, as passed to torchreid (``ImageDataManager(root=...)``).
        config: Dataset size and seed.

    Returns:
        The ``Market-1501-v15.09.15`` folder.

    Raises:
        FileExistsError: ``root`` holds a Market-1501 dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / DATASET_DIR / DATA_SUBDIR
    if _is_complete(data_dir, config):
        logger.info("Synthetic Market-1501 already complete at %s; not rewriting", data_dir)
        return data_dir
    start = time.perf_counter()
    _prepare_dir(data_dir)

    seed = config.seed
    h, w = config.height, config.width
    cameras = [sample_camera(c, _camera_rng(seed, c)) for c in range(1, config.num_cameras + 1)]
    split_rng = np.random.default_rng([seed, _TAG_SPLIT])
    num_ids = config.num_train_ids + config.num_test_ids
    frame = 0
    for pid in range(1, num_ids + 1):
        identity = sample_identity(pid, _identity_rng(seed, pid))
        is_train = pid <= config.num_train_ids
        for camera in cameras:
            query_index = -1 if is_train else int(split_rng.integers(config.images_per_id_per_camera))
            for index in range(config.images_per_id_per_camera):
                img = render_person(identity, camera, _image_rng(seed, pid, camera.camid, index), h, w)
                if is_train:
                    split = "bounding_box_train"
                else:
                    split = "query" if index == query_index else "bounding_box_test"
                name = f"{pid:04d}_c{camera.camid}s1_{frame:06d}_00.jpg"
                _atomic_write(data_dir / split / name, _jpeg_bytes(img))
                frame += 1

    _atomic_write(data_dir / MANIFEST, (json.dumps(_manifest(config), indent=2) + "\n").encode())
    (data_dir / _IN_PROGRESS).unlink(missing_ok=True)
    logger.info(
        "Wrote synthetic Market-1501 (%d train ids, %d test ids, %d cameras, %d images, %dx%d) to %s in %.1f s",
        config.num_train_ids, config.num_test_ids, config.num_cameras, frame, h, w, data_dir,
        time.perf_counter() - start,
    )
    return data_dir


def make_synthetic_images(n: int, height: int = 128, width: int = 64, seed: int = 0) -> torch.Tensor:
    """Renders ``n`` pedestrian images (distinct identities, cameras cycled) as a tensor.

    Args:
        n: Number of images.
        height: Image height in pixels.
        width: Image width in pixels.
        seed: Seed of identities, cameras and per-image nuisance.

    Returns:
        ``(n, 3, height, width)`` float32 tensor with values in ``[0, 1]``.
    """
    num_cameras = 4
    cameras = [sample_camera(c, _camera_rng(seed, c)) for c in range(1, num_cameras + 1)]
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        identity = sample_identity(i + 1, _identity_rng(seed, i + 1))
        camera = cameras[i % num_cameras]
        out[i] = render_person(identity, camera, _image_rng(seed, i + 1, camera.camid, 0), height, width)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
