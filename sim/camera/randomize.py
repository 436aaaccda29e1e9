"""Seeded appearance randomisation: colours, sky and road tone, light, noise, blur, mount jitter.

An :class:`Appearance` is drawn once per episode from its seed; per-frame effects (exposure
flicker, which window of the noise field) come from a generator seeded by (seed, frame), so
the same seed and frame number always give the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

VEHICLE_COLORS_RGB = np.array(
    [
        (235, 235, 235),
        (20, 20, 22),
        (150, 152, 158),
        (95, 98, 105),
        (165, 25, 25),
        (25, 55, 140),
        (30, 95, 60),
        (210, 190, 150),
        (230, 160, 20),
        (90, 20, 30),
        (60, 130, 190),
        (120, 85, 50),
        (200, 70, 20),
        (245, 220, 60),
    ],
    dtype=np.float32,
)
"""Typical car paints; trucks and clothes draw from it too."""

FLICKER_LEVELS = 4
"""Exposure flicker takes 2 * FLICKER_LEVELS + 1 evenly spaced values (renderers cache them)."""
NOISE_MARGIN_PX = 32
"""The noise field is this much larger than the image so each frame can take a shifted window."""


@dataclass(frozen=True)
class RandomizationConfig:
    """Ranges the appearance is drawn from. ``enabled=False`` gives a fixed neutral look.

    :param height_jitter_m: the camera height varies by up to this much per episode [m].
    :param pitch_jitter_deg: the camera pitch varies by up to this much per episode [deg].
    :param noise_sigma: range of the Gaussian pixel-noise standard deviation [8-bit levels].
    :param blur_sigma_px: range of the Gaussian blur; below 0.3 px no blur is applied.
    """

    enabled: bool = True
    height_jitter_m: float = 0.1
    pitch_jitter_deg: float = 1.0
    noise_sigma: tuple[float, float] = (0.0, 6.0)
    blur_sigma_px: tuple[float, float] = (0.0, 1.2)
    exposure: tuple[float, float] = (0.75, 1.2)
    exposure_flicker: float = 0.03


@dataclass(frozen=True)
class Appearance:
    """Look of one episode. Colours are RGB floats in [0, 255].

    :param sun_direction: unit vector towards the light, ``map`` frame (z up).
    """

    seed: int
    sky_top_rgb: np.ndarray
    sky_horizon_rgb: np.ndarray
    ground_rgb: np.ndarray
    road_rgb: np.ndarray
    shoulder_rgb: np.ndarray
    marking_rgb: np.ndarray
    sun_direction: np.ndarray
    ambient: float
    diffuse: float
    exposure: float
    noise_sigma: float
    blur_sigma_px: float
    height_offset_m: float
    pitch_offset_deg: float
    exposure_flicker: float

    def object_color(self, object_id: int, salt: int = 0) -> np.ndarray:
        """A stable paint colour (3,) float32 for an object id in this episode."""
        rng = np.random.default_rng([self.seed, object_id, salt])
        base = VEHICLE_COLORS_RGB[int(rng.integers(len(VEHICLE_COLORS_RGB)))]
        return np.clip(base * rng.uniform(0.85, 1.15), 0, 255).astype(np.float32)


def sample_appearance(seed: int, config: RandomizationConfig | None = None) -> Appearance:
    """Draw an episode's look from ``seed``."""
    config = config or RandomizationConfig()
    if not config.enabled:
        return neutral_appearance(seed)
    rng = np.random.default_rng([seed, 0xCA3E])
    sun_azimuth = rng.uniform(0, 2 * np.pi)
    sun_elevation = rng.uniform(0.25, 1.2)
    tone = rng.uniform(0.8, 1.15)
    road_grey = rng.uniform(60, 115)
    return Appearance(
        seed=seed,
        sky_top_rgb=_jitter(rng, (70, 120, 200), 30),
        sky_horizon_rgb=_jitter(rng, (185, 205, 225), 25),
        ground_rgb=_jitter(rng, (85, 115, 60), 25) * tone,
        road_rgb=np.array([road_grey, road_grey, road_grey + rng.uniform(-5, 8)], np.float32),
        shoulder_rgb=np.full(3, road_grey + rng.uniform(15, 40), np.float32),
        marking_rgb=_jitter(rng, (235, 235, 225), 15),
        sun_direction=np.array(
            [
                np.cos(sun_elevation) * np.cos(sun_azimuth),
                np.cos(sun_elevation) * np.sin(sun_azimuth),
                np.sin(sun_elevation),
            ]
        ),
        ambient=float(rng.uniform(0.45, 0.65)),
        diffuse=float(rng.uniform(0.3, 0.55)),
        exposure=float(rng.uniform(*config.exposure)),
        noise_sigma=float(rng.uniform(*config.noise_sigma)),
        blur_sigma_px=float(rng.uniform(*config.blur_sigma_px)),
        height_offset_m=float(rng.uniform(-1, 1) * config.height_jitter_m),
        pitch_offset_deg=float(rng.uniform(-1, 1) * config.pitch_jitter_deg),
        exposure_flicker=config.exposure_flicker,
    )


def neutral_appearance(seed: int = 0) -> Appearance:
    """A fixed, noise-free look (tests, and measuring without randomisation)."""
    return Appearance(
        seed=seed,
        sky_top_rgb=np.array((70, 120, 200), np.float32),
        sky_horizon_rgb=np.array((185, 205, 225), np.float32),
        ground_rgb=np.array((85, 115, 60), np.float32),
        road_rgb=np.array((90, 90, 95), np.float32),
        shoulder_rgb=np.array((120, 120, 120), np.float32),
        marking_rgb=np.array((235, 235, 225), np.float32),
        sun_direction=np.array([-0.4, 0.3, 0.866]),
        ambient=0.55,
        diffuse=0.45,
        exposure=1.0,
        noise_sigma=0.0,
        blur_sigma_px=0.0,
        height_offset_m=0.0,
        pitch_offset_deg=0.0,
        exposure_flicker=0.0,
    )


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], spread: float) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-spread, spread, 3), 0, 255).astype(
        np.float32
    )


class SensorEffects:
    """Exposure flicker, Gaussian noise and blur, applied to a rendered frame."""

    def __init__(self, appearance: Appearance, width_px: int, height_px: int) -> None:
        self.appearance = appearance
        self.shape = (height_px, width_px)
        self._noise: tuple[np.ndarray, np.ndarray] | None = None
        if appearance.noise_sigma > 0.5:
            rng = np.random.default_rng([appearance.seed, 0x0153])
            shape = (height_px + NOISE_MARGIN_PX, width_px + NOISE_MARGIN_PX, 3)
            noise = np.round(rng.normal(0.0, appearance.noise_sigma, shape))
            # Positive and negative parts, for two saturating uint8 operations per frame.
            self._noise = (
                np.clip(noise, 0, 255).astype(np.uint8),
                np.clip(-noise, 0, 255).astype(np.uint8),
            )

    def frame_gain(self, frame_index: int) -> float:
        """Exposure of frame ``frame_index`` (multiplies colours before quantisation)."""
        if self.appearance.exposure_flicker <= 0:
            return self.appearance.exposure
        rng = np.random.default_rng([self.appearance.seed, frame_index, 0xF11C])
        level = int(rng.integers(-FLICKER_LEVELS, FLICKER_LEVELS + 1)) / FLICKER_LEVELS
        return self.appearance.exposure * (1.0 + level * self.appearance.exposure_flicker)

    def apply(self, image: np.ndarray, frame_index: int) -> np.ndarray:
        """Blur and noise an HxWx3 uint8 image (returns a new array)."""
        if self.appearance.blur_sigma_px >= 0.3:
            image = cv2.GaussianBlur(image, (0, 0), self.appearance.blur_sigma_px)
        if self._noise is not None:
            height, width = image.shape[:2]
            rng = np.random.default_rng([self.appearance.seed, frame_index, 0x5A17])
            dy, dx = (int(v) for v in rng.integers(0, NOISE_MARGIN_PX, 2))
            brighter, darker = (part[dy : dy + height, dx : dx + width] for part in self._noise)
            image = cv2.subtract(cv2.add(image, brighter), darker)
        return image
