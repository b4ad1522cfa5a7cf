"""Thermal (infrared) rendering of the synthetic pedestrians: the label map coloured by temperature.

A thermal camera sees heat, not hue. This module reuses stage 1 of :mod:`.render` unchanged (the
part-label map of :func:`~.render.render_labels`, so body shape, pose, sleeves, shorts, bag and
long hair are those of the visible renderer) and colours it through a *material / temperature*
lookup table (:func:`thermal_palette`) with :func:`~.render.colour_labels`:

* bare skin (face, forearms with short sleeves, shins with shorts) is hot (about 0.8 .. 0.9);
* hair is medium (about 0.55);
* clothing is cooler the thicker it is (a thick coat about 0.35, a thin shirt about 0.6) and
  warmer the darker it is (absorbed light, :func:`absorbed_heat`: +0.15 for black, -0.15 for
  white, so a thick white coat can be as cold as a bag); the top's pattern differs by its own
  colour's absorption and, weakly, as a second fabric (+- 0.02 .. 0.05);
* shoes are cool (0.4) and a bag is cold (0.25);
* the background is a cool (0.12 .. 0.4), smooth vertical gradient without the visible scene.

Temperatures are in ``[0, 1]`` (white-hot: 1 is 255 grey). Clothing hue does not survive, its
brightness does, inverted and mixed with thickness (as in daylight thermal footage, where dark
cloth is warmer); identity survives through shape, that brightness and the per-identity thermal
attributes of :class:`ThermalIdentity` (a body temperature offset and garment thicknesses),
drawn from the identity's own seeded stream (:func:`thermal_identity_rng`). Every image is
grey written in three equal channels (as SYSU-MM01's and RegDB's infrared JPEG/BMP files are
read).

Given the same ``rng`` state (a fresh :func:`~.appearance.image_rng`) and the same geometry
camera, :func:`render_thermal` draws exactly the silhouette :func:`~.render.render_person` draws:
the person layer consumes the generator in the same order. RegDB's co-registered visible/thermal
pairs rely on this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .appearance import CameraStyle, PersonIdentity

# Private geometry helpers of the visible renderer, shared so that both modalities place the
# person identically (see the module docstring).
from .render import (
    CANVAS_TOP_MARGIN,
    LABEL_BAG,
    LABEL_HAIR,
    LABEL_SHOES,
    LABEL_SKIN,
    LABEL_TOP,
    LABEL_TOP_PATTERN,
    LABEL_TROUSERS,
    NUM_LABELS,
    place_person,
    colour_labels,
    render_labels,
)

__all__ = [
    "SKIN_TEMPERATURE",
    "HAIR_TEMPERATURE",
    "SHOES_TEMPERATURE",
    "BAG_TEMPERATURE",
    "ThermalIdentity",
    "ThermalCameraStyle",
    "thermal_identity_rng",
    "thermal_camera_rng",
    "sample_thermal_identity",
    "sample_thermal_camera",
    "ABSORPTION",
    "garment_temperature",
    "absorbed_heat",
    "thermal_palette",
    "thermal_person_layer",
    "render_thermal",
]

#: Nominal temperatures in ``[0, 1]`` (white-hot grey / 255) of the non-clothing materials.
SKIN_TEMPERATURE = 0.85
HAIR_TEMPERATURE = 0.55
SHOES_TEMPERATURE = 0.4
BAG_TEMPERATURE = 0.25
# Garment temperature: thin (thickness 0) -> _GARMENT_THIN, thick (1) -> _GARMENT_THICK.
_GARMENT_THIN = 0.62
_GARMENT_THICK = 0.35
#: Temperature a garment gains per unit of darkness below mid-grey (relative luminance 0.5):
#: black cloth +0.15, white cloth -0.15.
ABSORPTION = 0.3

# Stream tags, far from appearance.py's 1..5 so that later tags there cannot collide.
_TAG_THERMAL_IDENTITY = 101
_TAG_THERMAL_CAMERA = 102


@dataclass(frozen=True)
class ThermalIdentity:
    """Thermal attributes of one person (see :func:`sample_thermal_identity`).

    Attributes:
        pid: Identity number.
        body_offset: Temperature offset of the whole person, in ``[-0.04, 0.04]``.
        top_thickness: Thickness of the top in ``[0, 1]`` (long sleeves: 0.4 .. 1, a coat;
            short sleeves: 0 .. 0.5, a shirt).
        trousers_thickness: Thickness of the trousers in ``[0, 1]`` (shorts: 0 .. 0.3).
        pattern_delta: Temperature difference of the top's pattern fabric, ``+-(0.02 .. 0.05)``.
    """

    pid: int
    body_offset: float
    top_thickness: float
    trousers_thickness: float
    pattern_delta: float


@dataclass(frozen=True)
class ThermalCameraStyle:
    """Imaging conditions of one thermal camera (see :func:`sample_thermal_camera`).

    The viewpoint (scale, shear, mirroring, facing) comes from a visible
    :class:`~.appearance.CameraStyle` passed alongside; this holds the radiometry only.

    Attributes:
        camid: Camera number.
        background_top: Background temperature at the top of the frame, ``[0.12, 0.4]``.
        background_bottom: Background temperature at the bottom of the frame, ``[0.12, 0.4]``.
        gain: Radiometric gain (0.85 .. 1.15).
        bias: Radiometric offset in temperature units (-0.05 .. 0.05).
        blur: Gaussian blur radius in pixels at 128-pixel image height (0.8 .. 1.6; thermal
            optics are softer than visible ones).
        noise: Standard deviation of the additive pixel noise (0..255 scale; 2 .. 6).
    """

    camid: int
    background_top: float
    background_bottom: float
    gain: float
    bias: float
    blur: float
    noise: float


# --------------------------------------------------------------------------------------------------
# Seeded streams and sampling
# --------------------------------------------------------------------------------------------------
def thermal_identity_rng(seed: int, pid: int) -> np.random.Generator:
    """The stream of identity ``pid``'s thermal attributes (independent of its appearance)."""
    return np.random.default_rng([seed, _TAG_THERMAL_IDENTITY, pid])


def thermal_camera_rng(seed: int, camid: int) -> np.random.Generator:
    """The stream of thermal camera ``camid``'s radiometry."""
    return np.random.default_rng([seed, _TAG_THERMAL_CAMERA, camid])


def sample_thermal_identity(
    identity: PersonIdentity, rng: np.random.Generator
) -> ThermalIdentity:
    """Samples the thermal attributes of ``identity`` (clothing thickness follows its style).

    Args:
        identity: Visible appearance (sleeve and trouser style decide the thickness ranges).
        rng: Generator the attributes are drawn from (see :func:`thermal_identity_rng`).

    Returns:
        The sampled thermal attributes.
    """
    offset = float(np.clip(rng.normal(0.0, 0.02), -0.04, 0.04))
    top = rng.uniform(0.4, 1.0) if identity.long_sleeves else rng.uniform(0.0, 0.5)
    trousers = rng.uniform(0.0, 0.3) if identity.shorts else rng.uniform(0.3, 1.0)
    delta = rng.uniform(0.02, 0.05) * rng.choice([-1.0, 1.0])
    return ThermalIdentity(identity.pid, offset, float(top), float(trousers), float(delta))


def sample_thermal_camera(camid: int, rng: np.random.Generator) -> ThermalCameraStyle:
    """Samples the radiometry of thermal camera ``camid``.

    Args:
        camid: Camera number stored in the result.
        rng: Generator the attributes are drawn from (see :func:`thermal_camera_rng`).

    Returns:
        The sampled thermal camera style.
    """
    return ThermalCameraStyle(
        camid=camid,
        background_top=float(rng.uniform(0.12, 0.4)),
        background_bottom=float(rng.uniform(0.12, 0.4)),
        gain=float(rng.uniform(0.85, 1.15)),
        bias=float(rng.uniform(-0.05, 0.05)),
        blur=float(rng.uniform(0.8, 1.6)),
        noise=float(rng.uniform(2.0, 6.0)),
    )


# --------------------------------------------------------------------------------------------------
# Material lookup table
# --------------------------------------------------------------------------------------------------
def garment_temperature(thickness: float) -> float:
    """Surface temperature in ``[0.35, 0.62]`` of a garment of ``thickness`` in ``[0, 1]``."""
    return _GARMENT_THIN + (_GARMENT_THICK - _GARMENT_THIN) * float(np.clip(thickness, 0, 1))


def absorbed_heat(colour: tuple[int, int, int]) -> float:
    """Temperature change in ``[-ABSORPTION / 2, ABSORPTION / 2]`` of a garment of ``colour``
    (RGB in ``0 .. 255``) from the light it absorbs: positive below mid-grey luma (Rec. 709
    weights of the gamma-encoded 8-bit values, a brightness proxy), negative above."""
    red, green, blue = (channel / 255.0 for channel in colour)
    return ABSORPTION * (0.5 - (0.2126 * red + 0.7152 * green + 0.0722 * blue))


def thermal_palette(identity: PersonIdentity, thermal: ThermalIdentity) -> np.ndarray:
    """The temperature lookup table of a person for :func:`~.render.colour_labels`.

    Args:
        identity: Visible appearance (its garment colours' brightness, by
            :func:`absorbed_heat`).
        thermal: Thermal attributes of the same person.

    Returns:
        ``(NUM_LABELS, 3)`` float32 grey levels in ``[0, 255]`` (three equal columns), one row per
        label; transparent is 0.
    """
    if identity.pid != thermal.pid:
        raise ValueError(f"thermal attributes of pid {thermal.pid} given for pid {identity.pid}")
    temps = np.zeros(NUM_LABELS, dtype=np.float64)
    top = garment_temperature(thermal.top_thickness)
    temps[LABEL_SKIN] = SKIN_TEMPERATURE
    temps[LABEL_HAIR] = HAIR_TEMPERATURE
    temps[LABEL_TOP] = top + absorbed_heat(identity.top)
    temps[LABEL_TOP_PATTERN] = (top + absorbed_heat(identity.pattern_colour)
                                + thermal.pattern_delta)
    temps[LABEL_TROUSERS] = (garment_temperature(thermal.trousers_thickness)
                             + absorbed_heat(identity.trousers))
    temps[LABEL_SHOES] = SHOES_TEMPERATURE
    temps[LABEL_BAG] = BAG_TEMPERATURE
    temps[1:] += thermal.body_offset
    grey = np.clip(temps, 0.0, 1.0) * 255.0
    return np.repeat(grey[:, None], 3, axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def thermal_person_layer(
    identity: PersonIdentity,
    thermal: ThermalIdentity,
    camera: CameraStyle,
    rng: np.random.Generator,
    height: int,
    width: int,
) -> np.ndarray:
    """The person alone in the thermal frame, drawn exactly as the visible renderer places it.

    Consumes ``rng`` in the order of the visible renderer's person layer (facing, scale, pose,
    width jitter, position, shear), so the same generator state and ``camera`` give the same
    silhouette as :func:`~.render.render_person`.

    Args:
        identity: Shape and clothing style of the person.
        thermal: Thermal attributes of the same person.
        camera: Viewpoint (facing probability, person scale, horizontal stretch, shear, mirror).
        rng: Generator of the per-image pose and placement.
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        ``(height, width, 4)`` float32 premultiplied grey (three equal channels) + alpha, all in
        ``[0, 255]``.
    """
    front = bool(rng.random() < camera.front_prob)
    scale = camera.person_scale * rng.uniform(0.93, 1.07)
    unit = max(24.0, 2.0 * scale * height)
    labels = render_labels(identity, front, rng, unit)
    grey_a = colour_labels(labels, thermal_palette(identity, thermal))
    ch, cw = labels.shape
    k = scale * height / unit
    pw = max(1, round(cw * k * camera.hscale * rng.uniform(0.96, 1.04)))
    ph = max(1, round(ch * k))
    person = Image.frombytes("RGBa", (cw, ch), grey_a.tobytes())
    person = person.resize((pw, ph), Image.Resampling.BOX)
    feet_in = (CANVAS_TOP_MARGIN + 1.0) * unit * k
    return place_person(person, camera, rng, scale, feet_in, height, width)


def _thermal_background(
    thermal_camera: ThermalCameraStyle, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """A cool, smooth background: the camera's vertical gradient plus a faint smooth field.

    Returns:
        ``(height, width)`` float32 grey in ``[0, 255]``.
    """
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top, bottom = thermal_camera.background_top, thermal_camera.background_bottom
    gradient = np.broadcast_to(top * (1 - t) + bottom * t, (height, width))
    coarse = Image.fromarray(rng.uniform(0.0, 1.0, size=(3, 2)).astype(np.float32))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    return np.clip(gradient + 0.04 * (smooth - 0.5), 0.0, 1.0) * 255.0


def _apply_thermal_camera(
    image: np.ndarray, thermal_camera: ThermalCameraStyle, rng: np.random.Generator, height: int
) -> np.ndarray:
    """Radiometry (gain, bias, per-image drift), soft optics and sensor noise.

    Args:
        image: ``(H, W)`` float32 grey, nominally 0..255.
        thermal_camera: Gain, bias, blur and noise of the camera.
        rng: Generator of the drift and the noise.
        height: Image height (the blur radius is given at 128 pixels).

    Returns:
        ``(H, W)`` uint8 grey.
    """
    drift = rng.normal(0.0, 0.015)
    image = image * thermal_camera.gain + (thermal_camera.bias + drift) * 255.0
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    radius = thermal_camera.blur * height / 128.0
    image = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * thermal_camera.noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def render_thermal(
    identity: PersonIdentity,
    thermal: ThermalIdentity,
    camera: CameraStyle,
    thermal_camera: ThermalCameraStyle,
    rng: np.random.Generator,
    height: int,
    width: int,
) -> np.ndarray:
    """Renders one thermal image of a person.

    Deterministic from ``rng``'s state; with a fresh generator equal to the one given to
    :func:`~.render.render_person` and the same ``camera``, the person has the same silhouette.

    Args:
        identity: Shape and clothing style of the person.
        thermal: Thermal attributes of the same person.
        camera: Viewpoint of the thermal camera (its colours and background are not used).
        thermal_camera: Radiometry of the thermal camera.
        rng: Generator of the per-image pose, placement, background field, drift and noise.
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        ``(height, width, 3)`` uint8 grey image with three equal channels.
    """
    person = thermal_person_layer(identity, thermal, camera, rng, height, width)
    background = _thermal_background(thermal_camera, rng, height, width)
    alpha = person[..., 3] / 255.0
    image = background * (1.0 - alpha) + person[..., 0]
    grey = _apply_thermal_camera(image, thermal_camera, rng, height)
    return np.repeat(grey[..., None], 3, axis=2)
