"""What the synthetic generator samples: config, identity and camera attributes, RNG streams.

Every random choice of the generator is drawn from a local :class:`numpy.random.Generator` that is
seeded from the config seed plus a *stream tag* and the ids it belongs to (identity, camera, image,
split, background). Streams are therefore independent of one another and of the order in which
they are used, and the global numpy / Python / torch RNGs are never touched.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RGB",
    "PATTERNS",
    "BAGS",
    "SyntheticConfig",
    "PersonIdentity",
    "CameraStyle",
    "hsv_to_rgb255",
    "sample_identity",
    "sample_camera",
    "identity_rng",
    "camera_rng",
    "image_rng",
    "split_rng",
    "background_rng",
]

#: An ``(r, g, b)`` colour with integer channels in 0..255.
RGB = tuple[int, int, int]

#: Patterns of a person's top.
PATTERNS = ("plain", "hstripes", "vstripes", "checks")
#: Bags a person may carry.
BAGS = ("none", "backpack", "shoulder")

# Stream tags so that identities, cameras and images draw from independent, order-free streams.
_TAG_IDENTITY = 1
_TAG_CAMERA = 2
_TAG_IMAGE = 3
_TAG_SPLIT = 4
_TAG_BACKGROUND = 5

# Reference skin tones (interpolated) and hair colours (scaled), RGB in 0..255.
_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 94], [141, 85, 54],
     [92, 56, 36]],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [[20, 17, 15], [45, 30, 20], [85, 55, 35], [150, 105, 60], [210, 175, 110], [150, 150, 150],
     [120, 45, 25]],
    dtype=np.float64,
)
# Neutral clothing brightness levels: black, dark grey, light grey, white.
_NEUTRAL_VALUES = [0.12, 0.35, 0.6, 0.9]


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
        height: Height of the written images in pixels (at least 16).
        width: Width of the written images in pixels (at least 8; person crops are tall:
            ``height = 2 * width``).
        seed: Seed of every random choice; equal configs give byte-identical datasets.

    Raises:
        ValueError: A field is out of range, or the dataset would exceed Market-1501's naming
            limits (1501 identities, 6-digit frame numbers).
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
        pattern_period: Stripe / check period in person heights (0.045 .. 0.08).
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
        horizon: Height of the floor line as a fraction of the image height (0.5 .. 0.78).
        background_seed: Seed of the background layout (rectangles, texture), in ``[0, 2**31)``.
        gain: Global illumination gain (0.75 .. 1.25).
        colour_cast: Per-channel (r, g, b) multipliers with mean 1.
        gamma: Tone curve exponent (0.8 .. 1.25).
        person_scale: Typical person height as a fraction of the image height (0.8 .. 0.9).
        hscale: Horizontal stretch of the person (viewpoint / aspect).
        shear: Horizontal shear of the person (slanted viewpoint).
        mirrored: Whether the person is mirrored left-right.
        front_prob: Probability that the person faces the camera (else seen from the back).
        blur: Gaussian blur radius in pixels at 128-pixel image height (0 .. 0.9).
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
# Colours
# --------------------------------------------------------------------------------------------------
def hsv_to_rgb255(hue: float, saturation: float, value: float) -> RGB:
    """Converts an HSV colour to integer RGB.

    Args:
        hue: Hue; any real number, taken modulo 1.
        saturation: Saturation, clipped to ``[0, 1]``.
        value: Brightness, clipped to ``[0, 1]``.

    Returns:
        ``(r, g, b)`` with channels rounded to 0..255.
    """
    r, g, b = colorsys.hsv_to_rgb(
        hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0)
    )
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _clothing_colour(rng: np.random.Generator) -> RGB:
    """A clothing colour: mostly saturated hues from the full circle, some neutrals."""
    if rng.random() < 0.18:  # neutral: black .. white
        hue = rng.random()
        saturation = rng.uniform(0.0, 0.12)
        value = rng.choice(_NEUTRAL_VALUES) + rng.uniform(-0.06, 0.06)
        return hsv_to_rgb255(hue, saturation, value)
    return hsv_to_rgb255(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.4, 0.95))


def _trousers_colour(rng: np.random.Generator) -> RGB:
    """A trousers colour: dark, denim, khaki, or else any clothing colour."""
    kind = rng.random()
    if kind < 0.3:  # dark
        return hsv_to_rgb255(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.1, 0.3))
    if kind < 0.5:  # denim
        hue = rng.uniform(0.56, 0.64)
        return hsv_to_rgb255(hue, rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.65))
    if kind < 0.62:  # khaki / beige
        hue = rng.uniform(0.08, 0.14)
        return hsv_to_rgb255(hue, rng.uniform(0.25, 0.5), rng.uniform(0.5, 0.8))
    return _clothing_colour(rng)


def _shoe_colour(rng: np.random.Generator) -> RGB:
    """A shoe colour: mostly dark, some white, else any clothing colour."""
    kind = rng.random()
    if kind < 0.55:
        return hsv_to_rgb255(rng.random(), 0.1, rng.uniform(0.05, 0.2))
    if kind < 0.8:
        return hsv_to_rgb255(rng.random(), 0.05, rng.uniform(0.8, 0.95))
    return _clothing_colour(rng)


def _skin_colour(rng: np.random.Generator) -> RGB:
    """A skin colour interpolated between two neighbouring reference tones."""
    position = rng.uniform(0, len(_SKIN_TONES) - 1)
    lower = int(position)
    upper = min(lower + 1, len(_SKIN_TONES) - 1)
    fraction = position - lower
    skin = _SKIN_TONES[lower] * (1 - fraction) + _SKIN_TONES[upper] * fraction
    return tuple(int(round(c)) for c in skin)  # type: ignore[return-value]


def _hair_colour(rng: np.random.Generator) -> RGB:
    """A reference hair colour scaled in brightness by 0.85 .. 1.15 (clipped to 255)."""
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    return tuple(int(min(255, round(c))) for c in hair)  # type: ignore[return-value]


def _visible_pattern_colour(top: RGB, pattern_colour: RGB) -> RGB:
    """``pattern_colour``, darkened or brightened where it is too close to ``top`` in value."""
    top_hsv = colorsys.rgb_to_hsv(*(c / 255 for c in top))
    pattern_hsv = colorsys.rgb_to_hsv(*(c / 255 for c in pattern_colour))
    if abs(top_hsv[2] - pattern_hsv[2]) >= 0.25:
        return pattern_colour
    value = top_hsv[2] - 0.4 if top_hsv[2] > 0.55 else top_hsv[2] + 0.4
    return hsv_to_rgb255(pattern_hsv[0], pattern_hsv[1], value)


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------
def sample_identity(pid: int, rng: np.random.Generator) -> PersonIdentity:
    """Samples the appearance of one person.

    Args:
        pid: Identity number stored in the result.
        rng: Generator the attributes are drawn from (see :func:`identity_rng`).

    Returns:
        The sampled identity.
    """
    skin = _skin_colour(rng)
    hair = _hair_colour(rng)
    top = _clothing_colour(rng)
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.15, 0.2]))
    pattern_colour = _visible_pattern_colour(top, _clothing_colour(rng))
    shoes = _shoe_colour(rng)
    bag = str(rng.choice(BAGS, p=[0.45, 0.3, 0.25]))
    return PersonIdentity(
        pid=pid,
        skin=skin,
        hair=hair,
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
        rng: Generator the attributes are drawn from (see :func:`camera_rng`).

    Returns:
        The sampled camera style.
    """
    wall_hue = rng.random()
    wall_top = hsv_to_rgb255(wall_hue, rng.uniform(0.05, 0.4), rng.uniform(0.45, 0.9))
    wall_bottom = hsv_to_rgb255(
        wall_hue + rng.uniform(-0.1, 0.1), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.75)
    )
    floor = hsv_to_rgb255(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.65))
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


# --------------------------------------------------------------------------------------------------
# Seeded streams
# --------------------------------------------------------------------------------------------------
def identity_rng(seed: int, pid: int) -> np.random.Generator:
    """The stream of identity ``pid``'s attributes (for :func:`sample_identity`)."""
    return np.random.default_rng([seed, _TAG_IDENTITY, pid])


def camera_rng(seed: int, camid: int) -> np.random.Generator:
    """The stream of camera ``camid``'s attributes (for :func:`sample_camera`)."""
    return np.random.default_rng([seed, _TAG_CAMERA, camid])


def image_rng(seed: int, pid: int, camid: int, index: int) -> np.random.Generator:
    """The stream of the per-image nuisance of image ``index`` of ``pid`` in camera ``camid``."""
    return np.random.default_rng([seed, _TAG_IMAGE, pid, camid, index])


def split_rng(seed: int) -> np.random.Generator:
    """The stream that picks which image of a test identity and camera is the query."""
    return np.random.default_rng([seed, _TAG_SPLIT])


def background_rng(background_seed: int) -> np.random.Generator:
    """The stream of a camera's background layout (see :attr:`CameraStyle.background_seed`)."""
    return np.random.default_rng([background_seed, _TAG_BACKGROUND])
