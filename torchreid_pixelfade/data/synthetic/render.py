"""Drawing one synthetic pedestrian image: background, part-label map, colour lookup, camera.

A person is drawn in two stages with a public seam between them:

1. :func:`render_labels` draws the person as an integer *part-label map*: every pixel holds one
   of the labels in :data:`PART_NAMES` (0 = transparent, then skin, hair, top, top pattern,
   trousers, shoes, bag). Shape, pose and clothing pattern are decided here.
2. :func:`colour_labels` turns the label map into pixel values through a per-label lookup table
   and applies the cylindrical body shading. :func:`identity_palette` is the table of visible
   colours; another modality (e.g. a thermal renderer) reuses stage 1 unchanged with its own
   per-label table of materials.

:func:`render_person` chains both stages for visible light, places the person on the camera's
background and applies the camera's photometry, blur and noise.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .appearance import CameraStyle, PersonIdentity, background_rng, hsv_to_rgb255

__all__ = [
    "PART_NAMES",
    "NUM_LABELS",
    "LABEL_TRANSPARENT",
    "LABEL_SKIN",
    "LABEL_HAIR",
    "LABEL_TOP",
    "LABEL_TOP_PATTERN",
    "LABEL_TROUSERS",
    "LABEL_SHOES",
    "LABEL_BAG",
    "label_canvas_size",
    "render_labels",
    "identity_palette",
    "colour_labels",
    "render_person",
]

#: Name of every part label, indexed by the label value.
PART_NAMES = ("transparent", "skin", "hair", "top", "top_pattern", "trousers", "shoes", "bag")
#: Number of distinct labels (the first axis of a lookup table for :func:`colour_labels`).
NUM_LABELS = len(PART_NAMES)
LABEL_TRANSPARENT = 0
LABEL_SKIN = 1
LABEL_HAIR = 2
LABEL_TOP = 3
LABEL_TOP_PATTERN = 4
LABEL_TROUSERS = 5
LABEL_SHOES = 6
LABEL_BAG = 7

# Person canvas in person heights: 1.06 tall (0.03 margin above the head and below the soles),
# 0.64 wide with the body axis in the middle.
_CANVAS_HEIGHT = 1.06
_CANVAS_WIDTH = 0.64
CANVAS_TOP_MARGIN = 0.03

Point = tuple[float, float]


# --------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _background(camera: CameraStyle, height: int, width: int) -> np.ndarray:
    """The camera's background canvas, larger than the image by a margin for random crops.

    Args:
        camera: Camera whose colours, horizon and background seed are used.
        height: Output image height in pixels.
        width: Output image width in pixels.

    Returns:
        Read-only ``(height + 2 * max(2, height // 16), width + 2 * max(2, width // 8), 3)``
        float32 RGB array with values in ``[0, 255]``; cached per ``(camera, height, width)``.
    """
    rng = background_rng(camera.background_seed)
    margin_y, margin_x = max(2, height // 16), max(2, width // 8)
    canvas_h, canvas_w = height + 2 * margin_y, width + 2 * margin_x
    horizon = int(round(margin_y + camera.horizon * height))
    img = Image.new("RGB", (canvas_w, canvas_h), camera.floor)
    draw = ImageDraw.Draw(img)
    _draw_wall_gradient(draw, camera, horizon, canvas_w)
    for _ in range(int(rng.integers(4, 9))):
        _draw_facade(draw, camera, rng, horizon, canvas_h, canvas_w)
    for _ in range(int(rng.integers(0, 3))):
        _draw_pole(draw, rng, horizon, canvas_h, canvas_w)
    _draw_floor_lines(draw, camera, horizon, canvas_h, canvas_w)
    background = _add_texture(np.asarray(img, dtype=np.float32), rng)
    background.setflags(write=False)
    return background


def _draw_wall_gradient(
    draw: ImageDraw.ImageDraw, camera: CameraStyle, horizon: int, canvas_w: int
) -> None:
    """Fills the rows above ``horizon`` with a vertical gradient from wall top to wall bottom."""
    top, bottom = np.array(camera.wall_top, float), np.array(camera.wall_bottom, float)
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line([(0, y), (canvas_w, y)], fill=tuple(int(c) for c in top * (1 - t) + bottom * t))


def _draw_facade(
    draw: ImageDraw.ImageDraw,
    camera: CameraStyle,
    rng: np.random.Generator,
    horizon: int,
    canvas_h: int,
    canvas_w: int,
) -> None:
    """Draws one façade / door / poster on the floor line, with windows 60% of the time."""
    x0 = rng.uniform(-0.2, 1.0) * canvas_w
    w = rng.uniform(0.12, 0.5) * canvas_w
    y1 = horizon - rng.uniform(0.0, 0.05) * canvas_h
    y0 = y1 - rng.uniform(0.15, 0.6) * canvas_h
    base = np.array(camera.wall_top, float) * rng.uniform(0.5, 1.1) + rng.normal(0, 25, 3)
    colour = tuple(int(c) for c in np.clip(base, 0, 255))
    draw.rectangle([x0, y0, x0 + w, y1], fill=colour)
    if rng.random() < 0.6:
        _draw_windows(draw, rng, colour, x0, y0, w, y1)


def _draw_windows(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    facade_colour: tuple[int, ...],
    x0: float,
    y0: float,
    w: float,
    y1: float,
) -> None:
    """Draws a row of 1..3 windows in the upper part of the façade ``[x0, x0 + w] x [y0, y1]``."""
    scaled = np.array(facade_colour) * rng.uniform(0.4, 1.5)
    window_colour = tuple(int(c) for c in np.clip(scaled, 0, 255))
    n = int(rng.integers(1, 4))
    for k in range(n):
        wx = x0 + (k + 0.2) * w / n
        box = [wx, y0 + 0.1 * (y1 - y0), wx + 0.55 * w / n, y0 + 0.4 * (y1 - y0)]
        draw.rectangle(box, fill=window_colour)


def _draw_pole(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, horizon: int, canvas_h: int, canvas_w: int
) -> None:
    """Draws one thin vertical pole reaching down to the floor line."""
    x = rng.uniform(0, canvas_w)
    top = rng.uniform(0, 0.3) * canvas_h
    colour = hsv_to_rgb255(rng.random(), 0.2, rng.uniform(0.2, 0.6))
    draw.rectangle([x, top, x + max(1, 0.03 * canvas_w), horizon], fill=colour)


def _draw_floor_lines(
    draw: ImageDraw.ImageDraw, camera: CameraStyle, horizon: int, canvas_h: int, canvas_w: int
) -> None:
    """Draws floor tile edges: horizontal lines and lines converging in perspective."""
    floor_line = tuple(int(c * 0.8) for c in camera.floor)
    for k in range(1, 6):
        y = horizon + (canvas_h - horizon) * (k / 6) ** 1.5
        draw.line([(0, y), (canvas_w, y)], fill=floor_line, width=1)
    for k in range(-4, 5):
        near = (canvas_w / 2 + k * 0.12 * canvas_w, horizon)
        far = (canvas_w / 2 + k * 0.6 * canvas_w, canvas_h)
        draw.line([near, far], fill=floor_line, width=1)


def _add_texture(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adds low-frequency brightness texture and fine noise so that the background is not flat.

    Args:
        background: ``(H, W, 3)`` float32 RGB in ``[0, 255]``.
        rng: Generator of the texture and noise.

    Returns:
        ``(H, W, 3)`` float32 RGB clipped to ``[0, 255]``.
    """
    canvas_h, canvas_w = background.shape[:2]
    coarse = Image.fromarray(rng.integers(0, 256, size=(6, 4), dtype=np.uint8))
    smooth = coarse.resize((canvas_w, canvas_h), Image.Resampling.BICUBIC)
    texture = np.asarray(smooth, dtype=np.float32) / 255.0 - 0.5
    noise = rng.normal(0, 3.0, size=background.shape).astype(np.float32)
    background = background * (1.0 + 0.25 * texture[..., None]) + noise
    return np.clip(background, 0, 255)


# --------------------------------------------------------------------------------------------------
# Part-label map
# --------------------------------------------------------------------------------------------------
def label_canvas_size(unit: float) -> tuple[int, int]:
    """``(height, width)`` in pixels of the label canvas of a person ``unit`` pixels tall."""
    return int(round(_CANVAS_HEIGHT * unit)), int(round(_CANVAS_WIDTH * unit))


class _LabelCanvas:
    """A ``mode "L"`` label canvas addressed in person units.

    ``x`` is 0 on the body axis and grows to the right of the image, ``y`` is 0 at the top of the
    head and 1 at the soles; one unit is ``unit`` pixels.
    """

    def __init__(self, unit: float) -> None:
        self.unit = unit
        height, width = label_canvas_size(unit)
        self.origin = (width / 2.0, CANVAS_TOP_MARGIN * unit)
        self.image = Image.new("L", (width, height), LABEL_TRANSPARENT)
        self.draw = ImageDraw.Draw(self.image)

    def point(self, x: float, y: float) -> Point:
        """Pixel coordinates of the person-unit point ``(x, y)``."""
        return (self.origin[0] + x * self.unit, self.origin[1] + y * self.unit)

    def polygon(self, corners: list[Point], label: int) -> None:
        """Fills the polygon with person-unit ``corners``."""
        self.draw.polygon([self.point(x, y) for x, y in corners], fill=label)

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, label: int) -> None:
        """Fills the axis-aligned box from ``(x0, y0)`` to ``(x1, y1)``."""
        self.draw.rectangle([*self.point(x0, y0), *self.point(x1, y1)], fill=label)

    def ellipse(self, x: float, y: float, rx: float, ry: float, label: int) -> None:
        """Fills the ellipse centred at ``(x, y)`` with radii ``rx``, ``ry``."""
        (ax, ay), (bx, by) = self.point(x - rx, y - ry), self.point(x + rx, y + ry)
        self.draw.ellipse([ax, ay, bx, by], fill=label)

    def limb(
        self, x0: float, y0: float, x1: float, y1: float, w0: float, w1: float, label: int
    ) -> None:
        """Fills a tapered limb from ``(x0, y0)`` to ``(x1, y1)`` with half-widths ``w0``/``w1``."""
        dx, dy = x1 - x0, y1 - y0
        length = max(1e-6, (dx * dx + dy * dy) ** 0.5)
        nx, ny = -dy / length, dx / length
        corners = [(x0 + nx * w0, y0 + ny * w0), (x1 + nx * w1, y1 + ny * w1),
                   (x1 - nx * w1, y1 - ny * w1), (x0 - nx * w0, y0 - ny * w0)]
        self.polygon(corners, label)

    def labels(self) -> np.ndarray:
        """The drawn ``(height, width)`` uint8 label map."""
        return np.asarray(self.image)


@dataclass(frozen=True)
class _Body:
    """Identity-fixed proportions in person units (head top at y=0, soles at y=1)."""

    width_factor: float
    shoulder_y: float
    ankle_y: float
    hip_y: float
    waist_y: float
    shoulder_w: float
    waist_w: float
    hip_x: float


def _body_of(identity: PersonIdentity) -> _Body:
    """The proportions of ``identity`` (body width and leg length factors applied)."""
    bw = identity.body_width
    ankle_y = 0.955
    hip_y = ankle_y - 0.425 * identity.leg_length
    return _Body(
        width_factor=bw, shoulder_y=0.17, ankle_y=ankle_y, hip_y=hip_y, waist_y=hip_y - 0.03,
        shoulder_w=0.125 * bw, waist_w=0.1 * bw, hip_x=0.055 * bw,
    )


@dataclass(frozen=True)
class _Pose:
    """Per-image pose: facing, torso lean, leg spread / step and arm swing angles / lengths."""

    front: bool
    lean: float
    spread: float
    step: float
    arm_angles: tuple[float, float]
    arm_lengths: tuple[float, float]


def _sample_pose(front: bool, rng: np.random.Generator) -> _Pose:
    """Draws the pose jitter (7 draws from ``rng``, in a fixed order)."""
    lean = rng.normal(0, 0.012)
    spread = rng.uniform(-0.02, 0.05)
    step = rng.uniform(-0.04, 0.04)
    arm_angles = (rng.uniform(0.04, 0.2), rng.uniform(0.04, 0.2))
    arm_lengths = (rng.uniform(0.3, 0.36), rng.uniform(0.3, 0.36))
    return _Pose(front, lean, spread, step, arm_angles, arm_lengths)


def _draw_behind_body(canvas: _LabelCanvas, identity: PersonIdentity, body: _Body,
                      pose: _Pose) -> None:
    """Long hair, and a backpack seen from the front, which sit behind the body."""
    lean = pose.lean
    if identity.long_hair:
        canvas.polygon([(-0.065 + lean, 0.06), (0.065 + lean, 0.06), (0.075 + lean, 0.24),
                        (-0.075 + lean, 0.24)], LABEL_HAIR)
    if identity.bag == "backpack" and pose.front:
        canvas.rectangle(-body.shoulder_w - 0.03, body.shoulder_y + 0.03, body.shoulder_w + 0.03,
                         0.45, LABEL_BAG)


def _draw_legs(canvas: _LabelCanvas, identity: PersonIdentity, body: _Body, pose: _Pose) -> None:
    """Trouser legs (bare lower legs with shorts) and shoes; one foot steps forward."""
    bw = body.width_factor
    for side, dy in ((-1, pose.step), (1, -pose.step)):
        top = (side * body.hip_x, body.hip_y)
        foot = (side * (body.hip_x + pose.spread), body.ankle_y + min(0.0, dy))
        canvas.limb(top[0], top[1], foot[0], foot[1], 0.05 * bw, 0.033 * bw, LABEL_TROUSERS)
        if identity.shorts:
            knee_t = 0.42
            kx, ky = top[0] + (foot[0] - top[0]) * knee_t, top[1] + (foot[1] - top[1]) * knee_t
            canvas.limb(kx, ky, foot[0], foot[1], 0.036 * bw, 0.028 * bw, LABEL_SKIN)
        fx, fy = foot
        canvas.ellipse(fx, fy + 0.018, 0.042 * bw, 0.026, LABEL_SHOES)


def _draw_torso(canvas: _LabelCanvas, body: _Body, pose: _Pose) -> None:
    """Hips (trousers), torso and rounded shoulders (top)."""
    lean, bw = pose.lean, body.width_factor
    waist_w, shoulder_w, shoulder_y = body.waist_w, body.shoulder_w, body.shoulder_y
    canvas.polygon([(-waist_w - 0.005 + lean, body.waist_y - 0.04),
                    (waist_w + 0.005 + lean, body.waist_y - 0.04),
                    (body.hip_x + 0.052 * bw, body.hip_y + 0.04),
                    (-body.hip_x - 0.052 * bw, body.hip_y + 0.04)], LABEL_TROUSERS)
    canvas.polygon([(-shoulder_w + lean, shoulder_y), (shoulder_w + lean, shoulder_y),
                    (waist_w + lean, body.waist_y + 0.02),
                    (-waist_w + lean, body.waist_y + 0.02)], LABEL_TOP)
    canvas.ellipse(-shoulder_w + 0.025 + lean, shoulder_y + 0.02, 0.03, 0.022, LABEL_TOP)
    canvas.ellipse(shoulder_w - 0.025 + lean, shoulder_y + 0.02, 0.03, 0.022, LABEL_TOP)


def _draw_backpack(canvas: _LabelCanvas, body: _Body, pose: _Pose) -> None:
    """Backpack straps seen from the front, or the pack covering the back seen from behind."""
    lean, bw, shoulder_y = pose.lean, body.width_factor, body.shoulder_y
    if pose.front:
        for side in (-1, 1):
            canvas.limb(side * 0.065 * bw + lean, shoulder_y, side * 0.075 * bw + lean, 0.36,
                        0.014, 0.014, LABEL_BAG)
    else:
        canvas.rectangle(-0.085 * bw + lean, shoulder_y + 0.03, 0.085 * bw + lean, 0.43,
                         LABEL_BAG)


def _draw_head(canvas: _LabelCanvas, body: _Body, pose: _Pose) -> None:
    """Neck, and the head: face framed by hair from the front, only hair from behind."""
    lean = pose.lean
    canvas.rectangle(-0.022 + lean, 0.12, 0.022 + lean, body.shoulder_y + 0.01, LABEL_SKIN)
    head_x = lean * 1.3
    if pose.front:
        canvas.ellipse(head_x, 0.068, 0.058, 0.068, LABEL_HAIR)
        canvas.ellipse(head_x, 0.085, 0.05, 0.058, LABEL_SKIN)
    else:
        canvas.ellipse(head_x, 0.075, 0.057, 0.071, LABEL_HAIR)


def _draw_arms(canvas: _LabelCanvas, identity: PersonIdentity, body: _Body, pose: _Pose) -> None:
    """Sleeves in the top colour (bare forearms with short sleeves) and hands."""
    lean, bw = pose.lean, body.width_factor
    for side, angle, length in zip((-1, 1), pose.arm_angles, pose.arm_lengths):
        sx, sy = side * (body.shoulder_w - 0.01) + lean, body.shoulder_y + 0.02
        hand_x, hand_y = sx + side * np.sin(angle) * length, sy + np.cos(angle) * length
        canvas.limb(sx, sy, hand_x, hand_y, 0.03 * bw, 0.022 * bw, LABEL_TOP)
        if not identity.long_sleeves:
            elbow_t = 0.38
            ex, ey = sx + (hand_x - sx) * elbow_t, sy + (hand_y - sy) * elbow_t
            canvas.limb(ex, ey, hand_x, hand_y, 0.024 * bw, 0.02 * bw, LABEL_SKIN)
        canvas.ellipse(hand_x, hand_y + 0.01, 0.022, 0.026, LABEL_SKIN)


def _draw_shoulder_bag(canvas: _LabelCanvas, identity: PersonIdentity, body: _Body,
                       pose: _Pose) -> None:
    """Strap across the torso and the bag at the hip (the side flips when seen from behind)."""
    lean, unit = pose.lean, canvas.unit
    s = identity.bag_side if pose.front else -identity.bag_side
    strap = [canvas.point(-s * body.shoulder_w * 0.8 + lean, body.shoulder_y),
             canvas.point(s * (body.waist_w + 0.01) + lean, 0.47)]
    canvas.draw.line(strap, fill=LABEL_BAG, width=max(1, int(0.018 * unit)))
    bx = s * (body.waist_w + 0.045) + lean
    box = [*canvas.point(bx - 0.055, 0.44), *canvas.point(bx + 0.055, 0.56)]
    canvas.draw.rounded_rectangle(box, radius=0.012 * unit, fill=LABEL_BAG)


def _draw_parts(identity: PersonIdentity, front: bool, rng: np.random.Generator,
                unit: float) -> np.ndarray:
    """Draws the body parts back to front (no top pattern yet); see :func:`render_labels`."""
    canvas = _LabelCanvas(unit)
    body = _body_of(identity)
    pose = _sample_pose(front, rng)
    _draw_behind_body(canvas, identity, body, pose)
    _draw_legs(canvas, identity, body, pose)
    _draw_torso(canvas, body, pose)
    if identity.bag == "backpack":
        _draw_backpack(canvas, body, pose)
    _draw_head(canvas, body, pose)
    _draw_arms(canvas, identity, body, pose)
    if identity.bag == "shoulder":
        _draw_shoulder_bag(canvas, identity, body, pose)
    return canvas.labels()


@functools.lru_cache(maxsize=8)
def _canvas_grids(ch: int, cw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-coordinate grids and a cylindrical shading map of a person canvas.

    Returns:
        ``ys`` ``(ch, 1)`` and ``xs`` ``(1, cw)`` float32 pixel coordinates, and the
        ``(ch, cw)`` float32 shading factor (about 0.58 .. 1.09, brightest on the body axis at
        the top).
    """
    ys = np.arange(ch, dtype=np.float32)[:, None]
    xs = np.arange(cw, dtype=np.float32)[None, :]
    unit = ch / _CANVAS_HEIGHT
    rel = (xs - cw / 2) / (0.22 * unit)
    shade = np.clip(1.05 - 0.35 * rel**2, 0.62, 1.05) * (1.04 - 0.1 * ys / ch)
    return ys, xs, shade.astype(np.float32)


def _pattern_mask(pattern: str, period: float, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the second pattern colour (stripes of 45%, checks of 50%).

    Args:
        pattern: ``"hstripes"``, ``"vstripes"`` or ``"checks"``.
        period: Stripe / check period in pixels.
        shape: ``(height, width)`` of the label canvas.
    """
    ys, xs, _ = _canvas_grids(*shape)
    cw = shape[1]
    if pattern == "hstripes":
        return np.broadcast_to(((ys / period) % 1.0) < 0.45, shape)
    if pattern == "vstripes":
        return np.broadcast_to((((xs - cw / 2) / period) % 1.0) < 0.45, shape)
    return ((((xs - cw / 2) / period) % 1.0) < 0.5) ^ (((ys / period) % 1.0) < 0.5)


def render_labels(
    identity: PersonIdentity, front: bool, rng: np.random.Generator, unit: float
) -> np.ndarray:
    """Draws the part-label map of one person, with per-image pose and the top's pattern.

    Args:
        identity: Body proportions, clothing style, pattern and bag of the person.
        front: Whether the person faces the camera (else seen from the back).
        rng: Generator of the pose jitter (exactly 7 draws).
        unit: Person height in pixels (the canvas is ``label_canvas_size(unit)``).

    Returns:
        ``(round(1.06 * unit), round(0.64 * unit))`` uint8 label map with values in
        ``0 .. NUM_LABELS - 1`` (see :data:`PART_NAMES`; 0 = transparent). Pixels of the top
        that fall on the pattern carry :data:`LABEL_TOP_PATTERN`.
    """
    labels = _draw_parts(identity, front, rng, unit).copy()
    if identity.pattern != "plain":
        mask = _pattern_mask(identity.pattern, identity.pattern_period * unit, labels.shape)
        labels[(labels == LABEL_TOP) & mask] = LABEL_TOP_PATTERN
    return labels


def identity_palette(identity: PersonIdentity) -> np.ndarray:
    """The visible-light lookup table of ``identity`` for :func:`colour_labels`.

    Returns:
        ``(NUM_LABELS, 3)`` float32 RGB in 0..255, one row per label (transparent is black).
    """
    palette = np.zeros((NUM_LABELS, 3), dtype=np.float32)
    palette[LABEL_SKIN], palette[LABEL_HAIR] = identity.skin, identity.hair
    palette[LABEL_TOP], palette[LABEL_TOP_PATTERN] = identity.top, identity.pattern_colour
    palette[LABEL_TROUSERS], palette[LABEL_SHOES] = identity.trousers, identity.shoes
    palette[LABEL_BAG] = identity.bag_colour
    return palette


def colour_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colours a label map through a per-label lookup table and applies the body shading.

    Args:
        labels: ``(H, W)`` integer label map from :func:`render_labels`.
        palette: ``(NUM_LABELS, C)`` table of channel values in 0..255, one row per label;
            :func:`identity_palette` for RGB (C = 3), or e.g. a material table of another
            modality. Converted to float32.

    Returns:
        ``(H, W, C + 1)`` uint8 premultiplied image: the shaded table values (0 where
        transparent) followed by alpha (255 on the person, 0 elsewhere). For an RGB table this
        is PIL's ``"RGBa"`` layout.
    """
    height, width = labels.shape
    _, _, shade = _canvas_grids(height, width)
    palette = np.asarray(palette, dtype=np.float32)
    values = palette[labels] * shade[..., None]
    alpha = (labels > 0).astype(np.float32)
    out = np.empty((height, width, palette.shape[1] + 1), dtype=np.uint8)
    out[..., :-1] = np.clip(values * alpha[..., None], 0, 255)
    out[..., -1] = alpha * 255
    return out


# --------------------------------------------------------------------------------------------------
# Composition and camera
# --------------------------------------------------------------------------------------------------
def _person_layer(
    identity: PersonIdentity, camera: CameraStyle, rng: np.random.Generator, height: int,
    width: int,
) -> np.ndarray:
    """The person alone, drawn, coloured, scaled, sheared and placed in the output frame.

    Returns:
        ``(height, width, 4)`` float32 premultiplied RGBA in ``[0, 255]``.
    """
    front = bool(rng.random() < camera.front_prob)
    scale = camera.person_scale * rng.uniform(0.93, 1.07)
    # Draw at about twice the output resolution and box-downsample (anti-aliasing).
    unit = max(24.0, 2.0 * scale * height)
    labels = render_labels(identity, front, rng, unit)
    rgba = colour_labels(labels, identity_palette(identity))
    ch, cw = labels.shape
    k = scale * height / unit
    pw = max(1, int(round(cw * k * camera.hscale * rng.uniform(0.96, 1.04))))
    ph = max(1, int(round(ch * k)))
    person = Image.frombytes("RGBa", (cw, ch), rgba.tobytes())
    person = person.resize((pw, ph), Image.Resampling.BOX)
    feet_in = (CANVAS_TOP_MARGIN + 1.0) * unit * k  # soles in the resized person image
    return place_person(person, camera, rng, scale, feet_in, height, width)


def place_person(
    person: Image.Image,
    camera: CameraStyle,
    rng: np.random.Generator,
    scale: float,
    feet_in: float,
    height: int,
    width: int,
) -> np.ndarray:
    """Puts the feet near the bottom centre with a small random shift; shears and mirrors.

    Args:
        person: Scaled ``"RGBa"`` person image.
        camera: Viewpoint (shear, mirroring).
        rng: Generator of the shift and shear jitter.
        scale: Person height as a fraction of ``height``.
        feet_in: Row of the soles in ``person``.
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        ``(height, width, 4)`` float32 premultiplied RGBA in ``[0, 255]``.
    """
    ox = width / 2 + rng.uniform(-0.07, 0.07) * width
    fy = height * (0.5 + scale / 2) + rng.uniform(-0.04, 0.03) * height
    m = -1.0 if camera.mirrored else 1.0
    sh = camera.shear + rng.normal(0, 0.02)
    coeffs = (m, -m * sh, person.width / 2 - m * ox + m * sh * fy, 0.0, 1.0, feet_in - fy)
    placed = person.transform(
        (width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
    )
    return np.asarray(placed, dtype=np.float32)


def _background_crop(
    camera: CameraStyle, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """A random ``(height, width, 3)`` float32 crop of the camera's background, 0..255."""
    background = _background(camera, height, width)
    oy = int(rng.integers(0, background.shape[0] - height + 1))
    ox = int(rng.integers(0, background.shape[1] - width + 1))
    return background[oy : oy + height, ox : ox + width]


def _apply_camera(
    image: np.ndarray, camera: CameraStyle, rng: np.random.Generator, height: int
) -> np.ndarray:
    """Camera tone curve, colour cast, per-image gain jitter, blur and sensor noise.

    Args:
        image: ``(H, W, 3)`` float32 RGB, nominally 0..255.
        camera: Photometry, blur and noise of the camera.
        rng: Generator of the gain jitter and the noise.
        height: Image height (the blur radius is given at 128 pixels).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    image = np.clip(image / 255.0, 0.0, 1.0) ** camera.gamma
    gain = camera.gain * rng.uniform(0.85, 1.15)
    image = image * (gain * np.asarray(camera.colour_cast, dtype=np.float32)) * 255.0
    radius = camera.blur * height / 128.0
    if radius > 0.15:
        pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
        image = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * camera.noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


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
    person = _person_layer(identity, camera, rng, height, width)
    background = _background_crop(camera, rng, height, width)
    alpha = person[..., 3:] / 255.0
    image = background * (1.0 - alpha) + person[..., :3]
    return _apply_camera(image, camera, rng, height)
